//! The accept loop, ours instead of `tide::Server::listen`, for three things tide cannot do:
//!
//! - **Stalled requests are closed.** Each connection's reads share one deadline per request: from
//!   the moment the hive starts waiting for a request, its head and body must arrive within
//!   [`Limits::request_timeout`] (async-h1's own head timeout is fixed at 60 s and its body has
//!   none, so a client sending a body that never ends held its connection forever). The deadline
//!   restarts when the hive writes a response, so an idle keep-alive connection is closed after
//!   the same time. Writing (an SSE stream) never times out.
//! - **Connections are capped** ([`Limits::max_connections`]): at the cap the loop stops
//!   accepting, and further clients wait in the kernel's queue, holding no descriptor of ours.
//! - **Unparseable requests get an answer.** async-h1 drops the connection on a request it cannot
//!   decode; we answer `501` to a method it does not know (`QUERY`, …: http-types has a closed list
//!   of methods) and `400` to anything else malformed, then close.
//! - **Each head is checked first, and no request is lost.** The loop reads each request's head
//!   itself (at most [`head::MAX_HEAD`] bytes, under the same deadline) and refuses an ambiguous
//!   one with `400` (see `head.rs`). async-h1 then reads from that buffer and is handed no byte
//!   past the request's end, so a pipelined request waits in the buffer for the next turn instead
//!   of vanishing in a reader async-h1 drops. A chunked body's end is known only to async-h1's
//!   decoder, so a chunked request is answered with `Connection: close`.
//! - **A published blob goes out with `sendfile`.** A response carrying a [`FileRange`] (the
//!   mirror's `GET` of a verified blob) has its head written by async-h1 with an empty body of
//!   the same length, and its bytes sent by the loop before it reads the next request
//!   (`sendfile.rs`).

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use async_h1::server::{ConnectionStatus, Server};
use futures_lite::{AsyncRead, AsyncWrite, AsyncWriteExt, FutureExt};
use smol::net::{TcpListener, TcpStream};

use super::head::{self, Framing};
use super::sendfile::FileRange;
use super::{Access, State};

/// Limits on client connections.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Longest time a request's head and body may take to arrive (and a keep-alive connection may idle).
    pub request_timeout: Duration,
    /// Connections served at once.
    pub max_connections: usize,
}

/// Serves `app` on `listener` until the listener fails.
///
/// # Errors
/// When accepting fails for a reason other than a transient one.
pub async fn serve(app: tide::Server<State>, listener: std::net::TcpListener, limits: Limits) -> io::Result<()> {
    let listener = TcpListener::try_from(listener)?;
    let slots = Arc::new(smol::lock::Semaphore::new(limits.max_connections));
    loop {
        let slot = slots.acquire_arc().await;
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            // Out of descriptors, or a client gone before accept: wait a moment, keep serving.
            Err(e) if is_transient(&e) => {
                smol::Timer::after(Duration::from_millis(50)).await;
                continue;
            }
            Err(e) => return Err(e),
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        async_global_executor::spawn(async move {
            let _slot = slot;
            let access = app.state().access.clone();
            connection(app, &access, Conn::new(stream, limits.request_timeout)).await;
        })
        .detach();
    }
}

fn is_transient(e: &io::Error) -> bool {
    matches!(e.kind(), io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset | io::ErrorKind::Interrupted)
        || e.raw_os_error().is_some_and(|n| n == 23 || n == 24) // ENFILE, EMFILE
}

