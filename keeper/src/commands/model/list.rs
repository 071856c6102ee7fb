//! `rbee model list`: what the hive's cache holds.

use std::fmt::Write;

use anyhow::Result;
use rbee_protocol::{escape, CachedFile, CachedRepo, ModelListing};

use super::Ctx;
use crate::commands::print_json;
use crate::exit::Exit;
use crate::render::format;

/// List cached models, their files, sizes and revisions, and unfinished downloads.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {}

impl Args {
    pub(crate) async fn execute(self, ctx: &Ctx) -> Result<Exit> {
        ctx.ensure_hive().await?;
        let listing = ctx.client.models().await?;
        if ctx.json() {
            return print_json(&listing);
        }
        print!("{}", table(&listing));
        Ok(Exit::Ok)
    }
}

/// The listing as text: a line per repo, an indented line per file.
pub(crate) fn table(listing: &ModelListing) -> String {
    if listing.repos.is_empty() {
        return format!("no models cached in {}\n", listing.cache_dir);
    }
    // Names come from the cache, which any tool writes: escape what could hide or reorder text.
    let width = listing.repos.iter().flat_map(|r| &r.files).map(|f| escape(&f.file).chars().count()).max().unwrap_or(0);
    let mut out = String::new();
    for repo in &listing.repos {
        writeln!(out, "📦 {}  {}", escape(&repo.repo), format::bytes(repo.size)).ok();
        for file in &repo.files {
            let state = state(repo, file);
            writeln!(out, "   {:<width$}  {:>10}  {}", escape(&file.file), format::bytes(file.size), escape(&state))
                .ok();
        }
    }
    writeln!(out, "cache: {}", escape(&listing.cache_dir)).ok();
    out
}

/// `main (0123abc)` for finished files, `partial 47.0%` for unfinished ones.
fn state(repo: &CachedRepo, file: &CachedFile) -> String {
    if file.partial {
        return match file.partial_percent {
            Some(pct) => format!("partial {pct:.1}%"),
            None => "partial".to_owned(),
        };
    }
    let label = |commit: &String| {
        let short: String = commit.chars().take(7).collect();
        let names: Vec<_> = repo.refs.iter().filter(|(_, c)| *c == commit).map(|(n, _)| n.as_str()).collect();
        if names.is_empty() {
            short
        } else {
            format!("{} ({short})", names.join(", "))
        }
    };
    file.revisions.iter().map(label).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(name: &str, size: u64, partial: Option<f64>) -> CachedFile {
        let revisions = if partial.is_some() { vec![] } else { vec!["0123456789abcdef".into()] };
        CachedFile { file: name.into(), size, revisions, partial_percent: partial, partial: partial.is_some() }
    }

    #[test]
    fn table_shows_refs_and_partials() {
        let repo = CachedRepo {
            repo: "org/m".into(),
            size: 3 << 20,
            refs: [("main".to_owned(), "0123456789abcdef".to_owned())].into(),
            files: vec![file("model.gguf", 2 << 20, None), file("b.gguf", 1 << 20, Some(47.0))],
        };
        let listing = ModelListing { cache_dir: "/c".into(), repos: vec![repo] };
        let text = table(&listing);
        assert!(text.starts_with("📦 org/m  3.0 MiB\n"), "{text}");
        assert!(text.contains("   model.gguf     2.0 MiB  main (0123456)\n"), "{text}");
        assert!(text.contains("   b.gguf         1.0 MiB  partial 47.0%\n"), "{text}");
        assert!(text.ends_with("cache: /c\n"));
        assert_eq!(table(&ModelListing { cache_dir: "/c".into(), repos: vec![] }), "no models cached in /c\n");
    }
}
