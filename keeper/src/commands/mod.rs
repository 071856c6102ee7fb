//! One module per noun, one file per verb; each verb has its own clap `Args` and `execute`.

/// A noun's verbs: the clap enum, one variant per verb holding that verb's `Args`, and the
/// `execute` that hands the context to the verb typed. The one dispatch every noun shares.
macro_rules! verbs {
    ($noun:ident { $($(#[$attr:meta])* $verb:ident($args:ty),)+ }) => {
        #[derive(Debug, clap::Subcommand)]
        pub(crate) enum $noun {
            $($(#[$attr])* $verb($args),)+
        }

        impl $noun {
            pub(crate) async fn execute(self, ctx: &$crate::commands::Ctx) -> anyhow::Result<$crate::exit::Exit> {
                match self {
                    $(Self::$verb(args) => args.execute(ctx).await,)+
                }
            }
        }
    };
}

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
use crate::ssh::{self, Remote};

/// What every command gets: the hive client and the output mode.
pub(crate) struct Ctx {
    pub(crate) client: HiveClient,
    pub(crate) mode: Mode,
    /// The hive's host and the tunnel to it, when `--hive` named an SSH alias.
    pub(crate) remote: Option<Remote>,
}

impl Ctx {
    async fn new(global: &GlobalArgs) -> Result<Self> {
        let target = hive_target(&global.hive).map_err(|e| UsageError(format!("--hive: {e:#}")))?;
        let mode = Mode::detect(global.json, global.quiet);
        let (client, remote) = match target {
            HiveTarget::Local => (HiveClient::new(&global.local_addr, global.token.clone())?.local(), None),
            HiveTarget::Remote { base } => (HiveClient::new(&base, global.token.clone())?, None),
            HiveTarget::Ssh { alias, port } => {
                let ssh =
                    ssh::Ssh::new(&global.ssh_command, &ssh::state_dir()).map_err(|e| UsageError(format!("{e:#}")))?;
                let remote = ssh::connect(&ssh, &alias, port).await?;
                let client = HiveClient::through(&format!("127.0.0.1:{port}"), &remote.socket)?;
                (client, Some(remote))
            }
        };
        render::set_verbose(global.verbose);
        Ok(Self { client, mode, remote })
    }

    /// Whether the user named a hive other than the local one; if not, one may be started.
    pub(crate) fn explicit_hive(&self) -> bool {
        !self.client.is_local()
    }

    /// The `hive_id` operations carry: the SSH alias given, else `localhost`.
    pub(crate) fn hive_id(&self) -> &str {
        self.remote.as_ref().map_or(rbee_protocol::DEFAULT_HIVE_ID, |r| r.host.alias.as_str())
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
        if let Some(remote) = &self.remote {
            return hive::remote_up(&self.client, remote).await;
        }
        if self.explicit_hive() {
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
    let ctx = Ctx::new(&cli.global).await?;
    if ctx.remote.is_some() && !matches!(cli.command, Command::Hive(_)) {
        ctx.ensure_hive().await?;
    }
    match cli.command {
        Command::Model(cmd) => cmd.execute(&ctx).await,
        Command::Job(cmd) => cmd.execute(&ctx).await,
        Command::Hive(cmd) => cmd.execute(&ctx).await,
    }
}