/// One connection: requests until it closes, fails, or stalls.
async fn connection(app: tide::Server<State>, access: &Access, conn: Conn) {
    let this = conn.clone();
    let mut server = Server::new(conn.clone(), move |req| {
        let (app, conn) = (app.clone(), this.clone());
        async move {
            let chunked = req.header("Transfer-Encoding").is_some();
            let mut res = app.respond::<_, tide::http::Response>(req).await?;
            if let Some(range) = res.ext_mut().remove::<FileRange>() {
                let len = usize::try_from(range.end - range.start).unwrap_or(usize::MAX);
                res.set_body(tide::http::Body::from_reader(futures_lite::io::empty(), Some(len)));
                *conn.state.file.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(range);
            }
            if chunked {
                res.insert_header("Connection", "close");
            }
            // A closing connection reads no more: async-h1's drain of an unread body ends at once.
            if res.header("Connection").is_some_and(|v| v.as_str().eq_ignore_ascii_case("close")) {
                conn.state.closing.store(true, Ordering::SeqCst);
            }
            Ok(res)
        }
    });
    // What each read takes from the socket before it is appended to the connection's input.
    let mut chunk = vec![0; head::MAX_HEAD + 1];
    loop {
        let head = match read_head(&conn, access, &mut chunk).await {
            Ok(Some(head)) => head,
            Ok(None) => break,
            Err(reason) => {
                let _ = reply_to_bad_request(&conn, &reason).await;
                break;
            }
        };
        conn.admit(head);
        let written = conn.state.written.load(Ordering::SeqCst);
        let status = server.accept_one().await;
        let file = conn.state.file.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take();
        let sent = match (&status, file) {
            (Ok(_), Some(range)) => conn.send_file(&range).await,
            _ => true,
        };
        match status {
            Ok(ConnectionStatus::KeepAlive) if sent && head.framing != Framing::Chunked => {}
            Ok(_) => break,
            Err(e) => {
                // Only when nothing of a response went out yet: answer, then close.
                if conn.state.written.load(Ordering::SeqCst) == written && !conn.timed_out() {
                    let _ = reply_to_bad_request(&conn, &e.to_string()).await;
                }
                break;
            }
        }
    }
    let _ = conn.stream.shutdown(std::net::Shutdown::Both);
}

/// Reads until the buffer holds a whole request head and checks it: `Ok(None)` when the client
/// closed or stalled first, `Err` with the reason for a `400`.
async fn read_head(conn: &Conn, access: &Access, chunk: &mut [u8]) -> Result<Option<head::Head>, String> {
    let mut raw = conn.clone();
    loop {
        {
            let input = conn.state.input.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if let Some(head) = head::check(&input.ahead, access)? {
                return Ok(Some(head));
            }
        }
        let n = futures_lite::future::poll_fn(|cx| raw.poll_raw(cx, chunk)).await;
        match n {
            Ok(0) | Err(_) => return Ok(None),
            Ok(n) => {
                conn.state.input.lock().unwrap_or_else(std::sync::PoisonError::into_inner).ahead.extend(&chunk[..n]);
            }
        }
    }
}

