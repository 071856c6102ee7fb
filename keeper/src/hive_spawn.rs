//! The embedded default: when no hive answers, start a local `rbee-hive` detached from the
//! terminal (`rbee-hive --detach`: its own session, so Ctrl+C reaches only the keeper) and wait for `/health`.
//!
//! Starting is serialised by a lock file beside the hive log (`~/.cache/rbee/hive.lock`): keepers
//! started at once queue there, the first starts the hive and the others find it running and use
//! it. The pid shown is the one the hive reports. A hive that dies while starting (a port taken)
//! has logged why; the keeper quotes that line.
//!
//! The log and the lock are private: their directory is made (or tightened to) 0700, the files
//! 0600, and a directory another user owns is refused. With neither `XDG_CACHE_HOME` nor `HOME`
//! there is no private place to guess, and a shared temp dir is never taken: `RBEE_STATE_DIR`
//! names one.

use std::env;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use crate::client::{addr_of, timeout, Health, HiveClient, NotAHive};
use crate::exit::StartFailed;
use crate::file_lock::{self, NotLocked};
use crate::render::{self, Mode};
use crate::settings::{self, HfSettings};

/// How long a silent address may take before we decide nothing runs there.
pub(crate) const PROBE: Duration = Duration::from_millis(300);
const STARTUP: Duration = Duration::from_secs(10);
const POLL: Duration = Duration::from_millis(50);

/// A hive this keeper started.
pub(crate) struct Started {
    pub(crate) pid: u32,
    pub(crate) log: PathBuf,
}

impl Started {
    /// `🐝 started local hive at http://127.0.0.1:7835 (pid N, log ~/.cache/rbee/hive.log)`.
    pub(crate) fn line(&self, base: &str) -> String {
        format!("🐝 started local hive at {base} (pid {}, log {})", self.pid, tilde(&self.log))
    }
}

/// What [`start`] found.
pub(crate) enum Outcome {
    /// It started a hive.
    Started(Started),
    /// A hive was running (another keeper started it meanwhile).
    Running(Health),
}

/// Make sure a hive answers at `client`'s address, starting a local one when none does; warn when
/// a running one uses other HF settings than this shell.
pub(crate) async fn ensure(client: &HiveClient, mode: Mode) -> Result<()> {
    let health = match timeout(PROBE, client.health()).await {
        Ok(health) => health,
        Err(e) if e.chain().any(|c| c.is::<NotAHive>()) => return Err(e),
        Err(_) => match start(client).await? {
            Outcome::Running(health) => health,
            Outcome::Started(started) => {
                render::note(mode, &started.line(client.base()));
                return Ok(());
            }
        },
    };
    let diffs = HfSettings::from_env().differences(&health);
    settings::warning(client.base(), health.pid, &diffs).iter().for_each(|l| render::warn(l));
    Ok(())
}

/// Spawn `rbee-hive --addr <client's host:port>` in the background and wait until it is up, unless
/// a hive answers once this keeper holds the start lock.
pub(crate) async fn start(client: &HiveClient) -> Result<Outcome> {
    let log = log_path()?;
    let _lock = lock(&log.with_file_name("hive.lock")).await?;
    if let Ok(health) = timeout(PROBE, client.health()).await {
        return Ok(Outcome::Running(health));
    }
    let from = fs::metadata(&log).map_or(0, |m| m.len());
    let mut cmd = command(&addr_of(client.base()));
    cmd.arg("--detach");
    let spawned = detach(&mut cmd, &log)?.spawn();
    let mut child = spawned.map_err(|e| StartFailed(format!("could not start `{}`: {e}", hive_binary().display())))?;
    let health = wait_until_up(client, &mut child, &log, from).await.map_err(StartFailed)?;
    Ok(Outcome::Started(Started { pid: health.pid.unwrap_or_else(|| child.id()), log }))
}

/// The start lock: held until the returned file is dropped. Waits (polling, so the executor
/// stays free) while another keeper starts a hive.
async fn lock(path: &Path) -> Result<File> {
    private_dir(path)?;
    let file = private_file(OpenOptions::new().create(true).truncate(false).write(true), path);
    let file = file.with_context(|| format!("opening the start lock `{}`", path.display()))?;
    match file_lock::wait(&file, STARTUP * 2, POLL).await {
        Ok(()) => Ok(file),
        Err(NotLocked::Busy) => {
            let what = format!("another rbee has held `{}` for {:?} while starting a hive", tilde(path), STARTUP * 2);
            Err(StartFailed(format!("{what}; if none is running, delete the file")).into())
        }
        Err(NotLocked::Failed(e)) => Err(anyhow::Error::new(e).context(format!("locking `{}`", path.display()))),
    }
}

/// Replace this process with `rbee-hive --addr <addr>` (returns only on failure).
pub(crate) fn exec_foreground(addr: &str) -> anyhow::Error {
    let err = command(addr).exec();
    anyhow::Error::new(err).context(format!("running `{}`", hive_binary().display()))
}

fn command(addr: &str) -> Command {
    let mut cmd = Command::new(hive_binary());
    cmd.arg("--addr").arg(addr);
    cmd
}

