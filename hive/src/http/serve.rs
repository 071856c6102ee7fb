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

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use async_h1::server::{ConnectionStatus, Server};
use futures_lite::{AsyncRead, AsyncWrite, AsyncWriteExt, FutureExt};
use smol::net::{TcpListener, TcpStream};

use super::State;

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
            connection(app, Conn::new(stream, limits.request_timeout)).await;
        })
        .detach();
    }
}

fn is_transient(e: &io::Error) -> bool {
    matches!(e.kind(), io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset | io::ErrorKind::Interrupted)
        || e.raw_os_error().is_some_and(|n| n == 23 || n == 24) // ENFILE, EMFILE
}

/// One connection: requests until it closes, fails, or stalls.
async fn connection(app: tide::Server<State>, conn: Conn) {
    let mut server = Server::new(conn.clone(), move |req| {
        let app = app.clone();
        async move { app.respond::<_, tide::http::Response>(req).await }
    });
    loop {
        let written = conn.state.written.load(Ordering::SeqCst);
        match server.accept_one().await {
            Ok(ConnectionStatus::KeepAlive) => {}
            Ok(ConnectionStatus::Close) => break,
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
    /// Bytes written so far (to tell whether a response started).
    written: AtomicU64,
    timeout: Duration,
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
            written: AtomicU64::new(0),
            timeout,
        };
        Self { stream, state: Arc::new(state) }
    }

    fn timed_out(&self) -> bool {
        self.state.timed_out.load(Ordering::SeqCst)
    }
}

impl AsyncRead for Conn {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
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
