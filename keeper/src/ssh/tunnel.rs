//! The tunnel to a hive on another machine: one ControlMaster per alias, kept by ssh for
//! [`PERSIST`] after its last use so the next command reuses it, and on it one forward from a unix
//! socket here to the hive's port on the remote's loopback (`-L sock:127.0.0.1:port`). The hive
//! never listens beyond the remote's loopback; only ssh reaches it.
//!
//! The keeper owns both and leaves no zombie: the master is started with `-f` (ssh forks into
//! its own session after authenticating, and the process the keeper started exits and is
//! reaped); every later call is a short multiplexed `ssh -S <control> …`. Sockets live in the
//! state dir (mode 0700), named by a short hash so even a long home stays under the 104 bytes a
//! unix socket path may have (ssh also appends 17 characters to the control path while binding).
//! A lock file serialises keepers that open the same tunnel at once.

use std::fs::{self, File, OpenOptions};
use std::hash::{Hash, Hasher};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};

use super::exec::{run, SSH_DEADLINE};
use super::{Host, Ssh, SshError};
use crate::file_lock::{self, NotLocked};

/// How long ssh keeps an idle master.
const PERSIST: &str = "60";
/// The longest socket directory we use (the rest of the path is ≤ 40 characters).
const MAX_DIR: usize = 60;

/// The local socket that reaches `host`'s `127.0.0.1:port`, set up if it is not yet.
pub(super) fn open(ssh: &Ssh, host: &Host, port: u16) -> Result<PathBuf> {
    let dir = socket_dir(&ssh.state)?;
    let key = key(ssh, host);
    let control = dir.join(&key);
    let socket = dir.join(format!("{key}-{port}.sock"));
    let _lock = lock(&dir.join(format!("{key}.lock")))?;
    if !master_alive(ssh, host, &control)? {
        start_master(ssh, host, &control)?;
    }
    if UnixStream::connect(&socket).is_err() {
        forward(ssh, host, &control, &socket, port)?;
    }
    Ok(socket)
}

/// `ssh -S <control>` for a command multiplexed over `host`'s master.
pub(super) fn through_master(ssh: &Ssh, host: &Host) -> Result<std::process::Command> {
    let control = socket_dir(&ssh.state)?.join(key(ssh, host));
    let mut cmd = ssh.command();
    cmd.arg("-S").arg(escape_percent(&control));
    Ok(cmd)
}

fn master_alive(ssh: &Ssh, host: &Host, control: &Path) -> Result<bool> {
    if !control.exists() {
        return Ok(false);
    }
    let mut cmd = ssh.command();
    cmd.arg("-S").arg(escape_percent(control)).args(["-O", "check", &host.alias]);
    Ok(run(&mut cmd, Vec::new(), SSH_DEADLINE)?.is_some_and(|r| r.ok()))
}

fn start_master(ssh: &Ssh, host: &Host, control: &Path) -> Result<()> {
    let mut cmd = ssh.command();
    cmd.args(["-M", "-N", "-f", "-S"]).arg(escape_percent(control));
    cmd.args(["-o", &format!("ControlPersist={PERSIST}"), "-o", "StreamLocalBindUnlink=yes"]);
    cmd.args(["-o", "ServerAliveInterval=5", "-o", "ServerAliveCountMax=3", &host.alias]);
    let ran = run(&mut cmd, Vec::new(), SSH_DEADLINE)?;
    if ran.as_ref().is_some_and(|r| r.ok()) {
        return Ok(());
    }
    Err(SshError::from_run(host, "connecting", ran.as_ref()).into())
}

fn forward(ssh: &Ssh, host: &Host, control: &Path, socket: &Path, port: u16) -> Result<()> {
    let mut cmd = ssh.command();
    cmd.arg("-S").arg(escape_percent(control)).args(["-O", "forward", "-L"]);
    cmd.arg(format!("{}:127.0.0.1:{port}", socket.display())).arg(&host.alias);
    let ran = run(&mut cmd, Vec::new(), SSH_DEADLINE)?;
    if ran.as_ref().is_some_and(|r| r.ok()) {
        return Ok(());
    }
    Err(SshError::from_run(host, &format!("opening the tunnel to its port {port}"), ran.as_ref()).into())
}

/// `state/ssh` (0700), or `$TMPDIR/rbee-<uid>` when that path is too long for a socket.
fn socket_dir(state: &Path) -> Result<PathBuf> {
    let dir = state.join("ssh");
    let dir = if dir.as_os_str().len() <= MAX_DIR {
        dir
    } else {
        let uid = fs::metadata("/proc/self").map(|m| m.uid()).unwrap_or(0);
        std::env::temp_dir().join(format!("rbee-{uid}"))
    };
    fs::create_dir_all(&dir).with_context(|| format!("creating `{}`", dir.display()))?;
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o700))
        .with_context(|| format!("making `{}` private", dir.display()))?;
    Ok(dir)
}

/// 16 hex digits naming the alias as this ssh command line reaches it.
fn key(ssh: &Ssh, host: &Host) -> String {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    (&ssh.argv, host).hash(&mut h);
    format!("{:016x}", h.finish())
}

/// ssh expands `%` tokens in a control path.
fn escape_percent(path: &Path) -> String {
    path.display().to_string().replace('%', "%%")
}

/// Held until dropped; waits (at most 2 × [`SSH_DEADLINE`]) while another keeper opens the tunnel.
fn lock(path: &Path) -> Result<File> {
    let file = OpenOptions::new().create(true).truncate(false).write(true).open(path);
    let file = file.with_context(|| format!("opening `{}`", path.display()))?;
    match smol::block_on(file_lock::wait(&file, SSH_DEADLINE * 2, Duration::from_millis(20))) {
        Ok(()) => Ok(file),
        Err(NotLocked::Busy) => bail!("another rbee holds `{}`; retry", path.display()),
        Err(NotLocked::Failed(e)) => Err(e).with_context(|| format!("locking `{}`", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socket_paths_fit() {
        let long = Path::new("/home/someone-with-a-rather-long-name/.local/state/a/b/c/d/e/f/rbee");
        let dir = socket_dir(long).unwrap();
        assert!(dir.as_os_str().len() <= MAX_DIR, "{}", dir.display());
        let ssh = Ssh::new("ssh", long).unwrap();
        let host = Host { alias: "a".into(), hostname: "h".into(), user: "u".into(), port: 22 };
        let sock = dir.join(format!("{}-65535.sock", key(&ssh, &host)));
        assert!(sock.as_os_str().len() + 17 < 104, "{}", sock.display());
        assert_eq!(escape_percent(Path::new("/a%b")), "/a%%b");
    }
}