fn detach<'c>(cmd: &'c mut Command, log: &Path) -> Result<&'c mut Command> {
    private_dir(log)?;
    let out = private_file(OpenOptions::new().create(true).append(true), log);
    let out = out.with_context(|| format!("opening the hive log `{}`", log.display()))?;
    let err = out.try_clone().context("duplicating the hive log handle")?;
    // No `process_group(0)` here: `rbee-hive --detach` calls setsid() as its first act, which a
    // process-group leader may not do. From then on it has its own session and no terminal.
    Ok(cmd.stdin(Stdio::null()).stdout(out).stderr(err))
}

async fn wait_until_up(client: &HiveClient, child: &mut Child, log: &Path, from: u64) -> Result<Health, String> {
    let deadline = Instant::now() + STARTUP;
    let shown = tilde(log);
    loop {
        if let Ok(health) = timeout(PROBE, client.health()).await {
            return Ok(health);
        }
        if let Ok(Some(status)) = child.try_wait() {
            let why = last_error(log, from).unwrap_or_else(|| format!("it exited ({status})"));
            return Err(format!("the local `rbee-hive` could not start: {why}; see {shown}"));
        }
        if Instant::now() >= deadline {
            return Err(format!("the local `rbee-hive` did not answer within {STARTUP:?}; see {shown}"));
        }
        smol::Timer::after(POLL).await;
    }
}

/// The hive's last error line written to `log` after byte `from`, without its timestamp.
fn last_error(log: &Path, from: u64) -> Option<String> {
    let mut file = File::open(log).ok()?;
    file.seek(SeekFrom::Start(from)).ok()?;
    let mut tail = String::new();
    file.take(64 * 1024).read_to_string(&mut tail).ok()?;
    let line = tail.lines().rev().find(|l| l.contains("ERROR") || l.contains("error:"))?;
    let text = line.split_once("rbee-hive: ").map_or(line, |(_, rest)| rest);
    Some(text.trim_start_matches("error: ").trim().to_owned())
}

/// `rbee-hive` beside this executable, else the one on `PATH`.
pub(crate) fn hive_binary() -> PathBuf {
    let beside = env::current_exe().ok().and_then(|exe| Some(exe.parent()?.join("rbee-hive")));
    beside.filter(|p| p.is_file()).unwrap_or_else(|| PathBuf::from("rbee-hive"))
}

/// `$RBEE_STATE_DIR/hive.log`, else `$XDG_CACHE_HOME/rbee/hive.log`, else `~/.cache/rbee/hive.log`;
/// never a shared temp dir.
pub(crate) fn log_path() -> Result<PathBuf> {
    let nonempty = |name| env::var_os(name).filter(|v| !v.is_empty()).map(PathBuf::from);
    if let Some(dir) = nonempty("RBEE_STATE_DIR") {
        return Ok(dir.join("hive.log"));
    }
    let cache = nonempty("XDG_CACHE_HOME").or_else(|| nonempty("HOME").map(|h| h.join(".cache")));
    let cache = cache.ok_or_else(|| {
        StartFailed(
            "neither HOME nor XDG_CACHE_HOME is set, so there is no private place for the local hive's log \
             and start lock (a shared temp dir would let other users read or replace them); set \
             RBEE_STATE_DIR to a directory of your own (or set HOME)"
                .to_owned(),
        )
    })?;
    Ok(cache.join("rbee").join("hive.log"))
}

/// Makes the directory of `file` (0700 for what it creates), tightens it to 0700, and refuses it
/// when another user owns it.
fn private_dir(file: &Path) -> Result<()> {
    let Some(dir) = file.parent() else { return Ok(()) };
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("creating `{}`", dir.display()))?;
    let meta = fs::metadata(dir).with_context(|| format!("reading `{}`", dir.display()))?;
    let mine = fs::metadata("/proc/self").map_or(meta.uid(), |m| m.uid());
    if meta.uid() != mine {
        return Err(StartFailed(format!(
            "`{}` belongs to another user (uid {}): rbee keeps the hive's log there; set RBEE_STATE_DIR to a \
             directory of your own",
            dir.display(),
            meta.uid()
        ))
        .into());
    }
    if meta.permissions().mode() & 0o077 != 0 {
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
            .with_context(|| format!("making `{}` private (0700)", dir.display()))?;
    }
    Ok(())
}

/// Opens `path` with `options`, created 0600 (and tightened to 0600 when it already was there).
fn private_file(options: &mut OpenOptions, path: &Path) -> std::io::Result<File> {
    let file = options.mode(0o600).open(path)?;
    if file.metadata()?.permissions().mode() & 0o077 != 0 {
        file.set_permissions(fs::Permissions::from_mode(0o600))?;
    }
    Ok(file)
}

/// `path` with the home directory shown as `~`.
pub(crate) fn tilde(path: &Path) -> String {
    let home = env::var_os("HOME").filter(|h| !h.is_empty()).map(PathBuf::from);
    match home.as_deref().and_then(|h| path.strip_prefix(h).ok()) {
        Some(rest) => format!("~/{}", rest.display()),
        None => path.display().to_string(),
    }
}
