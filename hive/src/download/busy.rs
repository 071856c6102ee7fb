//! Which job is downloading what, so a removal can refuse (409, naming the job) instead of
//! deleting a download in flight. An entry lives exactly as long as the job's task: it is taken
//! when the job is spawned and dropped with the task (done, failed or cancelled).

use std::sync::{Arc, Mutex};

/// One download in flight: a repo, or one file of it.
#[derive(Debug, Clone)]
struct Entry {
    serial: u64,
    job: String,
    repo: String,
    /// `None`: the whole repo.
    file: Option<String>,
}

/// The table of downloads in flight.
#[derive(Debug, Default)]
pub struct Busy {
    entries: Arc<Mutex<(u64, Vec<Entry>)>>,
}

/// Removes its entry when dropped.
#[derive(Debug)]
pub struct BusyGuard {
    entries: Arc<Mutex<(u64, Vec<Entry>)>>,
    serial: u64,
}

impl Busy {
    /// Records that `job` downloads `repo` (or only `file` of it) until the guard drops.
    pub fn claim(&self, job: &str, repo: &str, file: Option<&str>) -> BusyGuard {
        let mut table = self.entries.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        table.0 += 1;
        let serial = table.0;
        table.1.push(Entry { serial, job: job.to_owned(), repo: repo.to_owned(), file: file.map(str::to_owned) });
        BusyGuard { entries: self.entries.clone(), serial }
    }

    /// The job downloading something that removing `repo` (or only `file` of it) would delete.
    #[must_use]
    pub fn holder(&self, repo: &str, file: Option<&str>) -> Option<String> {
        let table = self.entries.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        table
            .1
            .iter()
            .find(|e| e.repo == repo && (file.is_none() || e.file.is_none() || e.file.as_deref() == file))
            .map(|e| e.job.clone())
    }
}

impl Drop for BusyGuard {
    fn drop(&mut self) {
        let mut table = self.entries.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        table.1.retain(|e| e.serial != self.serial);
    }
}

#[cfg(test)]
mod tests {
    use super::Busy;

    #[test]
    fn holders() {
        let busy = Busy::default();
        let one = busy.claim("job-1", "o/r", Some("a.gguf"));
        assert_eq!(busy.holder("o/r", None).as_deref(), Some("job-1"));
        assert_eq!(busy.holder("o/r", Some("a.gguf")).as_deref(), Some("job-1"));
        assert_eq!(busy.holder("o/r", Some("b.gguf")), None);
        assert_eq!(busy.holder("o/other", None), None);
        let whole = busy.claim("job-2", "o/r", None);
        assert_eq!(busy.holder("o/r", Some("b.gguf")).as_deref(), Some("job-2"));
        drop((one, whole));
        assert_eq!(busy.holder("o/r", None), None);
    }
}
