//! ARCHITECTURE.md's "never imports" column, checked: every `use` line of a module (its file, or
//! every file under its folder) is resolved to a path from its crate's root (`crate::`, `super::`,
//! `self::`, or another crate's name), and none may start with a path the column forbids.

use std::path::{Path, PathBuf};

/// The repository's root.
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The rows of the "never imports" table: (source path, forbidden paths).
fn rows(doc: &str) -> Vec<(String, Vec<String>)> {
    let table = doc.split("## Layers: what each module never imports").nth(1).expect("the layers section");
    let ticked = |cell: &str| -> Vec<String> { cell.split('`').skip(1).step_by(2).map(str::to_owned).collect() };
    table
        .lines()
        .skip_while(|l| !l.starts_with('|'))
        .take_while(|l| l.starts_with('|'))
        .skip(2)
        .map(|l| {
            let cells: Vec<&str> = l.split('|').map(str::trim).collect();
            let file = ticked(cells[1]).into_iter().next().expect("a file in the first column");
            (file, ticked(cells[cells.len() - 2]))
        })
        .collect()
}

/// The module path of a source file (`hive/src/download/wire.rs` → `download::wire`).
fn module_of(file: &Path) -> Vec<String> {
    let rel: Vec<String> = file.iter().map(|c| c.to_string_lossy().into_owned()).collect();
    let src = rel.iter().position(|c| c == "src").expect("under src/");
    let mut path: Vec<String> = rel[src + 1..].to_vec();
    let last = path.pop().expect("a file");
    if !matches!(last.as_str(), "mod.rs" | "lib.rs" | "main.rs") {
        path.push(last.trim_end_matches(".rs").to_owned());
    }
    path
}

/// Every `use` path of `text` before its tests (braces expanded one level), resolved against
/// module `here`.
fn uses(text: &str, here: &[String], children: &[String]) -> Vec<String> {
    let code = text.split("#[cfg(test)]").next().unwrap_or(text);
    let mut out = Vec::new();
    let mut stmt = String::new();
    for line in code.lines().map(str::trim) {
        if stmt.is_empty()
            && !(line.starts_with("use ") || line.starts_with("pub use ") || line.starts_with("pub(crate) use "))
        {
            continue;
        }
        stmt.push_str(line);
        if !line.ends_with(';') {
            continue;
        }
        let body = stmt.split_once("use ").map(|(_, b)| b.trim_end_matches(';').to_owned()).unwrap_or_default();
        stmt.clear();
        let (prefix, items) = match body.split_once('{') {
            Some((p, rest)) => {
                (p.to_owned(), rest.trim_end_matches('}').split(',').map(str::trim).map(str::to_owned).collect())
            }
            None => (String::new(), vec![body]),
        };
        for item in items.iter().filter(|i| !i.is_empty()) {
            out.push(resolve(&format!("{prefix}{item}"), here, children));
        }
    }
    out
}

/// `path` from its crate's root, as seen from module `here`; another crate's path as it is.
fn resolve(path: &str, here: &[String], children: &[String]) -> String {
    let path = path.split(" as ").next().unwrap_or(path);
    let mut segs = path.split("::").peekable();
    let mut base: Vec<String> = match segs.peek().copied() {
        Some("crate") => {
            segs.next();
            Vec::new()
        }
        Some("super" | "self") => here.to_vec(),
        Some(child) if children.iter().any(|c| c == child) => here.to_vec(),
        _ => return path.to_owned(),
    };
    for s in segs {
        match s {
            "super" => {
                base.pop();
            }
            "self" => {}
            s => base.push(s.to_owned()),
        }
    }
    base.join("::")
}

/// The child modules a file declares (`mod x;`).
fn children_of(file: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(file).unwrap_or_default();
    text.lines()
        .map(str::trim)
        .filter_map(|l| {
            l.strip_prefix("pub mod ").or_else(|| l.strip_prefix("mod ")).or_else(|| l.strip_prefix("pub(crate) mod "))
        })
        .filter_map(|l| l.strip_suffix(';'))
        .map(str::to_owned)
        .collect()
}

fn sources(path: &Path) -> Vec<PathBuf> {
    if path.is_file() {
        return vec![path.to_owned()];
    }
    let mut files = Vec::new();
    for entry in std::fs::read_dir(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())) {
        files.extend(sources(&entry.expect("entry").path()));
    }
    files
}

#[test]
fn the_resolver_reads_paths_as_rust_does() {
    let here = |m: &str| m.split("::").map(str::to_owned).collect::<Vec<_>>();
    let file = here("download::transfer::stream");
    assert_eq!(resolve("super::body::Sink", &file, &[]), "download::transfer::body::Sink");
    assert_eq!(resolve("crate::download::wire::header", &file, &[]), "download::wire::header");
    let folder = here("download::transfer::parts");
    assert_eq!(resolve("super::meter::Meter", &folder, &[]), "download::transfer::meter::Meter");
    let plan = here("download::transfer::parts::plan");
    assert_eq!(resolve("super::super::sparse::BLOCK", &plan, &[]), "download::transfer::sparse::BLOCK");
    assert_eq!(resolve("sha2::Digest", &plan, &[]), "sha2::Digest");
    let got = uses("use super::{hash::Hashing, plan::Shared};\nuse std::sync::Arc;\n", &plan, &[]);
    assert_eq!(
        got,
        ["download::transfer::parts::hash::Hashing", "download::transfer::parts::plan::Shared", "std::sync::Arc"]
    );
    assert_eq!(resolve("widen::Widen", &folder, &["widen".to_owned()]), "download::transfer::parts::widen::Widen");
}

#[test]
fn no_module_imports_what_architecture_md_says_it_never_imports() {
    let doc = std::fs::read_to_string(root().join("ARCHITECTURE.md")).expect("ARCHITECTURE.md");
    let rows = rows(&doc);
    assert!(rows.len() >= 10, "the layers table has {} rows", rows.len());
    let mut broken = Vec::new();
    for (path, never) in &rows {
        assert!(!never.is_empty(), "{path}: an empty never-imports cell");
        let files = sources(&root().join(path.trim_end_matches('/')));
        for file in files.iter().filter(|f| f.extension().is_some_and(|e| e == "rs")) {
            let text = std::fs::read_to_string(file).expect("source");
            let here = module_of(file);
            for used in uses(&text, &here, &children_of(file)) {
                for bad in never.iter().filter(|b| used == **b || used.starts_with(&format!("{b}::"))) {
                    broken.push(format!("{}: `{used}` (never `{bad}`)", file.display()));
                }
            }
        }
    }
    assert!(broken.is_empty(), "imports ARCHITECTURE.md forbids:\n{}", broken.join("\n"));
}
