//! [`LocalHive`]: the keeper's embedded default under test — a free loopback address with its own
//! cache and log directories, where `rbee` starts (or finds) the hive itself. Whatever hive ends up
//! there is killed on `Drop`, even when the test failed before `rbee hive stop`.

use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;
use tempfile::TempDir;

use super::{free_port, http, FakeHub, Keeper, TIMEOUT};

/// A local hive address and the environment a keeper needs to start a hive there.
pub struct LocalHive {
    /// `127.0.0.1:PORT`.
    pub addr: String,
    /// `HF_HUB_CACHE` of the hive the keeper starts.
    pub cache: TempDir,
    /// `XDG_CACHE_HOME` of the keeper (its hive log and lock live under `rbee/`).
    pub home: TempDir,
    endpoint: String,
}

impl LocalHive {
    /// A fresh address whose hive will download from `hub`.
    pub fn new(hub: &FakeHub) -> Self {
        let addr = format!("127.0.0.1:{}", free_port());
        let (cache, home) = (TempDir::new().expect("cache dir"), TempDir::new().expect("home dir"));
        Self { addr, cache, home, endpoint: hub.endpoint().to_owned() }
    }

    /// `rbee` with this address as the default and the hub / cache in its environment.
    pub fn keeper(&self) -> Keeper {
        Keeper::new()
            .env("RBEE_HIVE_ADDR", &self.addr)
            .env("HF_ENDPOINT", &self.endpoint)
            .env("HF_HUB_CACHE", self.cache.path())
            .env("XDG_CACHE_HOME", self.home.path())
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The hive's JSON health (`Null` when nothing answers).
    pub fn health(&self) -> Value {
        let url = format!("{}/health", self.url());
        http::request("GET", &url, &[("Accept", "application/json")], None).map(|r| r.json()).unwrap_or_default()
    }

    /// The pid the hive at this address reports, if one answers.
    pub fn pid(&self) -> Option<u64> {
        self.health()["pid"].as_u64()
    }

    /// The hive log the keeper's auto-start writes.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.home.path().join("rbee/hive.log")).unwrap_or_default()
    }

    /// Whether anything accepts connections at the address.
    pub fn listening(&self) -> bool {
        TcpStream::connect(&self.addr).is_ok()
    }

    /// Waits until nothing listens at the address any more; `false` after [`TIMEOUT`].
    pub fn wait_closed(&self) -> bool {
        let deadline = Instant::now() + TIMEOUT;
        while self.listening() {
            if Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        true
    }
}

impl Drop for LocalHive {
    fn drop(&mut self) {
        if let Some(pid) = self.pid() {
            let _ = Command::new("kill").args(["-KILL", &pid.to_string()]).status();
        }
    }
}
