//! A second machine for the SSH tests, made honestly on this one: a network namespace of its own,
//! joined to this one by a veth pair with a /30 from 10.213.0.0/16 (both ends are ours), Debian's
//! OpenSSH `sshd` running inside it with its own host key and config, listening on the
//! namespace's veth address, and a user account of its own whose home holds the remote HF cache.
//! A key pair made for each run is the only way in. A hive started there on the namespace's
//! loopback is reachable from here only through ssh.
//!
//! The keeper reaches it with `RBEE_SSH_COMMAND="ssh -F <cfg>"` (host key pinned in a
//! known_hosts of ours): see [`SshHost::keeper`]. Each [`SshHost`] takes one of [`SLOTS`] slots
//! (a lock file): its namespace, veth names, subnet and user are the slot's, so tests running at
//! once (in one process or several) never share them; a slot's leftovers from a crashed run are
//! cleared when it is taken, and everything is removed on `Drop`.
//!
//! Needs root, `ip` (iproute2) and `sshd` (openssh-server). Without them [`SshHost::start`] says
//! so loudly and returns `None`; under `CI=true` it fails instead.

use std::fs::{self, File, OpenOptions};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::{peer, Keeper};

/// How many hosts may exist at once (each a /30 at 10.213.(200 + slot).0).
pub const SLOTS: u8 = 32;
/// The alias the client config gives the host.
pub const ALIAS: &str = "gpu";
/// An alias for the same address, on a port nothing listens on.
pub const GONE: &str = "gone";
/// An alias whose key the host does not know.
pub const BADKEY: &str = "badkey";

/// useradd/userdel lock /etc/passwd: one test at a time sets up or tears down.
static ACCOUNTS: Mutex<()> = Mutex::new(());

/// A simulated remote machine reachable over ssh; removed on `Drop`.
#[derive(Debug)]
pub struct SshHost {
    slot: u8,
    _lock: File,
    dir: tempfile::TempDir,
    sshd: Option<Child>,
}

