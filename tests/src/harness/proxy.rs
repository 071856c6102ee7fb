//! [`Proxy`]: a loopback TCP relay between the keeper and a hive that a test can sabotage —
//! [`Proxy::cut`] drops every open connection (e.g. a job's event stream mid-download),
//! [`Proxy::freeze`] holds all traffic (a hive that stopped answering) — and that counts the
//! `DELETE /v1/jobs/…` requests passing through it.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Debug, Default)]
struct State {
    open: Mutex<Vec<TcpStream>>,
    frozen: AtomicBool,
    stopped: AtomicBool,
    accepted: AtomicUsize,
    deletes: AtomicUsize,
}

/// A relay from a free loopback port to `upstream`; stops on `Drop`.
#[derive(Debug)]
pub struct Proxy {
    addr: String,
    state: Arc<State>,
}

impl Proxy {
    /// Relay to `upstream` (`http://host:port` or `host:port`).
    ///
    /// # Panics
    /// When no loopback port can be bound.
    pub fn start(upstream: &str) -> Self {
        let upstream = upstream.trim_start_matches("http://").trim_end_matches('/').to_owned();
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the proxy");
        let addr = listener.local_addr().expect("proxy address").to_string();
        let state = Arc::new(State::default());
        let shared = state.clone();
        std::thread::spawn(move || {
            for client in listener.incoming() {
                if shared.stopped.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(client) = client else { continue };
                shared.accepted.fetch_add(1, Ordering::SeqCst);
                if let Ok(server) = TcpStream::connect(&upstream) {
                    relay(&shared, client, server);
                }
            }
        });
        Self { addr, state }
    }

    /// `http://127.0.0.1:PORT`, to give the keeper as `--hive`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Drop every open connection (both sides); how many there were.
    pub fn cut(&self) -> usize {
        let open = std::mem::take(&mut *self.state.open.lock().expect("proxy lock"));
        for conn in &open {
            let _ = conn.shutdown(Shutdown::Both);
        }
        open.len() / 2
    }

    /// Hold (`true`) or release (`false`) all traffic, on open and new connections.
    pub fn freeze(&self, frozen: bool) {
        self.state.frozen.store(frozen, Ordering::SeqCst);
    }

    /// `DELETE /v1/jobs/…` requests seen so far.
    pub fn deletes(&self) -> usize {
        self.state.deletes.load(Ordering::SeqCst)
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.state.accepted.load(Ordering::SeqCst)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.state.stopped.store(true, Ordering::SeqCst);
        self.freeze(false);
        self.cut();
        let _ = TcpStream::connect(&self.addr); // wake the accept loop
    }
}

fn relay(state: &Arc<State>, client: TcpStream, server: TcpStream) {
    let clones = [&client, &server].map(|s| s.try_clone().expect("clone a proxied socket"));
    state.open.lock().expect("proxy lock").extend(clones);
    let (c2, s2) = (client.try_clone().expect("clone"), server.try_clone().expect("clone"));
    let up = state.clone();
    std::thread::spawn(move || pump(&up, client, server, true));
    let down = state.clone();
    std::thread::spawn(move || pump(&down, s2, c2, false));
}

/// Copy `from` → `to` until either side ends, then end the other.
fn pump(state: &State, mut from: TcpStream, mut to: TcpStream, upstream: bool) {
    let mut buf = vec![0u8; 16 * 1024];
    while let Ok(n @ 1..) = from.read(&mut buf) {
        if upstream {
            let text = String::from_utf8_lossy(&buf[..n]);
            state.deletes.fetch_add(text.matches("DELETE /v1/jobs/").count(), Ordering::SeqCst);
        }
        while state.frozen.load(Ordering::SeqCst) && !state.stopped.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(10));
        }
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = to.shutdown(Shutdown::Write);
    let _ = from.shutdown(Shutdown::Read);
}