async fn reply_to_bad_request(conn: &Conn, reason: &str) -> io::Result<()> {
    let (status, code, message) = if reason.contains("Invalid HTTP method") {
        let code = rbee_protocol::ErrorCode::MethodNotImplemented;
        ("501 Not Implemented", code, "this hive knows GET, HEAD, POST and DELETE only".to_owned())
    } else {
        ("400 Bad Request", rbee_protocol::ErrorCode::BadRequest, format!("the request could not be parsed: {reason}"))
    };
    let body = serde_json::to_vec(&rbee_protocol::ApiError::new(code, message)).unwrap_or_default();
    let head = format!(
        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    let mut w = conn.clone();
    let write = async {
        w.write_all(head.as_bytes()).await?;
        w.write_all(&body).await?;
        w.flush().await
    };
    write
        .or(async {
            smol::Timer::after(Duration::from_secs(2)).await;
            Ok(())
        })
        .await
}

/// Shared by every clone of one connection's stream.
struct ConnState {
    /// The read deadline of the request being waited for; `None` until the next read.
    deadline: Mutex<Option<smol::Timer>>,
    timed_out: std::sync::atomic::AtomicBool,
    /// The response being written says `Connection: close`.
    closing: std::sync::atomic::AtomicBool,
    /// Bytes written so far (to tell whether a response started).
    written: AtomicU64,
    timeout: Duration,
    input: Mutex<Input>,
    /// The bytes of the response just written, for the loop to send after its head.
    file: Mutex<Option<FileRange>>,
}

/// Bytes read from the socket and not yet handed to async-h1, and how many more bytes belong
/// to the request async-h1 is reading (`None`: up to the end of a chunked body, unknown here).
struct Input {
    ahead: Vec<u8>,
    left: Option<u64>,
}

/// A client connection whose reads share a per-request deadline (see the module docs).
#[derive(Clone)]
struct Conn {
    stream: TcpStream,
    state: Arc<ConnState>,
}

impl Conn {
    fn new(stream: TcpStream, timeout: Duration) -> Self {
        let state = ConnState {
            deadline: Mutex::new(None),
            timed_out: std::sync::atomic::AtomicBool::new(false),
            closing: std::sync::atomic::AtomicBool::new(false),
            written: AtomicU64::new(0),
            timeout,
            input: Mutex::new(Input { ahead: Vec::new(), left: Some(0) }),
            file: Mutex::new(None),
        };
        Self { stream, state: Arc::new(state) }
    }

    fn timed_out(&self) -> bool {
        self.state.timed_out.load(Ordering::SeqCst)
    }

    /// Sends a response's bytes after its head; whether all went out (else the connection ends:
    /// the client went away, or the blob could not be read and the response is cut short).
    async fn send_file(&self, range: &FileRange) -> bool {
        let sent = range.send(&self.stream).await;
        *self.state.deadline.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = None;
        match sent {
            Ok(n) => {
                self.state.written.fetch_add(n, Ordering::SeqCst);
                true
            }
            Err(e) => {
                log::debug!("sending `{}` stopped: {e}", range.path.display());
                false
            }
        }
    }

    /// Lets async-h1 read the request whose head was checked: its head and body, no further.
    fn admit(&self, head: head::Head) {
        let mut input = self.state.input.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        input.left = match head.framing {
            Framing::Length(body) => Some(head.len as u64 + body),
            Framing::Chunked => None,
        };
    }

    /// Reads from the socket under the request deadline.
    fn poll_raw(&mut self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        let state = self.state.clone();
        // Once a request stalled, the connection is done: the 408 that answered it says
        // `Connection: close`, so async-h1's drain of the unread body must not wait out a second
        // deadline before the socket closes (RFC 9112 §9.6).
        if state.timed_out.load(Ordering::SeqCst) {
            return Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, "the request stalled")));
        }
        let mut deadline = state.deadline.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let timer = deadline.get_or_insert_with(|| smol::Timer::after(state.timeout));
        match Pin::new(&mut self.stream).poll_read(cx, buf) {
            Poll::Pending if Pin::new(timer).poll(cx).is_ready() => {
                state.timed_out.store(true, Ordering::SeqCst);
                Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("the request did not arrive within {} s", state.timeout.as_secs_f64()),
                )))
            }
            other => other,
        }
    }
}

impl AsyncRead for Conn {
    /// What async-h1 reads: the bytes read ahead first, then the socket, never past the request.
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        let state = self.state.clone();
        let mut input = state.input.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let cap = input.left.map_or(buf.len(), |left| buf.len().min(usize::try_from(left).unwrap_or(usize::MAX)));
        if cap == 0 || state.closing.load(Ordering::SeqCst) {
            return Poll::Ready(Ok(0));
        }
        let res = if input.ahead.is_empty() {
            self.poll_raw(cx, &mut buf[..cap])
        } else {
            let n = cap.min(input.ahead.len());
            buf[..n].copy_from_slice(&input.ahead[..n]);
            input.ahead.drain(..n);
            Poll::Ready(Ok(n))
        };
        if let (Poll::Ready(Ok(n)), Some(left)) = (&res, input.left.as_mut()) {
            *left -= *n as u64;
        }
        res
    }
}

impl AsyncWrite for Conn {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let res = Pin::new(&mut self.stream).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = res {
            if n > 0 {
                self.state.written.fetch_add(n as u64, Ordering::SeqCst);
                // A response is going out: the next request gets a fresh deadline.
                *self.state.deadline.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = None;
            }
        }
        res
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_close(cx)
    }
}
