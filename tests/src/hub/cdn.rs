//! The CDN: a hand-written HTTP/1.1 server for `GET|HEAD /blobs/{org}/{name}/{sha256}`.
//!
//! One request per connection (`Connection: close`), so each download attempt is one recorded
//! [`Connection`](super::Connection). While the body is written (paced, maybe faulted) the socket
//! is also read, so a client close or reset is timestamped the moment it happens — even while the
//! response is throttled or stalled.

use std::io;
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use async_io::{Async, Timer};
use futures_lite::{future, AsyncReadExt, AsyncWriteExt};
use smol::Executor;

use super::body::Span;
use super::content::{FileData, CHUNK};
use super::faults::{Cut, Fault, Pacer};
use super::stats::CloseReason;
use super::Shared;

const THREADS: usize = 4;
const MAX_HEAD: usize = 16 * 1024;

/// Serve the CDN on `THREADS` threads until `stop` closes.
pub(crate) fn spawn(
    shared: Arc<Shared>,
    listener: TcpListener,
    stop: &async_channel::Receiver<()>,
) -> io::Result<Vec<JoinHandle<()>>> {
    let listener = Async::new(listener)?;
    let ex = Arc::new(Executor::new());
    ex.spawn(accept_loop(shared, listener, Arc::downgrade(&ex))).detach();
    (0..THREADS)
        .map(|i| {
            let (ex, stop) = (ex.clone(), stop.clone());
            // The last thread out drops the executor, which cancels every connection task.
            std::thread::Builder::new().name(format!("fake-cdn-{i}")).spawn(move || {
                smol::block_on(ex.run(stop.recv())).ok();
            })
        })
        .collect()
}

async fn accept_loop(shared: Arc<Shared>, listener: Async<TcpListener>, ex: std::sync::Weak<Executor<'static>>) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => match ex.upgrade() {
                Some(ex) => ex.spawn(serve(shared.clone(), stream)).detach(),
                None => return,
            },
            Err(_) => {
                Timer::after(Duration::from_millis(10)).await;
            }
        }
    }
}

/// A parsed request head.
struct Head {
    line: String,
    method: String,
    path: String,
    headers: Vec<(String, String)>,
}

impl Head {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

async fn serve(shared: Arc<Shared>, stream: Async<TcpStream>) {
    let rec = &shared.recorder;
    let id = rec.open();
    let reason = match read_head(&stream).await {
        Some(head) => {
            rec.update(id, |c| {
                c.method.clone_from(&head.method);
                c.path.clone_from(&head.path);
                c.request_line.clone_from(&head.line);
                c.headers.clone_from(&head.headers);
                c.range = head.header("range").map(str::to_owned);
                c.authorization = head.header("authorization").map(str::to_owned);
            });
            let conn = Conn { shared: &shared, id, stream: &stream };
            future::or(respond(&conn, &head), watch_close(&stream)).await
        }
        None => CloseReason::ClientClosed,
    };
    rec.closed(id, Instant::now(), reason);
    if reason == CloseReason::Reset {
        let _ = socket2::SockRef::from(stream.get_ref()).set_linger(Some(Duration::ZERO));
    } else {
        let _ = stream.get_ref().shutdown(Shutdown::Write);
    }
}

async fn read_head(stream: &Async<TcpStream>) -> Option<Head> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 2048];
    let end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        let n = (&*stream).read(&mut chunk).await.ok().filter(|n| *n > 0 && buf.len() < MAX_HEAD)?;
        buf.extend_from_slice(&chunk[..n]);
    };
    let text = String::from_utf8_lossy(&buf[..end]).into_owned();
    let mut lines = text.split("\r\n");
    let line = lines.next()?;
    let mut first = line.split(' ');
    let (method, path) = (first.next()?.to_owned(), first.next()?.to_owned());
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    Some(Head { line: line.to_owned(), method, path, headers })
}

/// Resolves when the client closes or resets its side.
async fn watch_close(stream: &Async<TcpStream>) -> CloseReason {
    let mut buf = [0u8; 1024];
    loop {
        match (&*stream).read(&mut buf).await {
            Ok(0) => return CloseReason::ClientClosed,
            Ok(_) => {}
            Err(_) => return CloseReason::ClientError,
        }
    }
}

fn blob(shared: &Shared, path: &str) -> Option<Arc<FileData>> {
    let path = path.split('?').next()?.strip_prefix("/blobs/")?;
    let (repo, sha) = path.rsplit_once('/')?;
    shared.repos().blob(repo, sha)
}

