//! surf's HTTP backend for upstream requests: libcurl, driven so that a cancelled download really
//! closes its upstream connection.
//!
//! surf's stock `curl-client` backend (isahc 0.9) has two faults a downloader cannot live with:
//! it attaches a zero-length body to every request, so a `HEAD` waits for body bytes that never
//! come; and when a response body is dropped, the transfer is only aborted when the *next* byte
//! arrives, so a cancelled download whose upstream has stalled keeps its connection open.
//!
//! Here every request runs its own curl multi handle on a small thread. The response body is a
//! bounded channel of chunks; dropping it (or the request future) sets a flag and wakes the
//! thread through `curl_multi_wakeup`, which removes the easy handle and closes the socket at once,
//! whatever the upstream is doing. Redirects are never followed (we decide where the token goes),
//! bytes are never decoded (what we hash is what the hub stored), and response headers that are
//! not valid text are skipped.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use curl::easy::{Easy2, Handler, List, WriteError};
use curl::multi::Multi;
use futures_lite::{AsyncBufRead, AsyncRead, AsyncReadExt, Stream};
use http_client::http_types::headers::HeaderValue;
use http_client::{Body, Config, Error, HttpClient, Request, Response};

mod thread;

pub(crate) use thread::Session;
use thread::{curl_thread, drive, Start, Wake, RUNNING};

/// Connect timeout for upstream requests (the body has its own stall timeout).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
/// curl's receive buffer: the largest chunk handed over at once.
const BUFFER_SIZE: usize = 64 << 10;
/// While at most [`BIG_CHUNKS_UP_TO`] transfers run, what curl hands over in one go (one `perform`
/// of a fast connection) is sent to the reader as one chunk of at most this much: one fast
/// download wakes its reader per 256 KiB, not per 64 KiB (about a sixth of its CPU). With more
/// transfers each callback's bytes go as they come, which holds less memory per connection.
const CHUNK_MAX: usize = 256 << 10;
const BIG_CHUNKS_UP_TO: usize = 2;
/// Chunks in flight between curl's thread and the reader (bounds memory per download): while
/// at most [`BIG_CHUNKS_UP_TO`] transfers run, of up to [`CHUNK_MAX`]; with more, of up to
/// [`BUFFER_SIZE`] and [`CHUNKS_IN_FLIGHT_MANY`] of them.
const CHUNKS_IN_FLIGHT: usize = 4;
const CHUNKS_IN_FLIGHT_MANY: usize = 3;
/// Largest request body sent (the hive only sends small JSON, if anything).
const MAX_REQUEST_BODY: usize = 1 << 20;

/// An `http_client::HttpClient` over libcurl.
#[derive(Debug)]
pub struct CurlClient {
    config: Config,
    /// Custom CA bundle from the environment, read once.
    ca_bundle: Option<std::path::PathBuf>,
    /// Proxies, as the hive's config read them (issue 13).
    proxy: Option<Proxy>,
}

/// Proxies for upstream traffic, as `HTTPS_PROXY` / `HTTP_PROXY` / `ALL_PROXY` / `NO_PROXY` name
/// them (read by the hive's config, upper or lower case). Set on every request explicitly:
/// libcurl alone would read only the lowercase `http_proxy` for plain HTTP, and a request with no
/// proxy for its scheme gets none, whatever the environment says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Proxy {
    /// For `https://` URLs.
    pub https: Option<String>,
    /// For `http://` URLs.
    pub http: Option<String>,
    /// For either, when the scheme's own is unset.
    pub all: Option<String>,
    /// Hosts (comma-separated, curl's syntax) that go direct.
    pub no_proxy: Option<String>,
}

impl Proxy {
    /// The proxy for `url`, if any.
    #[must_use]
    pub fn for_url(&self, url: &str) -> Option<&str> {
        let scheme = if url.starts_with("https:") { &self.https } else { &self.http };
        scheme.as_deref().or(self.all.as_deref()).filter(|p| !p.is_empty())
    }
}

impl CurlClient {
    /// A client that never follows redirects nor decompresses, going through `proxy`.
    ///
    /// # Errors
    /// Never today; kept fallible for future TLS setup.
    pub fn new(proxy: Option<Proxy>) -> anyhow::Result<Self> {
        curl::init();
        Ok(Self { config: Config::new().set_timeout(None).set_tcp_no_delay(true), ca_bundle: ca_bundle(), proxy })
    }
}

/// The response head, as curl's header callback saw it.
#[derive(Debug, Default)]
struct Head {
    status: u16,
    headers: Vec<(String, Vec<u8>)>,
}

/// What the curl thread tells the reader.
enum Msg {
    Head(Head),
    Chunk(Vec<u8>),
    Failed(String),
}

struct Collector {
    head: Head,
    head_sent: bool,
    tx: async_channel::Sender<Msg>,
    /// Chunks the reader is done with.
    recycled: async_channel::Receiver<Vec<u8>>,
    cancelled: Arc<AtomicBool>,
    /// Bytes received and not sent yet: sent when [`CHUNK_MAX`] is reached and after every
    /// `perform` (so a slow connection's bytes never wait).
    pending: Vec<u8>,
    /// Body bytes received since the curl thread last looked.
    received: usize,
}

