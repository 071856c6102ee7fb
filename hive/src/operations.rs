//! Running each operation of rbee's contract as a job: its work is one future whose output is the
//! job's terminal event.

use std::sync::Arc;
use std::time::Instant;

use rbee_protocol::{escape, text, Event, ModelDelete, ModelGet, ModelRef, Operation, Submitted};

use crate::jobs::EventLog;
use crate::{models, Hive};

/// Logs how a job ended — completed, failed (with the whole reason) or cancelled (its task
/// dropped, by `DELETE`, a forced removal or shutdown) — with its duration and the bytes it
/// received. Built when the job's work starts, dropped with it.
struct JobEnd {
    id: String,
    /// What the job does (`model_download org/repo:file`), so its end line names the model.
    what: String,
    started: Instant,
    log: Arc<EventLog>,
    logged: bool,
}

impl JobEnd {
    fn new(id: &str, what: &str, log: Arc<EventLog>) -> Self {
        Self { id: id.to_owned(), what: escape(what).into_owned(), started: Instant::now(), log, logged: false }
    }

    /// Seconds since the job started, and the bytes it fetched.
    fn spent(&self) -> (f64, String) {
        (self.started.elapsed().as_secs_f64(), text::bytes(received(&self.log)))
    }

    /// The job's own end: its terminal event.
    fn ended(mut self, event: &Event) {
        self.logged = true;
        let (took, bytes) = self.spent();
        let id = &self.id;
        match event {
            Event::Done { .. } => log::info!("{id} completed in {took:.1} s, {bytes} received"),
            Event::Error { message } => {
                log::warn!("{id} failed after {took:.1} s, {bytes} received: {}", escape(message));
            }
            other => log::info!("{id} ended ({}) after {took:.1} s, {bytes} received", other.name()),
        }
    }
}

impl Drop for JobEnd {
    fn drop(&mut self) {
        if !self.logged {
            let (took, bytes) = self.spent();
            log::info!("{} cancelled after {took:.1} s, {bytes} received (task dropped): {}", self.id, self.what);
        }
    }
}

/// Bytes the job fetched: per file, its last progress past where it resumed.
fn received(log: &EventLog) -> u64 {
    let mut files = std::collections::HashMap::new();
    for (_, event) in log.since(0).0 {
        if let Event::Progress { file, bytes, resumed_from, .. } = event {
            files.insert(file, bytes.saturating_sub(resumed_from));
        }
    }
    files.values().sum()
}

impl Hive {
    /// Starts what a `POST /v1/jobs` body asked for as a job; returns its id.
    pub fn submit(self: Arc<Self>, submitted: Submitted) -> String {
        let (description, op) = match submitted {
            Submitted::Supported(op) => (op.describe(), Some(op)),
            Submitted::Unsupported(name) => (name, None),
        };
        let hive = self.clone();
        let name = description.clone();
        let id = self.registry.spawn(description.clone(), move |ctx| {
            // Claimed before the task first runs, dropped with it: a removal that follows the
            // POST at once already sees this download (a bare `org/repo` claims the whole repo).
            let busy = match &op {
                Some(Operation::ModelDownload(d)) => d.model_ref().ok().map(|m| {
                    let file = m.file.as_deref().filter(|_| !d.all);
                    hive.downloader.busy().claim(&ctx.id, &m.repo, file)
                }),
                _ => None,
            };
            let end = JobEnd::new(&ctx.id, &name, ctx.log.clone());
            async move {
                let _busy = busy;
                let event = match op {
                    Some(Operation::ModelDownload(d)) => hive.downloader.run(ctx, d).await,
                    Some(Operation::ModelList(_)) => hive.model_list().await,
                    Some(Operation::ModelGet(g)) => hive.model_get(&g).await,
                    Some(Operation::ModelDelete(d)) => hive.model_delete(&d).await,
                    Some(Operation::ModelVerify(v)) => hive.model_verify(&ctx, v.id.as_deref()).await,
                    Some(Operation::HiveCheck { alias }) => hive.hive_check(&ctx.log, &alias),
                    None => Event::Error { message: format!("operation `{name}` is not supported by this hive") },
                };
                end.ended(&event);
                event
            }
        });
        log::info!("{id} started: {}", escape(&description));
        id
    }

