//! `rbee hive stop`.

use std::time::{Duration, Instant};

use anyhow::{bail, Result};

use super::Ctx;
use crate::exit::{Exit, Unreachable};
use crate::hive_spawn::PROBE;

const STOP_WAIT: Duration = Duration::from_secs(10);

/// Ask the hive to shut down (`POST /v1/shutdown`) and wait until `/health` stops answering.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {}

impl Args {
    pub(crate) async fn execute(self, ctx: &Ctx) -> Result<Exit> {
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