impl Collector {
    /// Sends what is pending; false when the reader is gone.
    fn flush(&mut self) -> bool {
        if self.pending.is_empty() {
            return true;
        }
        let next = self.recycled.try_recv().unwrap_or_default();
        let chunk = std::mem::replace(&mut self.pending, next);
        self.pending.clear();
        self.tx.send_blocking(Msg::Chunk(chunk)).is_ok()
    }

    fn send_head(&mut self) -> bool {
        if self.head_sent {
            return true;
        }
        self.head_sent = true;
        self.tx.send_blocking(Msg::Head(std::mem::take(&mut self.head))).is_ok()
    }
}

impl Handler for Collector {
    fn header(&mut self, line: &[u8]) -> bool {
        if self.cancelled.load(Ordering::Relaxed) {
            return false;
        }
        let line = line.strip_suffix(b"\n").unwrap_or(line);
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.starts_with(b"HTTP/") {
            // A new response (also after `100 Continue`): start over.
            let status = line.split(|b| *b == b' ').nth(1).and_then(|s| std::str::from_utf8(s).ok());
            self.head = Head { status: status.and_then(|s| s.parse().ok()).unwrap_or(0), headers: vec![] };
        } else if line.is_empty() {
            if !(100..200).contains(&self.head.status) {
                return self.send_head();
            }
        } else if let Some(colon) = line.iter().position(|b| *b == b':') {
            let name = String::from_utf8_lossy(&line[..colon]).trim().to_owned();
            let value = line[colon + 1..].trim_ascii().to_vec();
            if !name.is_empty() {
                self.head.headers.push((name, value));
            }
        }
        true
    }

    fn write(&mut self, data: &[u8]) -> Result<usize, WriteError> {
        // Blocks this request's own thread while the reader is behind; fails (aborting the
        // transfer) as soon as the reader is gone.
        if self.cancelled.load(Ordering::Relaxed) || !self.send_head() {
            return Ok(0);
        }
        let coalesce = RUNNING.load(Ordering::Relaxed) <= BIG_CHUNKS_UP_TO;
        if (!coalesce || self.pending.len() + data.len() > CHUNK_MAX) && !self.flush() {
            return Ok(0);
        }
        self.pending.extend_from_slice(data);
        self.received += data.len();
        if !coalesce && !self.flush() {
            return Ok(0);
        }
        Ok(data.len())
    }
}

/// Cancels the transfer when dropped: sets the flag and wakes the curl thread.
struct Cancel {
    cancelled: Arc<AtomicBool>,
    waker: Option<Wake>,
}

impl Drop for Cancel {
    fn drop(&mut self) {
        self.cancelled.store(true, Ordering::Relaxed);
        // The thread may already be gone; then there is nothing to wake. (Without a waker yet,
        // the thread sees the flag before it first polls.)
        if let Some(waker) = &self.waker {
            waker.wake();
        }
    }
}

/// The response body: chunks from the curl thread; dropping it aborts the transfer. Read out
/// chunks go back to the curl thread for reuse, so a download allocates its buffers once.
struct BodyReader {
    rx: Pin<Box<async_channel::Receiver<Msg>>>,
    recycle: async_channel::Sender<Vec<u8>>,
    buf: Vec<u8>,
    pos: usize,
    _cancel: Cancel,
}

impl AsyncBufRead for BodyReader {
    fn poll_fill_buf(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<&[u8]>> {
        let this = self.get_mut();
        while this.pos >= this.buf.len() {
            match this.rx.as_mut().poll_next(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(None) => return Poll::Ready(Ok(&[])),
                Poll::Ready(Some(Msg::Chunk(chunk))) => {
                    let used = std::mem::replace(&mut this.buf, chunk);
                    this.pos = 0;
                    if used.capacity() > 0 {
                        let _ = this.recycle.try_send(used);
                    }
                }
                Poll::Ready(Some(Msg::Failed(reason))) => {
                    return Poll::Ready(Err(std::io::Error::new(std::io::ErrorKind::ConnectionAborted, reason)));
                }
                Poll::Ready(Some(Msg::Head(_))) => {}
            }
        }
        Poll::Ready(Ok(&this.buf[this.pos..]))
    }

    fn consume(self: Pin<&mut Self>, amt: usize) {
        let this = self.get_mut();
        this.pos = (this.pos + amt).min(this.buf.len());
    }
}

impl AsyncRead for BodyReader {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, out: &mut [u8]) -> Poll<std::io::Result<usize>> {
        let n = match self.as_mut().poll_fill_buf(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
            Poll::Ready(Ok(chunk)) => {
                let n = out.len().min(chunk.len());
                out[..n].copy_from_slice(&chunk[..n]);
                n
            }
        };
        self.consume(n);
        Poll::Ready(Ok(n))
    }
}

