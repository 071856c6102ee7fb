//! The curl side of a transfer: the thread (or a part worker's [`Session`]) that runs one curl
//! multi handle, hands what it receives to the reader and stops the moment the reader is gone.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use curl::easy::Easy2;
use curl::multi::{Multi, MultiWaker};
use http_client::Error;

use super::{Collector, Msg};

/// Transfers running in this process.
pub(super) static RUNNING: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Counts a transfer in [`RUNNING`] while it lives.
struct Running;

impl Running {
    fn enter() -> Self {
        RUNNING.fetch_add(1, Ordering::Relaxed);
        Self
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        RUNNING.fetch_sub(1, Ordering::Relaxed);
    }
}

/// How long the curl thread sleeps in `poll` when nothing happens (a wakeup cuts it short).
const IDLE_POLL: Duration = Duration::from_secs(1);
/// After a `perform` that drained the socket with less than one receive buffer (a paced or slow
/// link), the thread waits this long before reading again, so the next read takes what several
/// bursts left in the socket: a CDN that paces each connection at 64 KiB every 4 ms otherwise
/// wakes this thread, and the reader after it, per burst. Nothing waits longer than this for
/// the reader, and a cancel cuts the wait short ([`Wake`]).
const GATHER: Duration = Duration::from_millis(8);
/// A transfer for a curl thread to run.
pub(super) struct Start {
    pub(super) easy: Easy2<Collector>,
    pub(super) cancelled: Arc<AtomicBool>,
    pub(super) tx: async_channel::Sender<Msg>,
    /// Where the thread sends the waker that cancels it.
    pub(super) waker: async_channel::Sender<Wake>,
}

/// Wakes a curl thread out of `poll` and out of a [`GATHER`] wait.
pub(super) struct Wake {
    multi: MultiWaker,
    thread: std::thread::Thread,
}

impl Wake {
    pub(super) fn wake(&self) {
        let _ = self.multi.wakeup();
        self.thread.unpark();
    }
}

pub(super) fn curl_thread(f: impl FnOnce() + Send + 'static) -> std::io::Result<()> {
    std::thread::Builder::new().name("rbee-curl".into()).stack_size(1 << 20).spawn(f).map(drop)
}

/// Keeps connections between the requests of one part worker: its requests (set with
/// `surf::Request::set_ext`) run one after another on one thread with one curl multi handle,
/// whose connection cache lets a request reuse the connection the one before it finished with.
/// A transfer cancelled mid-body is removed from the multi handle, which closes its connection
/// at once, as before; dropping the session ends the thread, which closes the idle ones.
#[derive(Clone)]
pub(crate) struct Session {
    starts: std::sync::mpsc::Sender<Start>,
}

impl Session {
    pub(crate) fn new() -> std::io::Result<Self> {
        let (starts, next) = std::sync::mpsc::channel::<Start>();
        curl_thread(move || {
            let multi = Multi::new();
            while let Ok(start) = next.recv() {
                drive(&multi, start);
            }
        })?;
        Ok(Self { starts })
    }

    pub(super) fn run(&self, start: Start) -> Result<(), Error> {
        self.starts.send(start).map_err(|_| Error::from_str(500, "the curl session thread ended"))
    }
}

/// Runs one transfer to its end (or until cancelled) on the calling thread, then takes it off
/// `multi` (which closes its connection unless the transfer finished cleanly).
pub(super) fn drive(multi: &Multi, Start { easy, cancelled, tx, waker }: Start) {
    let _running = Running::enter();
    if waker.try_send(Wake { multi: multi.waker(), thread: std::thread::current() }).is_err() {
        return;
    }
    let failure = match multi.add2(easy) {
        Ok(mut handle) => {
            let failure = transfer(multi, &mut handle, &cancelled);
            drop(multi.remove2(handle));
            failure
        }
        Err(e) => Some(e.to_string()),
    };
    if let Some(reason) = failure {
        let _ = tx.send_blocking(Msg::Failed(reason));
    }
}

/// The transfer's loop; why it failed, if it did (a cancel is no failure).
fn transfer(multi: &Multi, handle: &mut curl::multi::Easy2Handle<Collector>, cancelled: &AtomicBool) -> Option<String> {
    loop {
        if cancelled.load(Ordering::Relaxed) {
            return None;
        }
        let running = match multi.perform() {
            Ok(n) => n,
            Err(e) => return Some(e.to_string()),
        };
        // What this `perform` received goes to the reader now (an error comes after it).
        let collector = handle.get_mut();
        if !collector.flush() {
            return None;
        }
        let got = std::mem::take(&mut collector.received);
        if running == 0 {
            let mut outcome = None;
            multi.messages(|m| outcome = m.result_for2(handle));
            return match outcome {
                Some(Err(e)) if !cancelled.load(Ordering::Relaxed) => Some(e.to_string()),
                _ => None,
            };
        }
        if (1..super::BUFFER_SIZE).contains(&got) {
            std::thread::park_timeout(GATHER);
            continue;
        }
        if let Err(e) = multi.poll(&mut [], IDLE_POLL) {
            return Some(e.to_string());
        }
    }
}
