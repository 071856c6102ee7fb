//! Generated repositories: specs, deterministic file bytes, and their sha256 / git-blob ids.
//!
//! A file's bytes are a pure function of `(repo, commit, file name, offset)`: binary (LFS)
//! files are a splitmix64 stream over 8-byte words, so any range of a 2 GiB file is produced
//! at several GB/s without holding it in memory; small non-LFS files are printable text (JSON
//! when the name ends in `.json`) so a human can `cat` them.

use std::sync::{Arc, OnceLock};

use sha2::{Digest, Sha256};

use super::sha1::Sha1;

/// Chunk size used when streaming generated content.
pub(crate) const CHUNK: usize = 1 << 20;

/// One file of a generated repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileSpec {
    /// Path inside the repo (may contain `/`).
    pub name: String,
    /// Size in bytes.
    pub size: u64,
    /// Stored in LFS: resolved with a 302 to the CDN and an `X-Linked-Etag` sha256.
    pub lfs: bool,
}

/// A repository at one commit, as `FakeHub::add_repo` takes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepoSpec {
    /// `org/name`.
    pub id: String,
    /// 40-hex commit id.
    pub commit: String,
    /// Branch / tag names pointing at `commit`.
    pub refs: Vec<(String, String)>,
    /// The files at `commit`.
    pub files: Vec<FileSpec>,
    /// Needs `Authorization: Bearer <token>`.
    pub gated: bool,
}

impl RepoSpec {
    /// An empty repo with a commit derived from `id` and a `main` ref to it.
    pub fn new(id: &str) -> Self {
        let commit = hex::encode(&Sha256::digest(format!("commit:{id}"))[..20]);
        Self { id: id.to_owned(), refs: vec![("main".into(), commit.clone())], commit, files: vec![], gated: false }
    }

    /// `model.gguf` (LFS, `model_size` bytes) plus a small non-LFS `config.json`.
    pub fn demo(id: &str, model_size: u64) -> Self {
        Self::new(id).lfs("model.gguf", model_size).text("config.json", 96)
    }

    /// Add an LFS file.
    #[must_use]
    pub fn lfs(mut self, name: &str, size: u64) -> Self {
        self.files.push(FileSpec { name: name.to_owned(), size, lfs: true });
        self
    }

    /// Add a non-LFS (served directly by the hub) file.
    #[must_use]
    pub fn text(mut self, name: &str, size: u64) -> Self {
        self.files.push(FileSpec { name: name.to_owned(), size, lfs: false });
        self
    }

    /// Use another commit id; every ref that pointed at the old one follows.
    #[must_use]
    pub fn commit(mut self, commit: &str) -> Self {
        for (_, c) in &mut self.refs {
            if *c == self.commit {
                *c = commit.to_owned();
            }
        }
        self.commit = commit.to_owned();
        self
    }

    /// Add a branch or tag name pointing at this commit.
    #[must_use]
    pub fn tag(mut self, name: &str) -> Self {
        self.refs.push((name.to_owned(), self.commit.clone()));
        self
    }

    /// Require a token.
    #[must_use]
    pub fn gated(mut self) -> Self {
        self.gated = true;
        self
    }
}

/// A generated file: its identity plus lazily computed digests.
#[derive(Debug)]
pub(crate) struct FileData {
    pub(crate) repo: String,
    pub(crate) commit: String,
    pub(crate) name: String,
    pub(crate) size: u64,
    pub(crate) lfs: bool,
    seed: u64,
    sha256: OnceLock<String>,
    git_sha1: OnceLock<String>,
}

impl FileData {
    pub(crate) fn new(repo: &str, commit: &str, spec: &FileSpec) -> Arc<Self> {
        let digest = Sha256::digest(format!("{repo}\0{commit}\0{}", spec.name));
        let seed = u64::from_le_bytes(digest[..8].try_into().expect("8 bytes"));
        Arc::new(Self {
            repo: repo.to_owned(),
            commit: commit.to_owned(),
            name: spec.name.clone(),
            size: spec.size,
            lfs: spec.lfs,
            seed,
            sha256: OnceLock::new(),
            git_sha1: OnceLock::new(),
        })
    }

    /// Fill `buf` with the bytes at `offset..offset + buf.len()`.
    pub(crate) fn fill(&self, offset: u64, buf: &mut [u8]) {
        if self.lfs {
            fill_binary(self.seed, offset, buf);
        } else {
            self.fill_text(offset, buf);
        }
    }

