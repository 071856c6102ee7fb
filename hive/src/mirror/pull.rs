//! Pull-through (`--mirror-upstream`): a file the cache lacks becomes a `model_download` job of
//! this hive — one job however many clients ask for it at once — and is served while it runs.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use rbee_protocol::{ModelDownload, Operation, Submitted};

use crate::jobs::EventLog;
use crate::Hive;

/// The pull-through setting and the jobs it started, by what they fetch.
#[derive(Debug, Default)]
pub struct Pull {
    enabled: bool,
    jobs: Mutex<HashMap<(String, String, String), Arc<EventLog>>>,
}

impl Pull {
    /// Pull-through on or off.
    #[must_use]
    pub fn new(enabled: bool) -> Self {
        Self { enabled, jobs: Mutex::default() }
    }

    /// Whether misses are fetched from upstream.
    #[must_use]
    pub fn enabled(&self) -> bool {
        self.enabled
    }
}

impl Hive {
    /// The running job that downloads `file` of `repo` at `revision` into the cache, started
    /// when there is none: concurrent misses of the same file share one job (and jobs of
    /// different revisions naming the same blob share its lock, so one download).
    pub fn pull(self: &Arc<Self>, repo: &str, revision: &str, file: &str) -> Arc<EventLog> {
        let mut jobs = self.pull.jobs.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        jobs.retain(|_, log| !log.status().is_final());
        let key = (repo.to_owned(), revision.to_owned(), file.to_owned());
        if let Some(log) = jobs.get(&key) {
            return log.clone();
        }
        let mut download =
            ModelDownload::new(&rbee_protocol::ModelRef { repo: repo.to_owned(), file: Some(file.to_owned()) });
        download.revision = Some(revision.to_owned());
        // One stream: its `.incomplete` grows as a contiguous prefix, which is what the waiting
        // clients are served from while it runs (parts land in a sparse file out of order).
        download.connections = Some(1);
        let op = Operation::ModelDownload(download);
        let id = self.clone().submit(Submitted::Supported(op));
        log::info!("mirror: pulling `{}` through {id}", rbee_protocol::escape(&format!("{repo}:{file}@{revision}")));
        let log = self.registry.log(&id).unwrap_or_default();
        jobs.insert(key, log.clone());
        log
    }
}
