//! Several files of one revision as one job (`--all`, `--include`, `--exclude`), and `--dry-run`.
//!
//! The revision is resolved once (the listing's `sha`); every file is then fetched at that commit,
//! so a download pinned to a branch or tag makes no ref-dependent call after it. Files run
//! concurrently, at most [`CONCURRENT_FILES`] at a time, each with its own progress events, plus
//! a running total under the name [`TOTAL`]. A failed file does not stop the others; the job
//! then fails naming each failed file and why.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::task::Poll;
use std::time::Duration;

use futures_lite::future;
use rbee_protocol::{escape, text, Event, ModelDownload};

use super::error::DownloadError;
use super::select::{plan, Plan};
use super::Downloader;
use crate::cache::RepoDir;
use crate::jobs::JobCtx;

/// Files downloaded at once.
pub(crate) const CONCURRENT_FILES: usize = 4;
/// The `file` of the progress events that carry a selection's total.
pub const TOTAL: &str = "∑ total";
const TOTAL_EVERY: Duration = Duration::from_millis(500);

impl Downloader {
    /// The selection's files at the listing's commit, after the disk-space check.
    pub(crate) async fn snapshot(
        &self,
        ctx: &JobCtx,
        repo: &RepoDir,
        req: &ModelDownload,
    ) -> Result<PathBuf, DownloadError> {
        let id = req.model_ref()?.repo;
        let revision = req.revision();
        let (plan, _) = self.plan_for(ctx, repo, req).await?;
        ctx.narrate(format!(
            "📥 Downloading {} files of {id} @ {revision} (commit {}): {} in all, {} to fetch",
            plan.files.len(),
            &plan.commit[..plan.commit.len().min(12)],
            text::bytes(plan.total()),
            text::bytes(plan.to_fetch())
        ));
        super::diskspace::check(&self.cache, plan.to_fetch(), self.free_space)?;
        repo.write_ref(revision, &plan.commit)?;
        let commit = plan.commit.clone();
        // Files run side by side: their parts share the job's connection budget.
        let parts = (self.parts_for(req) / CONCURRENT_FILES.min(plan.files.len()).max(1)).max(1);
        let work: Vec<_> = plan.files.iter().map(|f| self.file(ctx, repo, &id, &commit, &f.file, parts)).collect();
        let started = std::time::Instant::now();
        let results = future::or(bounded(work, CONCURRENT_FILES), total_meter(ctx, &plan)).await;
        let whole: u64 = plan.files.iter().zip(&results).filter(|(_, r)| r.is_ok()).filter_map(|(f, _)| f.size).sum();
        let total = Some(plan.total());
        // The last total carries the job's average rate over what it fetched.
        #[allow(clippy::cast_precision_loss)] // byte counts far below 2^52
        let rate = plan.to_fetch() as f64 / started.elapsed().as_secs_f64().max(1e-3);
        ctx.log.push(Event::Progress { file: TOTAL.to_owned(), bytes: whole, total, rate, resumed_from: 0 });
        let failed: Vec<String> = plan
            .files
            .iter()
            .zip(results)
            .filter_map(|(f, r)| r.err().map(|e| format!("`{}`: {e}", escape(&f.file))))
            .collect();
        if failed.is_empty() {
            Ok(repo.snapshot(&commit))
        } else {
            Err(DownloadError::Files { failed: failed.len(), of: plan.files.len(), reasons: failed.join("; ") })
        }
    }

    /// The listing of `req`'s revision, narrowed to what it asks for, against the cache.
    pub(crate) async fn plan_for(
        &self,
        ctx: &JobCtx,
        repo: &RepoDir,
        req: &ModelDownload,
    ) -> Result<(Plan, Vec<String>), DownloadError> {
        let model = req.model_ref()?;
        let listing = self.listing(ctx, &model.repo, req.revision()).await?;
        let names: Vec<String> = listing.files.iter().map(|s| s.rfilename.clone()).collect();
        for name in &names {
            rbee_protocol::validate::file_name(name)?;
        }
        let chosen: Vec<String> = match (&model.file, req.is_snapshot()) {
            (Some(file), _) if names.contains(file) => vec![file.clone()],
            (Some(file), _) => {
                return Err(DownloadError::EntryNotFound {
                    repo: model.repo,
                    revision: req.revision().to_owned(),
                    file: file.clone(),
                })
            }
            (None, true) => {
                let selection = req.selection();
                let chosen: Vec<String> = names.iter().filter(|n| selection.selects(n)).cloned().collect();
                if chosen.is_empty() {
                    return Err(DownloadError::NothingSelected { repo: model.repo, files: names.len() });
                }
                chosen
            }
            (None, false) => match rbee_protocol::pick_gguf(&names) {
                Some(pick) => vec![pick.to_owned()],
                None => return Err(DownloadError::NoGguf { repo: model.repo, files: names.len() }),
            },
        };
        let (repo, l, c) = (repo.clone(), listing.clone(), chosen.clone());
        let plan = smol::unblock(move || plan(&repo, &l, &c)).await;
        Ok((plan, names))
    }

