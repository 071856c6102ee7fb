//! nginx (Debian's `nginx-light`) as a real CDN for benchmarks and tests: one process in the
//! foreground serving a directory on free loopback ports, each optionally capped per connection
//! with `limit_rate` (the way a CDN caps a connection), logging which connection served each
//! request ([`Nginx::requests`]). Killed on drop.

use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use super::free_port;
use super::process::KillOnDrop;

/// Where nginx is: on `PATH`, else Debian's `/usr/sbin/nginx`.
#[must_use]
pub fn binary() -> Option<std::path::PathBuf> {
    let on_path = Command::new("nginx").arg("-v").output().is_ok();
    let debian = std::path::Path::new("/usr/sbin/nginx");
    if on_path {
        Some("nginx".into())
    } else {
        debian.exists().then(|| debian.to_owned())
    }
}

/// A running nginx.
pub struct Nginx {
    child: KillOnDrop,
    ports: Vec<u16>,
    log: std::path::PathBuf,
}

/// One request nginx served, from its access log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Served {
    /// nginx's serial number of the connection.
    pub connection: u64,
    /// Which request on that connection it was (1: the first).
    pub nth: u64,
    pub range: String,
    pub status: u16,
}

impl Nginx {
    /// Serves `root` on one free port per entry of `caps` (`Some("16m")`: `limit_rate 16m`), with
    /// its config, pid and logs under `dir`; waits until every port listens.
    ///
    /// # Errors
    /// When nginx is not installed or does not listen within 10 s.
    pub fn start(dir: &Path, root: &Path, caps: &[Option<&str>]) -> Result<Self> {
        fs::create_dir_all(dir.join("tmp"))?;
        let ports: Vec<u16> = caps.iter().map(|_| free_port()).collect();
        let servers: String = ports
            .iter()
            .zip(caps)
            .map(|(port, cap)| {
                let limit = cap.map(|c| format!(" limit_rate {c};")).unwrap_or_default();
                format!("  server {{ listen 127.0.0.1:{port}; root {};{limit} }}\n", root.display())
            })
            .collect();
        let (conf, d) = (dir.join("nginx.conf"), dir.display());
        fs::write(
            &conf,
            format!(
                "daemon off;\nmaster_process off;\nworker_processes 1;\npid {d}/nginx.pid;\nerror_log {d}/error.log;\n\
                 events {{ worker_connections 1024; }}\n\
                 http {{\n  log_format conn '$connection $connection_requests \"$http_range\" $status';\n  access_log {d}/access.log conn;\n  sendfile on;\n  tcp_nopush on;\n  default_type application/octet-stream;\n\
                 client_body_temp_path {d}/tmp; proxy_temp_path {d}/tmp; fastcgi_temp_path {d}/tmp;\n\
                 uwsgi_temp_path {d}/tmp; scgi_temp_path {d}/tmp;\n{servers}}}\n"
            ),
        )?;
        let child = Command::new(binary().context("nginx is not installed: apt-get install nginx-light")?)
            .arg("-p")
            .arg(dir)
            .arg("-c")
            .arg(&conf)
            .arg("-e")
            .arg(dir.join("error.log"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting nginx: install Debian's nginx-light (bench/run.sh and bench/mirror.sh do)")?;
        let nginx = Self { child: KillOnDrop(child), ports, log: dir.join("access.log") };
        let deadline = Instant::now() + Duration::from_secs(10);
        for port in &nginx.ports {
            while std::net::TcpStream::connect(("127.0.0.1", *port)).is_err() {
                if Instant::now() > deadline {
                    let log = fs::read_to_string(dir.join("error.log")).unwrap_or_default();
                    bail!("nginx did not listen on {port}: {log}");
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        Ok(nginx)
    }

    /// `http://127.0.0.1:PORT` of server `i` (in the order of `caps`).
    #[must_use]
    pub fn url(&self, i: usize) -> String {
        format!("http://127.0.0.1:{}", self.ports[i])
    }

    /// Its pid.
    #[must_use]
    pub fn pid(&self) -> u32 {
        self.child.0.id()
    }
}

impl Nginx {
    /// The requests served so far, in the order they ended.
    #[must_use]
    pub fn requests(&self) -> Vec<Served> {
        let text = fs::read_to_string(&self.log).unwrap_or_default();
        text.lines()
            .filter_map(|line| {
                let mut it = line.splitn(3, ' ');
                let connection = it.next()?.parse().ok()?;
                let nth = it.next()?.parse().ok()?;
                let (range, status) = it.next()?.rsplit_once(' ')?;
                Some(Served {
                    connection,
                    nth,
                    range: range.trim_matches('"').to_owned(),
                    status: status.parse().ok()?,
                })
            })
            .collect()
    }
}
