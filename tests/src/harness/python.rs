//! The Python peer: `<workspace>/.venv` with huggingface_hub (`just py` creates it), and what the
//! tests ask of it more than once.

use std::path::{Path, PathBuf};

/// `<workspace>/.venv/bin/python`, which `just py` creates with huggingface_hub.
#[track_caller]
pub fn python() -> PathBuf {
    let py = Path::new(env!("CARGO_MANIFEST_DIR")).join("../.venv/bin/python");
    assert!(py.is_file(), "{} is missing: run `just py` (a venv with huggingface_hub) first", py.display());
    py
}

/// huggingface_hub's `scan_cache_dir` on `cache`: its warnings (empty = a consistent cache).
#[track_caller]
pub fn hf_scan_warnings(cache: &Path) -> Vec<String> {
    let script = "import sys\nfrom huggingface_hub import scan_cache_dir\ninfo = scan_cache_dir(sys.argv[1])\nfor w in info.warnings: print(w)";
    let out = std::process::Command::new(python()).args(["-c", script]).arg(cache).output().expect("python");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).lines().map(str::to_owned).collect()
}
