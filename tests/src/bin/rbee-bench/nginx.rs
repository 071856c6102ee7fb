//! nginx (Debian's `nginx-light`) as the real server of the benchmarks: one process in the
//! foreground serving a directory on free loopback ports, each optionally capped per connection
//! with `limit_rate` (the way a CDN caps a connection). Killed on drop.

use std::fs;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::proc::free_port;

/// A running nginx.
pub(crate) struct Nginx {
    child: Child,
    ports: Vec<u16>,
}

impl Nginx {
    /// Serves `root` on one free port per entry of `caps` (`Some("16m")`: `limit_rate 16m`), with
    /// its config, pid and logs under `dir`; waits until every port listens.
    pub(crate) fn start(dir: &Path, root: &Path, caps: &[Option<&str>]) -> Result<Self> {
        fs::create_dir_all(dir.join("tmp"))?;
        let ports = caps.iter().map(|_| free_port()).collect::<Result<Vec<u16>>>()?;
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
                 http {{\n  access_log off;\n  sendfile on;\n  tcp_nopush on;\n  default_type application/octet-stream;\n\
                 client_body_temp_path {d}/tmp; proxy_temp_path {d}/tmp; fastcgi_temp_path {d}/tmp;\n\
                 uwsgi_temp_path {d}/tmp; scgi_temp_path {d}/tmp;\n{servers}}}\n"
            ),
        )?;
        let child = Command::new("nginx")
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
        let nginx = Self { child, ports };
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
    pub(crate) fn url(&self, i: usize) -> String {
        format!("http://127.0.0.1:{}", self.ports[i])
    }

    /// Its pid.
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