    async fn model_list(&self) -> Event {
        match models::list(self.downloader.cache().to_owned()).await {
            Ok(listing) => Event::Done {
                message: match listing.repos.len() {
                    1 => "📦 1 model in the cache".to_owned(),
                    n => format!("📦 {n} models in the cache"),
                },
                path: Some(listing.cache_dir.clone()),
                lines: text::listing_lines(&listing),
                result: serde_json::to_value(listing).ok(),
            },
            Err(e) => Event::Error { message: e.to_string() },
        }
    }

    async fn model_get(&self, get: &ModelGet) -> Event {
        let got = match ModelRef::parse(&get.id) {
            Ok(model) => models::get(self.downloader.cache().to_owned(), &model).await.map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        match got {
            Ok(repo) => Event::Done {
                message: format!("📦 {}", get.id),
                path: None,
                lines: text::repo_lines(&repo, None).split_off(1),
                result: serde_json::to_value(repo).ok(),
            },
            Err(message) => Event::Error { message },
        }
    }

    async fn model_delete(&self, delete: &ModelDelete) -> Event {
        let removed = match ModelRef::parse(&delete.id) {
            Ok(model) => models::delete(self, &model, delete.partial, delete.force).await.map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        match removed {
            Ok(report) => Event::Done {
                message: text::removal_line(&delete.id, &report),
                path: None,
                lines: Vec::new(),
                result: serde_json::to_value(report).ok(),
            },
            Err(message) => Event::Error { message },
        }
    }

    /// `model_verify`: re-hash blobs, quarantine mismatches (see `cache::verify`). A job that
    /// quarantined anything fails, so `rbee model verify` exits 1.
    async fn model_verify(&self, ctx: &crate::jobs::JobCtx, id: Option<&str>) -> Event {
        use crate::cache::verify;
        let cache = self.downloader.cache().to_owned();
        let repos = match id.map(ModelRef::parse).transpose() {
            Ok(model) => verify::repos(&cache, model.as_ref().map(|m| m.repo.as_str())),
            Err(e) => Err(e.to_string()),
        };
        let repos = match repos {
            Ok(r) => r,
            Err(message) => return Event::Error { message },
        };
        let mut report = verify::Report::default();
        for repo in &repos {
            if let Err(e) = verify::repo(ctx, &cache, repo, &mut report).await {
                return Event::Error { message: format!("verify of {} failed: {e}", escape(repo)) };
            }
        }
        let checked = report.ok + report.quarantined.len();
        if !report.quarantined.is_empty() {
            return Event::Error {
                message: format!(
                    "{} of {checked} blobs failed their check and were quarantined in {} (each with a .json \
                     record of its links, to restore it); download them again",
                    report.quarantined.len(),
                    cache.join(verify::QUARANTINE).display()
                ),
            };
        }
        Event::Done {
            message: format!(
                "✅ verified {checked} blobs in {} repos: all match their names{}",
                report.repos,
                if report.unverifiable > 0 {
                    format!(" ({} not verifiable)", report.unverifiable)
                } else {
                    String::new()
                }
            ),
            path: None,
            lines: Vec::new(),
            result: serde_json::to_value(&report).ok(),
        }
    }

    /// rbee's `hive_check`: narrates what this hive is and that its stream works.
    fn hive_check(&self, log: &crate::jobs::EventLog, alias: &str) -> Event {
        log.push(Event::narration(format!("🐝 hive `{alias}`: rbee-smol hive {}", env!("CARGO_PKG_VERSION"))));
        log.push(Event::narration(format!("📁 cache: {}", self.downloader.cache().display())));
        log.push(Event::narration(format!("⚙️  jobs running: {}", self.registry.running())));
        Event::done("✅ hive check passed: jobs run and stream")
    }
}
