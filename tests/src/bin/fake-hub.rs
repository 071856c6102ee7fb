//! `fake-hub`: serve a deterministic fake HuggingFace hub on loopback until killed.
//!
//! ```text
//! fake-hub --rate 8388608 --file model.gguf:268435456 --file config.json:96
//! HF_ENDPOINT=http://127.0.0.1:PORT rbee model download rbee-demo/tiny-model model.gguf
//! ```
//! Files named `*.json`, `*.md` or `*.txt` are served by the hub itself (non-LFS); everything
//! else is LFS and redirected to the CDN. `GET /_stats` and `POST /_config` drive a running hub.

use std::process::ExitCode;

use clap::Parser;
use rbee_tests::hub::{FakeHub, HubConfig, RepoSpec};

/// A deterministic fake huggingface.co on 127.0.0.1 (hub + CDN), for demos and benchmarks.
#[derive(Debug, Parser)]
#[command(name = "fake-hub", version)]
struct Args {
    /// Hub port (0: any free port).
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// CDN port (0: any free port).
    #[arg(long, default_value_t = 0)]
    cdn_port: u16,
    /// Bytes per second per CDN connection (0: unthrottled).
    #[arg(long, default_value_t = 8 << 20)]
    rate: u64,
    /// Bytes per second over all CDN connections together, one shared link (0: unthrottled).
    #[arg(long, default_value_t = 0)]
    link_rate: u64,
    /// Repository id to serve.
    #[arg(long, default_value = "rbee-demo/tiny-model")]
    repo: String,
    /// `name:size` of a file in the repo (repeatable); default `model.gguf:256MiB` and `config.json:96`.
    #[arg(long = "file", value_parser = parse_file)]
    files: Vec<(String, u64)>,
    /// Make the repo gated, accepting this bearer token.
    #[arg(long)]
    token: Option<String>,
    /// Redirect LFS files to this CDN (`{cdn}/blobs/{org}/{name}/{sha256}`, e.g. an nginx serving
    /// the blobs) instead of the built-in one.
    #[arg(long)]
    cdn: Option<String>,
    /// Address to bind (default 127.0.0.1): e.g. the host end of a test's veth pair.
    #[arg(long)]
    bind: Option<std::net::IpAddr>,
}

fn parse_file(s: &str) -> Result<(String, u64), String> {
    let (name, size) = s.rsplit_once(':').ok_or("expected `name:size`")?;
    Ok((name.to_owned(), parse_size(size)?))
}

/// `123`, `64KiB`, `256MiB`, `2GiB` (also `K`/`M`/`G`, binary units).
fn parse_size(s: &str) -> Result<u64, String> {
    let digits = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (n, unit) = s.split_at(digits);
    let n: u64 = n.parse().map_err(|e| format!("size `{s}`: {e}"))?;
    let shift = match unit.trim() {
        "" | "B" => 0,
        "K" | "KiB" => 10,
        "M" | "MiB" => 20,
        "G" | "GiB" => 30,
        other => return Err(format!("size `{s}`: unknown unit `{other}` (use B, KiB, MiB or GiB)")),
    };
    n.checked_mul(1 << shift).ok_or_else(|| format!("size `{s}` is too large"))
}

fn is_text(name: &str) -> bool {
    [".json", ".md", ".txt"].iter().any(|ext| name.ends_with(ext))
}

fn main() -> ExitCode {
    let args = Args::parse();
    let config = HubConfig {
        port: args.port,
        cdn_port: args.cdn_port,
        rate: args.rate,
        link_rate: args.link_rate,
        token: args.token.clone(),
        cdn: args.cdn.clone(),
        bind: args.bind,
    };
    let hub = match FakeHub::try_start(config) {
        Ok(hub) => hub,
        Err(e) => {
            eprintln!(
                "fake-hub: error: cannot bind {}: {e}",
                args.bind.map_or("127.0.0.1".into(), |ip| ip.to_string())
            );
            return ExitCode::FAILURE;
        }
    };
    let files = if args.files.is_empty() {
        vec![("model.gguf".to_owned(), 256 << 20), ("config.json".to_owned(), 96)]
    } else {
        args.files
    };
    let mut spec = RepoSpec::new(&args.repo);
    for (name, size) in &files {
        spec = if is_text(name) { spec.text(name, *size) } else { spec.lfs(name, *size) };
    }
    if args.token.is_some() {
        spec = spec.gated();
    }
    hub.add_repo(spec);
    println!("fake hub: HF_ENDPOINT={}", hub.endpoint());
    let link = if args.link_rate > 0 { format!(", {} B/s over the link", args.link_rate) } else { String::new() };
    eprintln!("fake hub: CDN {} at {} B/s{link}; repo {} with {:?}", hub.cdn_url(), hub.rate(), args.repo, files);
    loop {
        std::thread::park();
    }
}
