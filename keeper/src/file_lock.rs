//! Waiting for an advisory file lock that another rbee holds: the hive start lock
//! (`hive_spawn`) and the SSH tunnel lock (`ssh::tunnel`) poll the same way and differ only in
//! what they tell the user when the wait runs out.

use std::fs::{File, TryLockError};
use std::time::{Duration, Instant};

/// Why [`wait`] did not get the lock.
#[derive(Debug)]
pub(crate) enum NotLocked {
    /// Another process still held it when the patience ran out.
    Busy,
    /// Locking itself failed.
    Failed(std::io::Error),
}

/// Locks `file` (held until it is dropped), trying every `poll` for at most `patience`; the
/// waits are timers, so an executor running this stays free.
pub(crate) async fn wait(file: &File, patience: Duration, poll: Duration) -> Result<(), NotLocked> {
    let deadline = Instant::now() + patience;
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(()),
            Err(TryLockError::WouldBlock) if Instant::now() < deadline => {
                smol::Timer::after(poll).await;
            }
            Err(TryLockError::WouldBlock) => return Err(NotLocked::Busy),
            Err(TryLockError::Error(e)) => return Err(NotLocked::Failed(e)),
        }
    }
}