impl SshHost {
    /// Make one, or `None` after a loud line saying `what` did not run (a panic under `CI=true`).
    ///
    /// # Panics
    /// When a step fails under `CI=true`.
    #[track_caller]
    pub fn start(what: &str) -> Option<Self> {
        peer::require("openssh-server", &["/usr/sbin/sshd"], what)?;
        peer::require("iproute2", &["/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "ip"], what)?;
        peer::require("openssh-client", &["ssh-keygen"], what)?;
        match Self::try_start() {
            Ok(host) => Some(host),
            Err(why) => {
                let line = format!("cannot make the SSH test host ({why}); {what} did NOT run");
                assert!(std::env::var("CI").map_or(true, |v| v != "true"), "CI=true but {line}");
                eprintln!("\n\n!!!!! SKIPPED: {line} !!!!!\n\n");
                None
            }
        }
    }

    fn try_start() -> Result<Self, String> {
        let uid = fs::metadata("/proc/self").map(|m| m.uid()).map_err(|e| e.to_string())?;
        if uid != 0 {
            return Err("it needs root (network namespaces, sshd, a user account)".into());
        }
        let (slot, lock) = take_slot()?;
        let dir = tempfile::Builder::new().prefix("rbee-ssh").tempdir().map_err(|e| e.to_string())?;
        let mut host = Self { slot, _lock: lock, dir, sshd: None };
        {
            let _accounts = ACCOUNTS.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            host.clear();
            host.make_account()?;
        }
        host.make_network()?;
        host.make_keys()?;
        host.start_sshd()?;
        Ok(host)
    }

    /// The namespace's name.
    pub fn netns(&self) -> String {
        format!("rbee-ssh{}", self.slot)
    }

    fn veth(&self) -> String {
        format!("rbs{}h", self.slot)
    }

    /// The account on the "remote" machine.
    pub fn user(&self) -> String {
        format!("rbee-ssh{}", self.slot)
    }

    /// The remote user's home.
    pub fn home(&self) -> PathBuf {
        PathBuf::from("/home").join(self.user())
    }

    /// The remote user's HF cache (`~/.cache/huggingface/hub` there).
    pub fn hf_cache(&self) -> PathBuf {
        self.home().join(".cache/huggingface/hub")
    }

    /// This side of the veth (the fake hub binds here).
    pub fn host_ip(&self) -> Ipv4Addr {
        Ipv4Addr::new(10, 213, 200 + self.slot, 1)
    }

    /// The namespace's side, where sshd listens.
    pub fn remote_ip(&self) -> Ipv4Addr {
        Ipv4Addr::new(10, 213, 200 + self.slot, 2)
    }

    /// `ssh -F <cfg>`: what `RBEE_SSH_COMMAND` is set to.
    pub fn ssh_command(&self) -> String {
        format!("ssh -F {}", self.path("ssh_config").display())
    }

    /// The keeper's own HOME (its state dir, so its control sockets, live under it).
    pub fn keeper_home(&self) -> PathBuf {
        self.path("home")
    }

    /// A keeper that reaches this host's aliases, with a HOME of its own.
    pub fn keeper(&self) -> Keeper {
        Keeper::new()
            .env("RBEE_SSH_COMMAND", self.ssh_command())
            .env("HOME", self.keeper_home())
            .env("XDG_STATE_HOME", self.keeper_home().join(".local/state"))
            .env("SSH_AUTH_SOCK", "")
    }

    /// The keeper's ssh masters (`ssh -O check` on each control socket in its state dir): one
    /// `Master running (pid=N)` line each.
    pub fn masters(&self) -> Vec<String> {
        let dir = self.keeper_home().join(".local/state/rbee/ssh");
        let controls = fs::read_dir(dir).into_iter().flatten().flatten().map(|e| e.path());
        let cfg = self.path("ssh_config").display().to_string();
        let check =
            |p: PathBuf| Command::new("ssh").args(["-F", &cfg, "-S"]).arg(p).args(["-O", "check", ALIAS]).output();
        let outs = controls.filter(|p| p.extension().is_none()).filter_map(|p| check(p).ok());
        outs.map(|o| String::from_utf8_lossy(&o.stderr).trim().to_owned()).filter(|l| l.contains("pid=")).collect()
    }

    /// Pids of the remote user's `rbee-hive` processes.
    pub fn hive_pids(&self) -> Vec<u32> {
        let out = Command::new("pgrep").args(["-u", &self.user(), "-x", "rbee-hive"]).output().expect("pgrep");
        String::from_utf8_lossy(&out.stdout).lines().filter_map(|l| l.trim().parse().ok()).collect()
    }

    /// Every process's command line (`/proc/*/cmdline`, NULs as spaces).
    pub fn all_cmdlines() -> Vec<String> {
        let procs = fs::read_dir("/proc").into_iter().flatten().flatten();
        let lines = procs.filter_map(|e| fs::read(e.path().join("cmdline")).ok());
        lines.map(|l| String::from_utf8_lossy(&l).replace('\0', " ")).collect()
    }

    /// `ss -ltn` inside the namespace.
    pub fn listening(&self) -> String {
        let out = Command::new("ip").args(["netns", "exec", &self.netns(), "ss", "-ltnH"]).output().expect("ss");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `program args` run inside the namespace (e.g. a keeper that has no route to anything).
    pub fn in_netns(&self, cmd: &Command) -> Command {
        let mut wrapped = Command::new("ip");
        wrapped.args(["netns", "exec", &self.netns()]).arg(cmd.get_program()).args(cmd.get_args());
        for (k, v) in cmd.get_envs() {
            match v {
                Some(v) => wrapped.env(k, v),
                None => wrapped.env_remove(k),
            };
        }
        wrapped.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        wrapped
    }

    /// Make the remote's `uname -sm` print `uname` (for the architecture check), or undo it (`None`).
    pub fn fake_uname(&self, uname: Option<&str>) {
        let bin = self.home().join("fakebin");
        let env = self.home().join(".ssh/environment");
        match uname {
            Some(uname) => {
                fs::create_dir_all(&bin).expect("fakebin");
                fs::write(bin.join("uname"), format!("#!/bin/sh\necho '{uname}'\n")).expect("fake uname");
                run("chmod", &["755", &bin.join("uname").display().to_string()]).expect("chmod");
                let path = format!("PATH={}:/usr/local/bin:/usr/bin:/bin\n", bin.display());
                fs::write(&env, path).expect("~/.ssh/environment");
            }
            None => drop(fs::remove_file(env)),
        }
    }

    /// sshd's log, for failure messages.
    pub fn sshd_log(&self) -> String {
        fs::read_to_string(self.path("sshd.log")).unwrap_or_default()
    }

    /// The remote hive's log (`~/.cache/rbee/hive.log` there).
    pub fn hive_log(&self) -> String {
        fs::read_to_string(self.home().join(".cache/rbee/hive.log")).unwrap_or_default()
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn make_account(&self) -> Result<(), String> {
        let user = self.user();
        // `-p '*'`: no password, but not a locked account (sshd refuses locked ones).
        run("useradd", &["-m", "-p", "*", "-s", "/bin/sh", &user])?;
        let ssh = self.home().join(".ssh");
        fs::create_dir_all(&ssh).map_err(|e| e.to_string())?;
        Ok(())
    }

    fn make_network(&self) -> Result<(), String> {
        let (ns, veth, peer) = (self.netns(), self.veth(), format!("rbs{}r", self.slot));
        let (here, there) = (format!("{}/30", self.host_ip()), format!("{}/30", self.remote_ip()));
        run("ip", &["netns", "add", &ns])?;
        run("ip", &["link", "add", &veth, "type", "veth", "peer", "name", &peer])?;
        run("ip", &["link", "set", &peer, "netns", &ns])?;
        run("ip", &["addr", "add", &here, "dev", &veth])?;
        run("ip", &["link", "set", &veth, "up"])?;
        run("ip", &["netns", "exec", &ns, "ip", "addr", "add", &there, "dev", &peer])?;
        run("ip", &["netns", "exec", &ns, "ip", "link", "set", &peer, "up"])?;
        run("ip", &["netns", "exec", &ns, "ip", "link", "set", "lo", "up"])
    }

    fn make_keys(&self) -> Result<(), String> {
        for key in ["host_key", "client_key", "stranger_key"] {
            let path = self.path(key).display().to_string();
            run("ssh-keygen", &["-q", "-t", "ed25519", "-N", "", "-C", "rbee-test", "-f", &path])?;
        }
        let read = |name: &str| fs::read_to_string(self.path(name)).map_err(|e| e.to_string());
        let ssh = self.home().join(".ssh");
        fs::write(ssh.join("authorized_keys"), read("client_key.pub")?).map_err(|e| e.to_string())?;
        let owner = format!("{0}:{0}", self.user());
        run("chown", &["-R", &owner, &ssh.display().to_string()])?;
        run("chmod", &["700", &ssh.display().to_string()])?;
        let known = format!("{} {}", self.remote_ip(), read("host_key.pub")?);
        fs::write(self.path("known_hosts"), known).map_err(|e| e.to_string())?;
        fs::create_dir_all(self.keeper_home()).map_err(|e| e.to_string())?;
        fs::write(self.path("ssh_config"), self.client_config()).map_err(|e| e.to_string())
    }

    fn client_config(&self) -> String {
        let entry = |alias: &str, port: u16, key: &str| {
            format!(
                "Host {alias}\n  HostName {}\n  Port {port}\n  User {}\n  IdentityFile {}\n  IdentitiesOnly yes\n  \
                 StrictHostKeyChecking yes\n  UserKnownHostsFile {}\n  GlobalKnownHostsFile /dev/null\n\n",
                self.remote_ip(),
                self.user(),
                self.path(key).display(),
                self.path("known_hosts").display()
            )
        };
        entry(ALIAS, 22, "client_key") + &entry(GONE, 2, "client_key") + &entry(BADKEY, 22, "stranger_key")
    }

    fn start_sshd(&mut self) -> Result<(), String> {
        fs::create_dir_all("/run/sshd").map_err(|e| e.to_string())?;
        let config = format!(
            "ListenAddress {}\nPort 22\nHostKey {}\nPidFile none\nAuthorizedKeysFile .ssh/authorized_keys\n\
             PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\n\
             AllowUsers {}\nAllowTcpForwarding yes\nAllowStreamLocalForwarding yes\nPermitUserEnvironment PATH\n\
             LogLevel VERBOSE\n",
            self.remote_ip(),
            self.path("host_key").display(),
            self.user()
        );
        fs::write(self.path("sshd_config"), config).map_err(|e| e.to_string())?;
        let log = File::create(self.path("sshd.log")).map_err(|e| e.to_string())?;
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.netns(), "/usr/sbin/sshd", "-D", "-e", "-f"]).arg(self.path("sshd_config"));
        let child = cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(log).spawn();
        self.sshd = Some(child.map_err(|e| format!("sshd: {e}"))?);
        let addr = SocketAddr::from((self.remote_ip(), 22));
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            if Instant::now() >= deadline {
                return Err(format!("sshd never listened on {addr}: {}", self.sshd_log()));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(())
    }

    /// Remove whatever the slot holds: the keeper's ssh masters, the user's processes and
    /// account, the namespace (and its processes) and the veth.
    fn clear(&mut self) {
        let controls = fs::read_dir(self.keeper_home().join(".local/state/rbee/ssh")).into_iter().flatten().flatten();
        for control in controls.map(|e| e.path()).filter(|p| p.extension().is_none()) {
            let cfg = self.path("ssh_config").display().to_string();
            let _ = run("ssh", &["-F", &cfg, "-S", &control.display().to_string(), "-O", "exit", ALIAS]);
        }
        if let Some(mut sshd) = self.sshd.take() {
            let _ = sshd.kill();
            let _ = sshd.wait();
        }
        let ns = self.netns();
        if let Ok(out) = Command::new("ip").args(["netns", "pids", &ns]).output() {
            for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                let _ = run("kill", &["-KILL", pid]);
            }
        }
        let _ = run("pkill", &["-KILL", "-u", &self.user()]);
        let _ = run("ip", &["netns", "del", &ns]);
        let _ = run("ip", &["link", "del", &self.veth()]);
        if run("id", &["-u", &self.user()]).is_ok() {
            let deadline = Instant::now() + Duration::from_secs(5);
            while run("userdel", &["-r", "-f", &self.user()]).is_err() && Instant::now() < deadline {
                let _ = run("pkill", &["-KILL", "-u", &self.user()]);
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
}

impl Drop for SshHost {
    fn drop(&mut self) {
        let _accounts = ACCOUNTS.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        self.clear();
    }
}

/// The first free slot, held by its lock file.
fn take_slot() -> Result<(u8, File), String> {
    let dir = Path::new("/tmp/rbee-ssh-slots");
    fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    for slot in 0..SLOTS {
        let file = OpenOptions::new().create(true).truncate(false).write(true).open(dir.join(format!("{slot}.lock")));
        let file = file.map_err(|e| e.to_string())?;
        if file.try_lock().is_ok() {
            return Ok((slot, file));
        }
    }
    Err(format!("all {SLOTS} slots are taken"))
}

fn run(program: &str, args: &[&str]) -> Result<(), String> {
    let out = Command::new(program).args(args).stdin(Stdio::null()).output();
    let out = out.map_err(|e| format!("{program}: {e}"))?;
    if out.status.success() {
        return Ok(());
    }
    Err(format!("`{program} {}` failed: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim()))
}
