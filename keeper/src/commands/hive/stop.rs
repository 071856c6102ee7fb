//! `rbee hive stop`.

use std::time::{Duration, Instant};

use anyhow::{bail, Result};

use super::Ctx;
use crate::exit::{Exit, Unreachable};
use crate::hive_spawn::PROBE;

const STOP_WAIT: Duration = Duration::from_secs(10);

/// Ask the hive to shut down (`POST /v1/shutdown`) and wait until `/health` stops answering.
/// With `--host A`, then make sure no rbee-hive process of it is left there.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// With --host: the port of the hive to stop, on that machine's loopback [default: 7835]
    #[arg(long)]
    pub(super) port: Option<u16>,
}

impl Args {
    pub(crate) async fn execute(self, ctx: &Ctx) -> Result<Exit> {
        if let Some(remote) = &ctx.remote {
            return super::remote::stop(ctx, remote, self.port).await;
        }
        let base = ctx.client.base();
        if let Err(err) = ctx.client.shutdown().await {
            if err.is::<Unreachable>() {
                ctx.note(&format!("🐝 no hive running at {base}"));
                return Ok(Exit::Ok);
            }
            return Err(err);
        }
        let deadline = Instant::now() + STOP_WAIT;
        while ctx.client.probe(PROBE).await.is_some() {
            if Instant::now() >= deadline {
                bail!("the hive at {base} still answers {STOP_WAIT:?} after the shutdown request");
            }
            smol::Timer::after(Duration::from_millis(100)).await;
        }
        if !ctx.json() {
            outln!("🐝 hive at {base} stopped");
        }
        Ok(Exit::Ok)
    }
}
