//! The SSH flavour of `rbee hive start|stop|status`: the same verbs for a hive on another machine,
//! reached through the alias's tunnel (`crate::ssh`).

use std::time::{Duration, Instant};

use anyhow::Result;
use rbee_protocol::Health;
use serde_json::json;

use super::Ctx;
use crate::client::{timeout, HiveClient};
use crate::commands::print_json;
use crate::exit::{Exit, StartFailed};
use crate::ssh::remote::{passed_env, LOG};
use crate::ssh::{self, Remote, SshError};

/// How long a hive on the far side of a tunnel may take to answer `/health`.
const PROBE: Duration = Duration::from_secs(3);
const STARTUP: Duration = Duration::from_secs(10);

/// The tunnel and client for `remote`'s host at `port` (the one already open when it is the same).
pub(super) async fn at_port(ctx: &Ctx, remote: &Remote, port: Option<u16>) -> Result<(Remote, HiveClient)> {
    match port.filter(|p| *p != remote.port) {
        None => Ok((remote.clone(), ctx.client.clone())),
        Some(port) => {
            let other = ssh::connect(&remote.ssh, &remote.host.alias, port).await?;
            let client = HiveClient::through(&format!("127.0.0.1:{port}"), &other.socket)?;
            Ok((other, client))
        }
    }
}

/// Succeeds when the hive on `remote` answers; else says whether to install or to start it.
pub(crate) async fn remote_up(client: &HiveClient, remote: &Remote) -> Result<()> {
    if client.probe(PROBE).await.is_some() {
        return Ok(());
    }
    Err(down(remote).await)
}

async fn down(remote: &Remote) -> anyhow::Error {
    if !remote.has_binary().await.unwrap_or(true) {
        return remote.no_binary();
    }
    let alias = &remote.host.alias;
    let message = format!("no hive answers on `{alias}` ({}, its 127.0.0.1:{})", remote.host.at(), remote.port);
    SshError::new(message, &[format!("run `rbee hive start --host {alias}`")]).into()
}

/// `rbee hive start --host A [--port P]`.
pub(super) async fn start(ctx: &Ctx, remote: &Remote, port: Option<u16>) -> Result<Exit> {
    let (remote, client) = at_port(ctx, remote, port).await?;
    let alias = &remote.host.alias;
    if let Some(health) = client.probe(PROBE).await {
        ctx.note(&format!("🐝 hive already running on {alias} (pid {})", pid(&health)));
        return if ctx.json() { print_json(&with_host(&remote, &health)) } else { Ok(Exit::Ok) };
    }
    let env = passed_env(|name| std::env::var(name).ok())?;
    let pid = remote.start(env).await?;
    let health = wait_up(&client, &remote).await?;
    if ctx.json() {
        return print_json(&json!({ "host": alias, "port": remote.port, "pid": health.pid, "log": LOG }));
    }
    outln!(
        "🐝 started hive on {alias} ({}) at its 127.0.0.1:{} (pid {pid}, log {LOG} there)",
        remote.host.at(),
        remote.port
    );
    Ok(Exit::Ok)
}

async fn wait_up(client: &HiveClient, remote: &Remote) -> Result<Health> {
    let deadline = Instant::now() + STARTUP;
    loop {
        if let Some(health) = client.probe(PROBE).await {
            return Ok(health);
        }
        if Instant::now() >= deadline {
            let why = remote.last_error().await.unwrap_or_else(|| format!("no answer within {STARTUP:?}"));
            let alias = &remote.host.alias;
            return Err(StartFailed(format!("the hive on `{alias}` did not start: {why}; see {LOG} there")).into());
        }
        smol::Timer::after(Duration::from_millis(100)).await;
    }
}

/// `rbee hive stop --host A`: ask the hive to shut down, then make sure its process is gone.
pub(super) async fn stop(ctx: &Ctx, remote: &Remote, port: Option<u16>) -> Result<Exit> {
    let (remote, client) = at_port(ctx, remote, port).await?;
    let health = client.probe(PROBE).await;
    if health.is_some() {
        // It may go before it answers: the reap below is what proves it gone.
        let _ = timeout(PROBE, client.shutdown()).await;
    }
    let killed = remote.reap(health.as_ref().and_then(|h| h.pid)).await?;
    let alias = &remote.host.alias;
    if health.is_none() && !killed {
        ctx.note(&format!("🐝 no hive running on {alias}"));
        return Ok(Exit::Ok);
    }
    if !ctx.json() {
        outln!("🐝 hive on {alias} stopped{}", if killed { " (killed: it did not exit in time)" } else { "" });
    }
    Ok(Exit::Ok)
}

/// `rbee hive status --host A`.
pub(super) async fn status(ctx: &Ctx, remote: &Remote) -> Result<Exit> {
    let Ok(health) = timeout(PROBE, ctx.client.health()).await else {
        return Err(down(remote).await);
    };
    if ctx.json() {
        return print_json(&with_host(remote, &health));
    }
    outln!(
        "🐝 hive on {} ({}): {} (rbee-hive {}, pid {}, {} running jobs, {} live tasks, {} jobs)",
        remote.host.alias,
        remote.host.at(),
        health.status,
        health.version,
        pid(&health),
        health.running_jobs,
        health.live_tasks,
        health.jobs
    );
    Ok(Exit::Ok)
}

fn pid(health: &Health) -> String {
    health.pid.map_or_else(|| "?".to_owned(), |p| p.to_string())
}

fn with_host(remote: &Remote, health: &Health) -> serde_json::Value {
    let mut value = serde_json::to_value(health).unwrap_or_default();
    value["host"] = json!(remote.host.alias);
    value
}
