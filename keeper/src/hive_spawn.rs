//! The embedded default: when no hive answers, start a local `rbee-hive` detached from the
//! terminal (`rbee-hive --detach`: its own session, so Ctrl+C reaches only the keeper) and wait for `/health`.

use std::env;
use std::fs::{self, OpenOptions};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use crate::client::{addr_of, HiveClient};
use crate::exit::Unreachable;

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

/// Make sure a hive answers at `client`'s address, starting a local one when none does.
pub(crate) async fn ensure(client: &HiveClient, quiet: bool) -> Result<()> {
    if client.probe(PROBE).await.is_some() {
        return Ok(());
    }
    let started = start(client).await?;
    if !quiet {
        eprintln!("{}", started.line(client.base()));
    }
    Ok(())
}

/// Spawn `rbee-hive --addr <client's host:port>` in the background and wait until it is up.
pub(crate) async fn start(client: &HiveClient) -> Result<Started> {
    let log = log_path();
    let unreachable = |reason: String| Unreachable { url: client.base().to_owned(), reason };
    let mut cmd = command(&addr_of(client.base()));
    cmd.arg("--detach");
    let mut child = detach(&mut cmd, &log)?
        .spawn()
        .map_err(|e| unreachable(format!("could not start `{}`: {e}", hive_binary().display())))?;
    wait_until_up(client, &mut child, &log).await.map_err(unreachable)?;
    Ok(Started { pid: child.id(), log })
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
    if let Some(dir) = log.parent() {
        fs::create_dir_all(dir).with_context(|| format!("creating `{}`", dir.display()))?;
    }
    let out = OpenOptions::new().create(true).append(true).open(log);
    let out = out.with_context(|| format!("opening the hive log `{}`", log.display()))?;
    let err = out.try_clone().context("duplicating the hive log handle")?;
    // No `process_group(0)` here: `rbee-hive --detach` calls setsid() as its first act, which a
    // process-group leader may not do. From then on it has its own session and no terminal.
    Ok(cmd.stdin(Stdio::null()).stdout(out).stderr(err))
}

async fn wait_until_up(client: &HiveClient, child: &mut Child, log: &Path) -> Result<(), String> {
    let deadline = Instant::now() + STARTUP;
    let log = tilde(log);
    loop {
        if client.probe(PROBE).await.is_some() {
            return Ok(());
        }
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!("the local `rbee-hive` exited while starting ({status}); see {log}"));
        }
        if Instant::now() >= deadline {
            return Err(format!("the local `rbee-hive` did not answer within {STARTUP:?}; see {log}"));
        }
        smol::Timer::after(POLL).await;
    }
}

/// `rbee-hive` beside this executable, else the one on `PATH`.
pub(crate) fn hive_binary() -> PathBuf {
    let beside = env::current_exe().ok().and_then(|exe| Some(exe.parent()?.join("rbee-hive")));
    beside.filter(|p| p.is_file()).unwrap_or_else(|| PathBuf::from("rbee-hive"))
}

/// `$XDG_CACHE_HOME/rbee/hive.log`, else `~/.cache/rbee/hive.log`.
pub(crate) fn log_path() -> PathBuf {
    let nonempty = |name| env::var_os(name).filter(|v| !v.is_empty()).map(PathBuf::from);
    let cache = nonempty("XDG_CACHE_HOME").or_else(|| nonempty("HOME").map(|h| h.join(".cache")));
    cache.unwrap_or_else(env::temp_dir).join("rbee").join("hive.log")
}

/// `path` with the home directory shown as `~`.
fn tilde(path: &Path) -> String {
    let home = env::var_os("HOME").filter(|h| !h.is_empty()).map(PathBuf::from);
    match home.as_deref().and_then(|h| path.strip_prefix(h).ok()) {
        Some(rest) => format!("~/{}", rest.display()),
        None => path.display().to_string(),
    }
}