    /// The whole file (small files only).
    pub(crate) fn bytes(&self) -> Vec<u8> {
        let mut buf = vec![0; usize::try_from(self.size).expect("file fits in memory")];
        self.fill(0, &mut buf);
        buf
    }

    /// Hex sha256 of the content (computed once, streaming).
    pub(crate) fn sha256(&self) -> &str {
        self.sha256.get_or_init(|| {
            let mut h = Sha256::new();
            self.for_each_chunk(|c| h.update(c));
            hex::encode(h.finalize())
        })
    }

    /// The sha256 if already computed.
    pub(crate) fn sha256_if_known(&self) -> Option<&str> {
        self.sha256.get().map(String::as_str)
    }

    /// Git blob id (`sha1("blob <size>\0" + content)`), huggingface.co's ETag of non-LFS files.
    pub(crate) fn git_sha1(&self) -> &str {
        self.git_sha1.get_or_init(|| {
            let mut h = Sha1::new();
            h.update(format!("blob {}\0", self.size).as_bytes());
            self.for_each_chunk(|c| h.update(c));
            h.hex()
        })
    }

    /// The ETag value (without quotes) huggingface.co gives this file.
    pub(crate) fn etag(&self) -> &str {
        if self.lfs {
            self.sha256()
        } else {
            self.git_sha1()
        }
    }

    fn for_each_chunk(&self, mut f: impl FnMut(&[u8])) {
        let mut buf = vec![0; CHUNK];
        let mut off = 0;
        while off < self.size {
            let n = usize::try_from((self.size - off).min(CHUNK as u64)).expect("chunk");
            self.fill(off, &mut buf[..n]);
            f(&buf[..n]);
            off += n as u64;
        }
    }

    fn fill_text(&self, offset: u64, buf: &mut [u8]) {
        const PREFIX: &[u8] = b"{\"fake\":\"";
        const SUFFIX: &[u8] = b"\"}\n";
        let json = self.name.ends_with(".json") && self.size >= (PREFIX.len() + SUFFIX.len()) as u64;
        let tail = self.size.saturating_sub(SUFFIX.len() as u64);
        for (i, b) in buf.iter_mut().enumerate() {
            let p = offset + i as u64;
            *b = if json && p < PREFIX.len() as u64 {
                PREFIX[p as usize]
            } else if json && p >= tail {
                SUFFIX[(p - tail) as usize]
            } else if !json && p % 64 == 63 {
                b'\n'
            } else {
                b'a' + (splitmix(self.seed, p) % 26) as u8
            };
        }
    }
}

fn splitmix(seed: u64, i: u64) -> u64 {
    let mut z = seed.wrapping_add(i.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Word `i` of the stream is `splitmix(seed, i)` little-endian; byte `p` is byte `p % 8` of word `p / 8`.
fn fill_binary(seed: u64, offset: u64, buf: &mut [u8]) {
    let head = ((8 - offset % 8) % 8).min(buf.len() as u64) as usize;
    let (first, rest) = buf.split_at_mut(head);
    if head > 0 {
        let word = splitmix(seed, offset / 8).to_le_bytes();
        let start = (offset % 8) as usize;
        first.copy_from_slice(&word[start..start + head]);
    }
    let mut index = (offset + head as u64) / 8;
    let mut words = rest.chunks_exact_mut(8);
    for w in &mut words {
        w.copy_from_slice(&splitmix(seed, index).to_le_bytes());
        index += 1;
    }
    let tail = words.into_remainder();
    if !tail.is_empty() {
        let word = splitmix(seed, index).to_le_bytes();
        let n = tail.len();
        tail.copy_from_slice(&word[..n]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_agree_with_whole_file() {
        for lfs in [true, false] {
            let spec = FileSpec { name: "a/config.json".into(), size: 1000, lfs };
            let f = FileData::new("o/r", "c", &spec);
            let all = f.bytes();
            for (start, len) in [(0, 1), (3, 17), (8, 8), (999, 1), (5, 995)] {
                let mut part = vec![0; len];
                f.fill(start, &mut part);
                assert_eq!(part, all[start as usize..start as usize + len]);
            }
        }
    }

    #[test]
    fn json_text_is_json() {
        let f = FileData::new("o/r", "c", &FileSpec { name: "config.json".into(), size: 96, lfs: false });
        let v: serde_json::Value = serde_json::from_slice(&f.bytes()).expect("valid json");
        assert!(v["fake"].is_string());
    }
}