async fn respond(conn: &Conn<'_>, head: &Head) -> CloseReason {
    let Conn { shared, id, .. } = *conn;
    let rec = &shared.recorder;
    if let Some(rest) = head.path.strip_prefix("/bridge/") {
        return bridge(conn, rest).await;
    }
    let file = match blob(shared, &head.path) {
        Some(f) if matches!(head.method.as_str(), "GET" | "HEAD") => f,
        _ => return conn.answer(404, &[]).await,
    };
    let fault = shared.faults().take(&file.name);
    rec.update(id, |c| {
        c.file = Some(file.name.clone());
        c.fault = fault;
    });
    if let Some(Fault::Status(code)) = fault {
        return conn.answer(code, &[]).await;
    }
    let range = if fault == Some(Fault::IgnoreRange) { None } else { head.header("range") };
    let span = Span::parse(range, file.size);
    let (start, end) = span.bounds(file.size);
    let etag = format!("\"{}\"", file.sha256());
    let mut headers = vec![("ETag", etag), ("Accept-Ranges", "bytes".into())];
    let status = match span {
        Span::Unsatisfiable => {
            headers.push(("Content-Range", format!("bytes */{}", file.size)));
            return conn.answer(416, &headers).await;
        }
        Span::Part(..) => {
            headers.push(("Content-Range", format!("bytes {start}-{}/{}", end - 1, file.size)));
            206
        }
        Span::Full => 200,
    };
    if fault != Some(Fault::Endless) {
        headers.push(("Content-Length", (end - start).to_string()));
    }
    headers.push(("Content-Type", "application/octet-stream".into()));
    if let Some(reason) = conn.write_head(status, &headers).await {
        return reason;
    }
    if head.method == "HEAD" {
        return CloseReason::Finished;
    }
    send_body(conn, &file, (start, end), fault).await
}

/// The Xet bridge host (`/bridge/{repo}/{sha}`): a redirect on to the CDN's blob, or a refusal
/// of plain HTTP for a file marked so.
async fn bridge(conn: &Conn<'_>, rest: &str) -> CloseReason {
    let shared = conn.shared;
    let file = blob(shared, &format!("/blobs/{rest}"));
    let refused = file.as_ref().and_then(|f| shared.faults().xet.get(&f.name).copied());
    match (file, refused) {
        (None, _) => conn.answer(404, &[]).await,
        (Some(_), Some(true)) => {
            let why = ("X-Error-Message", "this file is only available through the Xet protocol".to_owned());
            conn.answer(400, &[why]).await
        }
        (Some(_), _) => {
            let to = ("Location", format!("{}/blobs/{rest}", shared.cdn_url));
            conn.answer(302, &[to]).await
        }
    }
}

/// One connection being answered: what every step of the answer needs.
struct Conn<'a> {
    shared: &'a Shared,
    /// Its id in the recorder.
    id: u64,
    stream: &'a Async<TcpStream>,
}

impl Conn<'_> {
    /// Write a status line and headers; `Some(reason)` when the client is gone.
    async fn write_head(&self, status: u16, headers: &[(&str, String)]) -> Option<CloseReason> {
        self.shared.recorder.update(self.id, |c| c.status = Some(status));
        let mut text = format!("HTTP/1.1 {status} {}\r\n", reason_phrase(status));
        for (k, v) in headers {
            text.push_str(&format!("{k}: {v}\r\n"));
        }
        text.push_str("Connection: close\r\n\r\n");
        (&*self.stream).write_all(text.as_bytes()).await.err().map(|_| CloseReason::ClientError)
    }

    /// A body-less answer.
    async fn answer(&self, status: u16, extra: &[(&str, String)]) -> CloseReason {
        let mut headers = extra.to_vec();
        headers.push(("Content-Length", "0".into()));
        self.write_head(status, &headers).await.unwrap_or(CloseReason::Finished)
    }
}

async fn send_body(conn: &Conn<'_>, file: &FileData, (start, end): (u64, u64), fault: Option<Fault>) -> CloseReason {
    let Conn { shared, id, stream } = *conn;
    let cut = fault.and_then(Fault::cut).map(|(n, how)| (start + n, how));
    let end = if fault == Some(Fault::Endless) { u64::MAX } else { end };
    let mut buf = vec![0u8; CHUNK];
    let mut pacer = Pacer::new();
    let mut pos = start;
    loop {
        match cut {
            Some((at, Cut::Reset)) if pos >= at => return CloseReason::Reset,
            Some((at, Cut::Truncate)) if pos >= at => return CloseReason::Truncated,
            Some((at, Cut::Stall)) if pos >= at => return future::pending().await,
            _ if pos >= end => return CloseReason::Finished,
            _ => {}
        }
        let trickle = matches!(cut, Some((at, Cut::Trickle)) if pos >= at);
        let limit = if trickle { end } else { cut.map_or(end, |(at, _)| at.min(end)) };
        let mut n = (shared.chunk_len() as u64).min(limit - pos) as usize;
        if trickle {
            n = 1;
            Timer::after(Duration::from_secs(1)).await;
        }
        if pos < file.size {
            n = n.min(usize::try_from(file.size - pos).unwrap_or(usize::MAX));
        }
        let due = pacer.reserve(&shared.rate, n).max(shared.reserve_link(n));
        if let Some(due) = due {
            Timer::at(due).await;
        }
        if pos < file.size {
            file.fill(pos, &mut buf[..n]);
        } else {
            buf[..n].fill(b'!'); // past the declared end (Fault::Endless)
        }
        if fault == Some(Fault::WrongBytes) {
            buf[0] ^= 0xFF;
        }
        if (&*stream).write_all(&buf[..n]).await.is_err() {
            return CloseReason::ClientError;
        }
        shared.recorder.sent(id, n as u64);
        pos += n as u64;
    }
}

fn reason_phrase(status: u16) -> &'static str {
    match status {
        200 => "OK",
        206 => "Partial Content",
        302 => "Found",
        400 => "Bad Request",
        404 => "Not Found",
        416 => "Range Not Satisfiable",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        _ => "Status",
    }
}
