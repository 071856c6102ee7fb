//! What the keeper runs on a hive's host: short POSIX `sh` scripts, multiplexed over the alias's
//! master. Paths are the remote user's: the binary at `~/.local/bin/rbee-hive`, its log at
//! `~/.cache/rbee/hive.log`, a pid file per port beside it. Secrets travel on stdin only.

use std::path::Path;

use anyhow::{Context, Result};

use super::exec::{quote, run, Ran, SSH_DEADLINE};
use super::{tunnel, Remote, SshError};

/// Where the binary goes on the remote (for messages; the scripts say `$HOME/.local/bin/rbee-hive`).
pub(crate) const BINARY: &str = "~/.local/bin/rbee-hive";
/// Where the remote hive logs.
pub(crate) const LOG: &str = "~/.cache/rbee/hive.log";
/// The exit code of a script that found no binary.
const NO_BINARY: i32 = 97;
/// The environment a remote hive gets from the keeper's, when set.
pub(crate) const PASSED_ENV: [&str; 3] = ["HF_ENDPOINT", "HF_HUB_OFFLINE", "HF_TOKEN"];

const PROBE: &str =
    r#"uname -sm; b="$HOME/.local/bin/rbee-hive"; if [ -x "$b" ]; then "$b" --version; else echo none; fi"#;

const UPLOAD: &str = r#"set -e; d="$HOME/.local/bin"; mkdir -p "$d"; t="$d/.rbee-hive.$$"
trap 'rm -f "$t"' EXIT; cat > "$t"; chmod 755 "$t"; mv -f "$t" "$d/rbee-hive""#;

/// `$PORT` is replaced; the environment comes as `NAME=value` lines on stdin.
const START: &str = r#"set -e; b="$HOME/.local/bin/rbee-hive"
if [ ! -x "$b" ]; then echo "no $b" >&2; exit 97; fi
d="$HOME/.cache/rbee"; mkdir -p "$d"
while IFS= read -r l; do case "$l" in HF_ENDPOINT=*|HF_HUB_OFFLINE=*|HF_TOKEN=*) export "$l";; esac; done
"$b" --addr "127.0.0.1:$PORT" --detach </dev/null >>"$d/hive.log" 2>&1 &
echo $! > "$d/hive-$PORT.pid"; echo $!"#;

/// `$PORT` and `$PIDS` are replaced: wait up to 10 s for each rbee-hive among them (and the one
/// the pid file names) to end, then kill it.
const STOP: &str = r#"f="$HOME/.cache/rbee/hive-$PORT.pid"
for p in $PIDS $(cat "$f" 2>/dev/null); do
  case "$(ps -o comm= -p "$p" 2>/dev/null)" in *rbee-hive*) ;; *) continue;; esac
  i=0; while kill -0 "$p" 2>/dev/null && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done
  kill -KILL "$p" 2>/dev/null && echo "killed $p" || true
done; rm -f "$f""#;

const UNINSTALL: &str = r#"rm -f "$HOME/.local/bin/rbee-hive" "$HOME"/.cache/rbee/hive-*.pid"#;

const TAIL: &str = r#"tail -n 20 "$HOME/.cache/rbee/hive.log" 2>/dev/null"#;

/// What `rbee hive install` learns about the remote first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Probe {
    /// `uname -sm` there.
    pub(crate) uname: String,
    /// What its `rbee-hive --version` prints, if it has one.
    pub(crate) version: Option<String>,
}

impl Remote {
    /// Run `script` with `sh -c` on the remote, `stdin` as its input. ssh's own failures (255)
    /// become [`SshError`]; the script's exit code is the caller's to read.
    fn sh(&self, doing: &str, script: &str, stdin: Vec<u8>) -> Result<Ran> {
        let mut cmd = tunnel::through_master(&self.ssh, &self.host)?;
        cmd.arg(&self.host.alias).arg(format!("sh -c {}", quote(script)));
        let ran = run(&mut cmd, stdin, SSH_DEADLINE * 4)?;
        match ran {
            Some(ran) if ran.code != Some(255) => Ok(ran),
            other => Err(SshError::from_run(&self.host, doing, other.as_ref()).into()),
        }
    }

    fn sh_ok(&self, doing: &str, script: &str, stdin: Vec<u8>) -> Result<Ran> {
        let ran = self.sh(doing, script, stdin)?;
        if ran.code == Some(NO_BINARY) {
            return Err(self.no_binary());
        }
        if !ran.ok() {
            let said = ran.stderr.trim();
            anyhow::bail!("{doing} on `{}` failed ({:?}): {said}", self.host.alias, ran.code);
        }
        Ok(ran)
    }

