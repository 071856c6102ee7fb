//! One module per noun, one file per verb; each verb has its own clap `Args` and `execute`.

pub(crate) mod hive;
pub(crate) mod job;
pub(crate) mod model;
mod watch;

use anyhow::Result;
use serde::Serialize;

use crate::cli::{Cli, Command, GlobalArgs};
use crate::client::{hive_target, HiveClient, HiveTarget};
use crate::exit::Exit;
use crate::exit::UsageError;
use crate::hive_spawn;
use crate::render::{self, Mode};

/// What every command gets: the hive client and the output mode.
pub(crate) struct Ctx {
    pub(crate) client: HiveClient,
    pub(crate) mode: Mode,
    /// Whether the user named a hive other than the local one; if not, one may be started.
    pub(crate) explicit_hive: bool,
    /// The `hive_id` operations carry: the alias given, else `localhost`.
    pub(crate) hive_id: String,
}

impl Ctx {
    fn new(global: &GlobalArgs) -> Result<Self> {
        let target = hive_target(&global.hive).map_err(|e| UsageError(format!("--hive: {e:#}")))?;
        let (base, alias) = match &target {
            HiveTarget::Local => (global.local_addr.as_str(), None),
            HiveTarget::Remote { base, alias } => (base.as_str(), alias.clone()),
        };
        let client = HiveClient::new(base, global.token.clone())?;
        render::set_verbose(global.verbose);
        Ok(Self {
            client: if target == HiveTarget::Local { client.local() } else { client },
            mode: Mode::detect(global.json, global.quiet),
            explicit_hive: target != HiveTarget::Local,
            hive_id: alias.unwrap_or_else(|| rbee_protocol::DEFAULT_HIVE_ID.to_owned()),
        })
    }

    /// A status line on stderr, unless `--quiet`.
    pub(crate) fn note(&self, line: &str) {
        render::note(self.mode, line);
    }

    pub(crate) fn json(&self) -> bool {
        self.mode == Mode::Json
    }

    /// The embedded default: start a local hive when none was named and none answers.
    pub(crate) async fn ensure_hive(&self) -> Result<()> {
        if self.explicit_hive {
            return Ok(());
        }
        hive_spawn::ensure(&self.client, self.mode).await
    }
}

/// `value` as one line of JSON on stdout.
pub(crate) fn print_json(value: &impl Serialize) -> Result<Exit> {
    outln!("{}", rbee_protocol::text::to_json(value)?);
    Ok(Exit::Ok)
}

/// Run the parsed command line.
pub(crate) async fn execute(cli: Cli) -> Result<Exit> {
    let ctx = Ctx::new(&cli.global)?;
    match cli.command {
        Command::Model(cmd) => cmd.execute(&ctx).await,
        Command::Job(cmd) => cmd.execute(&ctx).await,
        Command::Hive(cmd) => cmd.execute(&ctx).await,
    }
}
