//! `rbee hive start [--addr A] [--foreground]`.

use anyhow::Result;
use serde_json::json;

use super::Ctx;
use crate::client::addr_of;
use crate::commands::print_json;
use crate::exit::Exit;
use crate::hive_spawn::{self, Outcome, PROBE};

/// Start `rbee-hive` (found beside `rbee`, else on PATH), detached, logging to ~/.cache/rbee/hive.log;
/// with `--host A`, the one installed on that machine, bound to its loopback, logging there.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Address to listen on [default: the --hive address, else --local-addr]
    #[arg(long, value_name = "HOST:PORT")]
    pub(super) addr: Option<String>,
    /// Run the hive in this terminal instead of in the background
    #[arg(long)]
    pub(super) foreground: bool,
    /// With --host: the port the hive listens on, on that machine's loopback [default: 7835]
    #[arg(long, conflicts_with_all = ["addr", "foreground"])]
    pub(super) port: Option<u16>,
}

impl Args {
    pub(crate) async fn execute(self, ctx: &Ctx) -> Result<Exit> {
        if let Some(remote) = &ctx.remote {
            if self.foreground || self.addr.is_some() {
                let message = "--foreground and --addr are for a local hive; with --host, use --port";
                return Err(crate::exit::UsageError(message.into()).into());
            }
            return super::remote::start(ctx, remote, self.port).await;
        }
        let client = match &self.addr {
            Some(addr) => ctx.client.at(addr)?,
            None => ctx.client.clone(),
        };
        if self.foreground {
            return Err(hive_spawn::exec_foreground(&addr_of(client.base())));
        }
        if let Some(health) = client.probe(PROBE).await {
            let pid = health.pid.map_or_else(|| "?".to_owned(), |p| p.to_string());
            ctx.note(&format!("🐝 hive already running at {} (pid {pid})", client.base()));
            return if ctx.json() { print_json(&health) } else { Ok(Exit::Ok) };
        }
        let started = match hive_spawn::start(&client).await? {
            Outcome::Started(started) => started,
            Outcome::Running(health) => {
                let pid = health.pid.map_or_else(|| "?".to_owned(), |p| p.to_string());
                ctx.note(&format!("🐝 hive already running at {} (pid {pid})", client.base()));
                return if ctx.json() { print_json(&health) } else { Ok(Exit::Ok) };
            }
        };
        if ctx.json() {
            return print_json(&json!({ "url": client.base(), "pid": started.pid, "log": started.log }));
        }
        outln!("{}", started.line(client.base()));
        Ok(Exit::Ok)
    }
}
