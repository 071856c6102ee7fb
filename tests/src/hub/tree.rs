//! `GET /api/models/{org}/{name}/tree/{revision}[/{dir}][?recursive=true]`: the listing
//! `huggingface_hub.snapshot_download` uses to find a revision's files, in huggingface.co's form:
//! `[{"type":"file","oid":<git blob id>,"size":N,"path":"a/b.json"},
//!   {"type":"file",…,"lfs":{"oid":<sha256>,"size":N,"pointerSize":P}}, {"type":"directory",…}]`.

use std::collections::BTreeSet;
use std::sync::Arc;

use serde_json::{json, Value};

use super::content::FileData;
use super::sha1::Sha1;

/// Git blob id of `content`.
fn git_blob_id(content: &[u8]) -> String {
    let mut h = Sha1::new();
    h.update(format!("blob {}\0", content.len()).as_bytes());
    h.update(content);
    h.hex()
}

fn file_entry(f: &FileData) -> Value {
    if !f.lfs {
        return json!({ "type": "file", "oid": f.git_sha1(), "size": f.size, "path": f.name });
    }
    let pointer = format!("version https://git-lfs.github.com/spec/v1\noid sha256:{}\nsize {}\n", f.sha256(), f.size);
    let lfs = json!({ "oid": f.sha256(), "size": f.size, "pointerSize": pointer.len() });
    json!({ "type": "file", "oid": git_blob_id(pointer.as_bytes()), "size": f.size, "path": f.name, "lfs": lfs })
}

/// The entries below `dir` ("" for the root): direct children, or everything when `recursive`.
pub(crate) fn listing(files: &[Arc<FileData>], dir: &str, recursive: bool) -> Value {
    let prefix = if dir.is_empty() { String::new() } else { format!("{}/", dir.trim_matches('/')) };
    let mut dirs = BTreeSet::new();
    let mut entries = Vec::new();
    for f in files {
        let Some(rel) = f.name.strip_prefix(&prefix) else { continue };
        let parts: Vec<&str> = rel.split('/').collect();
        let depth = if recursive { parts.len() - 1 } else { 1.min(parts.len() - 1) };
        for i in 1..=depth {
            dirs.insert(format!("{prefix}{}", parts[..i].join("/")));
        }
        if recursive || parts.len() == 1 {
            entries.push(file_entry(f));
        }
    }
    let dirs = dirs
        .into_iter()
        .map(|d| json!({ "type": "directory", "oid": git_blob_id(d.as_bytes()), "size": 0, "path": d }));
    Value::Array(dirs.chain(entries).collect())
}