fn easy_for(
    req: &Request,
    body: Option<Vec<u8>>,
    (ca_bundle, proxy): (Option<&std::path::Path>, Option<&Proxy>),
    collector: Collector,
) -> Result<Easy2<Collector>, curl::Error> {
    let mut easy = Easy2::new(collector);
    easy.url(req.url().as_str())?;
    // issue 13: the configured proxy or, explicitly, none (an empty CURLOPT_PROXY).
    easy.proxy(proxy.and_then(|p| p.for_url(req.url().as_str())).unwrap_or(""))?;
    if let Some(no_proxy) = proxy.and_then(|p| p.no_proxy.as_deref()) {
        easy.noproxy(no_proxy)?;
    }
    easy.follow_location(false)?;
    easy.connect_timeout(CONNECT_TIMEOUT)?;
    easy.tcp_nodelay(true)?;
    easy.buffer_size(BUFFER_SIZE)?;
    easy.signal(false)?;
    // Custom CA bundles, as huggingface_hub (requests) and curl honour them.
    if let Some(bundle) = ca_bundle {
        easy.cainfo(bundle)?;
    }
    let method = req.method().to_string();
    match (method.as_str(), &body) {
        ("GET", None) => easy.get(true)?,
        ("HEAD", None) => easy.nobody(true)?,
        (_, Some(bytes)) => {
            easy.post_fields_copy(bytes)?;
            easy.custom_request(&method)?;
        }
        (_, None) => easy.custom_request(&method)?,
    }
    let mut list = List::new();
    for (name, values) in req.iter() {
        for value in values {
            list.append(&format!("{}: {}", name.as_str(), value.as_str()))?;
        }
    }
    // curl adds `Expect: 100-continue` to bodies; answer straight away instead.
    list.append("Expect:")?;
    easy.http_headers(list)?;
    Ok(easy)
}

/// `REQUESTS_CA_BUNDLE`, `CURL_CA_BUNDLE` or `SSL_CERT_FILE`, the first one set and not empty.
fn ca_bundle() -> Option<std::path::PathBuf> {
    ["REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE"]
        .iter()
        .find_map(|name| std::env::var_os(name).filter(|v| !v.is_empty()))
        .map(std::path::PathBuf::from)
}

#[async_trait::async_trait]
impl HttpClient for CurlClient {
    async fn send(&self, mut req: Request) -> Result<Response, Error> {
        let mut body = req.take_body();
        let body = if body.is_empty() == Some(true) {
            None
        } else {
            let mut bytes = Vec::new();
            (&mut body).take(MAX_REQUEST_BODY as u64 + 1).read_to_end(&mut bytes).await?;
            if bytes.len() > MAX_REQUEST_BODY {
                return Err(Error::from_str(400, "request body too large for the upstream client"));
            }
            Some(bytes)
        };
        let in_flight =
            if RUNNING.load(Ordering::Relaxed) < BIG_CHUNKS_UP_TO { CHUNKS_IN_FLIGHT } else { CHUNKS_IN_FLIGHT_MANY };
        let (tx, rx) = async_channel::bounded(in_flight);
        let (recycle, recycled) = async_channel::bounded(in_flight + 1);
        let cancelled = Arc::new(AtomicBool::new(false));
        let collector = Collector {
            head: Head::default(),
            head_sent: false,
            tx: tx.clone(),
            recycled,
            cancelled: cancelled.clone(),
            pending: Vec::new(),
            received: 0,
        };
        let easy = easy_for(&req, body, (self.ca_bundle.as_deref(), self.proxy.as_ref()), collector)?;
        let (waker_tx, waker_rx) = async_channel::bounded(1);
        let mut cancel = Cancel { cancelled: cancelled.clone(), waker: None };
        let start = Start { easy, cancelled, tx, waker: waker_tx };
        match req.ext().get::<Session>() {
            Some(session) => session.run(start)?,
            None => {
                curl_thread(move || drive(&Multi::new(), start))?;
            }
        }
        // From here on, dropping `cancel` (this future or the body) stops the transfer.
        cancel.waker = Some(waker_rx.recv().await.map_err(|_| Error::from_str(500, "curl thread ended early"))?);
        let head = match rx.recv().await {
            Ok(Msg::Head(head)) => head,
            Ok(Msg::Failed(reason)) => return Err(Error::from_str(502, reason)),
            Ok(Msg::Chunk(_)) | Err(_) => return Err(Error::from_str(502, "upstream closed before answering")),
        };
        let status = http_client::http_types::StatusCode::try_from(head.status)
            .map_err(|_| Error::from_str(502, format!("upstream answered an invalid status {}", head.status)))?;
        let mut response = Response::new(status);
        for (name, value) in head.headers {
            if let Ok(value) = HeaderValue::from_bytes(value) {
                if let Ok(name) = http_client::http_types::headers::HeaderName::from_bytes(name.into_bytes()) {
                    response.append_header(name, value);
                }
            }
        }
        let reader = BodyReader { rx: Box::pin(rx), recycle, buf: Vec::new(), pos: 0, _cancel: cancel };
        response.set_body(Body::from_reader(reader, None));
        Ok(response)
    }

    fn set_config(&mut self, config: Config) -> http_client::http_types::Result<()> {
        self.config = config;
        Ok(())
    }

    fn config(&self) -> &Config {
        &self.config
    }
}