    /// No `rbee-hive` on the remote: say how to put one there.
    pub(crate) fn no_binary(&self) -> anyhow::Error {
        let alias = &self.host.alias;
        let message = format!("there is no rbee-hive at {BINARY} on `{alias}` ({})", self.host.at());
        SshError::new(message, &[format!("run `rbee hive install --host {alias}`")]).into()
    }

    /// `uname -sm` and the installed hive's version.
    pub(crate) async fn probe(&self) -> Result<Probe> {
        let ran = self.unblocked(|r| r.sh_ok("checking the remote system", PROBE, Vec::new())).await?;
        let mut lines = ran.stdout.lines().map(str::trim);
        let uname = lines.next().unwrap_or_default().to_owned();
        let version = lines.next().filter(|v| *v != "none" && !v.is_empty()).map(str::to_owned);
        Ok(Probe { uname, version })
    }

    /// Copy `binary` to the remote's `~/.local/bin/rbee-hive` through the ssh channel (a temp
    /// name, chmod, then a rename: a running hive keeps its old file).
    pub(crate) async fn upload(&self, binary: &Path) -> Result<()> {
        let bytes = std::fs::read(binary).with_context(|| format!("reading `{}`", binary.display()))?;
        self.unblocked(move |r| r.sh_ok("copying rbee-hive", UPLOAD, bytes)).await.map(drop)
    }

    /// Start the hive detached on the remote's `127.0.0.1:<port>` with `env` (`NAME=value`); its pid.
    pub(crate) async fn start(&self, env: Vec<String>) -> Result<u32> {
        let script = START.replace("$PORT", &self.port.to_string());
        // `read` drops a last line without its newline: every line gets one.
        let stdin = env.iter().map(|line| format!("{line}\n")).collect::<String>().into_bytes();
        let ran = self.unblocked(move |r| r.sh_ok("starting the hive", &script, stdin)).await?;
        ran.stdout.trim().parse().context("reading the started hive's pid")
    }

    /// Wait for the hive (`pid`, and the one its pid file names) to end, killing it after 10 s;
    /// whether one had to be killed.
    pub(crate) async fn reap(&self, pid: Option<u32>) -> Result<bool> {
        let pids = pid.map(|p| p.to_string()).unwrap_or_default();
        let script = STOP.replace("$PORT", &self.port.to_string()).replace("$PIDS", &pids);
        let ran = self.unblocked(move |r| r.sh_ok("stopping the hive", &script, Vec::new())).await?;
        Ok(ran.stdout.contains("killed"))
    }

    /// Remove the binary and pid files (the HF cache and the log stay).
    pub(crate) async fn uninstall(&self) -> Result<()> {
        self.unblocked(|r| r.sh_ok("removing rbee-hive", UNINSTALL, Vec::new())).await.map(drop)
    }

    /// Whether the remote has an executable `~/.local/bin/rbee-hive`.
    pub(crate) async fn has_binary(&self) -> Result<bool> {
        Ok(self.probe().await?.version.is_some())
    }

    /// The hive log's last line that says `error`, if any.
    pub(crate) async fn last_error(&self) -> Option<String> {
        let ran = self.unblocked(|r| r.sh("reading the hive log", TAIL, Vec::new())).await.ok()?;
        let line = ran.stdout.lines().rev().find(|l| l.contains("ERROR") || l.contains("error"))?;
        Some(line.split_once("rbee-hive: ").map_or(line, |(_, rest)| rest).trim().to_owned())
    }

    async fn unblocked<T: Send + 'static>(&self, work: impl FnOnce(&Self) -> Result<T> + Send + 'static) -> Result<T> {
        let me = self.clone();
        smol::unblock(move || work(&me)).await
    }
}

/// `NAME=value` for each of [`PASSED_ENV`] set (and non-empty) in `lookup`.
pub(crate) fn passed_env(lookup: impl Fn(&str) -> Option<String>) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for name in PASSED_ENV {
        if let Some(value) = lookup(name).filter(|v| !v.is_empty()) {
            if value.contains('\n') {
                anyhow::bail!("{name} holds a line break; no hive could use it");
            }
            out.push(format!("{name}={value}"));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_hf_settings_pass() {
        let env = |n: &str| match n {
            "HF_TOKEN" => Some("hf_x y".to_owned()),
            "HF_ENDPOINT" => Some(String::new()),
            _ => None,
        };
        assert_eq!(passed_env(env).unwrap(), ["HF_TOKEN=hf_x y"]);
        assert!(passed_env(|_| Some("a\nb".to_owned())).is_err());
    }

    #[test]
    fn scripts_are_sh() {
        for script in [PROBE, UPLOAD, START, STOP, UNINSTALL, TAIL] {
            let ok = std::process::Command::new("sh").args(["-n", "-c", script]).status().unwrap().success();
            assert!(ok, "sh -n rejects {script}");
        }
    }
}
