//! `rbee hive install --host A [--force]`.

use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context, Result};
use serde_json::json;

use super::Ctx;
use crate::commands::print_json;
use crate::exit::{Exit, UsageError};
use crate::hive_spawn::hive_binary;
use crate::ssh::remote::BINARY;
use crate::ssh::SshError;

/// Copy the `rbee-hive` beside this `rbee` to an SSH host's ~/.local/bin (through the ssh
/// connection), after checking that `uname -sm` matches; skipped when the same version is there.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Copy even when the host has the same version
    #[arg(long)]
    force: bool,
}

impl Args {
    pub(crate) async fn execute(self, ctx: &Ctx) -> Result<Exit> {
        let remote = super::needs_host(ctx, "install")?;
        let alias = &remote.host.alias;
        let binary = hive_binary();
        if !binary.is_absolute() {
            return Err(UsageError("no `rbee-hive` beside this `rbee` to copy: build or install both".into()).into());
        }
        let (ours, uname) = (output(&binary, &["--version"])?, output(Path::new("uname"), &["-sm"])?);
        let probe = remote.probe().await?;
        if probe.uname != uname {
            let message = format!("`{alias}` runs {}, but this rbee-hive is built for {uname}", probe.uname);
            let advice = format!("build rbee-hive for {} and put it beside rbee, then install again", probe.uname);
            return Err(SshError::new(message, &[advice]).into());
        }
        let same = probe.version.as_deref() == Some(ours.as_str());
        if same && !self.force {
            ctx.note(&format!("🐝 {ours} is already installed on {alias} ({BINARY}); --force copies it anyway"));
            return if ctx.json() {
                print_json(&json!({ "host": alias, "version": ours, "copied": false }))
            } else {
                Ok(Exit::Ok)
            };
        }
        remote.upload(&binary).await?;
        let now = remote.probe().await?.version;
        if now.as_deref() != Some(ours.as_str()) {
            bail!("after the copy, `{BINARY} --version` on `{alias}` says {now:?}, not `{ours}`");
        }
        if ctx.json() {
            return print_json(&json!({ "host": alias, "version": ours, "copied": true }));
        }
        let size = std::fs::metadata(&binary).map_or(0, |m| m.len());
        outln!("🐝 installed {ours} on {alias} at {BINARY} ({:.1} MiB copied over ssh)", size as f64 / 1048576.0);
        ctx.note(&format!("🐝 start it with `rbee hive start --host {alias}`"));
        Ok(Exit::Ok)
    }
}

/// The first line `program args` prints.
fn output(program: &Path, args: &[&str]) -> Result<String> {
    let out = Command::new(program).args(args).output();
    let out = out.with_context(|| format!("running `{} {}`", program.display(), args.join(" ")))?;
    Ok(String::from_utf8_lossy(&out.stdout).lines().next().unwrap_or_default().trim().to_owned())
}