    /// `--dry-run`: what the download would fetch; touches nothing (no lock, no write).
    pub(crate) async fn dry_run(&self, ctx: &JobCtx, req: &ModelDownload) -> Event {
        let run = async {
            let model = req.model_ref()?;
            let repo = RepoDir::new(&self.cache, &model.repo);
            let (plan, _) = self.plan_for(ctx, &repo, req).await?;
            Ok::<_, DownloadError>((model.repo, plan))
        };
        match run.await {
            Ok((id, plan)) => {
                let fetch = plan.files.iter().filter(|f| !f.cached).count();
                Event::Done {
                    message: format!(
                        "🔎 dry run: {fetch} of {} files of {id} @ {} to fetch, {} of {} (nothing was written)",
                        plan.files.len(),
                        req.revision(),
                        text::bytes(plan.to_fetch()),
                        text::bytes(plan.total()),
                    ),
                    path: None,
                    result: Some(plan.json(&id, req.revision())),
                    lines: plan.lines(),
                }
            }
            Err(e) => Event::Error { message: format!("dry run of {} failed: {e}", req.model) },
        }
    }
}

/// The selection's bytes so far: cached files whole, the others as far as their progress went.
fn total_bytes(plan: &Plan, seen: &HashMap<String, u64>) -> u64 {
    let cached: u64 = plan.files.iter().filter(|f| f.cached).filter_map(|f| f.size).sum();
    cached + seen.values().sum::<u64>()
}

/// Pushes the total every [`TOTAL_EVERY`] from the files' own progress events, with its rate
/// (smoothed over about 2 s); never ends.
async fn total_meter<T>(ctx: &JobCtx, plan: &Plan) -> T {
    // What was kept from before counts from the start, so a resume's rate is not a leap.
    let mut seen: HashMap<String, u64> =
        plan.files.iter().filter(|f| !f.cached && f.partial > 0).map(|f| (f.file.clone(), f.partial)).collect();
    let mut after = ctx.log.len() as u64;
    let (mut last, mut rate) = ((std::time::Instant::now(), total_bytes(plan, &seen)), 0.0_f64);
    loop {
        smol::Timer::after(TOTAL_EVERY).await;
        let (events, _) = ctx.log.since(after);
        for (id, event) in events {
            after = id;
            if let Event::Progress { file, bytes, .. } = event {
                if file != TOTAL {
                    seen.insert(file, bytes);
                }
            }
        }
        let (now, bytes) = (std::time::Instant::now(), total_bytes(plan, &seen));
        #[allow(clippy::cast_precision_loss)] // byte counts far below 2^52
        let recent = bytes.saturating_sub(last.1) as f64 / now.duration_since(last.0).as_secs_f64().max(1e-3);
        rate = if rate == 0.0 { recent } else { 0.75 * rate + 0.25 * recent };
        last = (now, bytes);
        let total = Some(plan.total());
        ctx.log.push(Event::Progress { file: TOTAL.to_owned(), bytes, total, rate, resumed_from: 0 });
    }
}

/// Runs `futs` with at most `limit` of them polled at once; their outputs in input order.
/// Dropping it drops every future still running (the job's cancel reaches each file).
pub(crate) async fn bounded<F: Future>(futs: Vec<F>, limit: usize) -> Vec<F::Output> {
    let n = futs.len();
    let mut waiting: VecDeque<(usize, F)> = futs.into_iter().enumerate().collect();
    let mut running: Vec<(usize, Pin<Box<F>>)> = Vec::new();
    let mut out: Vec<Option<F::Output>> = (0..n).map(|_| None).collect();
    future::poll_fn(|cx| loop {
        while running.len() < limit.max(1) {
            let Some((i, f)) = waiting.pop_front() else { break };
            running.push((i, Box::pin(f)));
        }
        let mut progressed = false;
        let mut k = 0;
        while k < running.len() {
            if let Poll::Ready(v) = running[k].1.as_mut().poll(cx) {
                out[running[k].0] = Some(v);
                running.swap_remove(k);
                progressed = true;
            } else {
                k += 1;
            }
        }
        if running.is_empty() && waiting.is_empty() {
            return Poll::Ready(());
        }
        if !progressed {
            return Poll::Pending;
        }
    })
    .await;
    out.into_iter().map(|o| o.expect("every future ran to its end")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_keeps_order_and_bound() {
        let live = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let most = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let futs: Vec<_> = (0..10u64)
            .map(|i| {
                let (live, most) = (live.clone(), most.clone());
                async move {
                    let now = live.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
                    most.fetch_max(now, std::sync::atomic::Ordering::SeqCst);
                    smol::Timer::after(Duration::from_millis(10 * (10 - i))).await;
                    live.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
                    i
                }
            })
            .collect();
        let got = smol::block_on(bounded(futs, 3));
        assert_eq!(got, (0..10).collect::<Vec<_>>());
        assert_eq!(most.load(std::sync::atomic::Ordering::SeqCst), 3);
    }
}
