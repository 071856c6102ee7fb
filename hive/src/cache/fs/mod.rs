//! The one door to the cache's files: every path below the cache root is walked from the root a
//! component at a time (`openat` with `O_NOFOLLOW | O_DIRECTORY`), and files are opened with
//! `O_NOFOLLOW | O_NONBLOCK` and checked to be regular before a byte is read or written.
//!
//! Why: the cache is a directory other tools (and other users, on a shared machine) write too. A
//! `refs/main` that is a link to `/etc/passwd`, a `blobs/` that is a link to someone's home, or a
//! FIFO where a ref should be would otherwise be read, written through, or block a thread
//! forever. Here a symlink, FIFO, socket or device where the layout expects a directory or a
//! regular file is refused with an error naming it, and left in place for its owner. The cache
//! root itself may be a link (a user's `HF_HUB_CACHE` on another disk); nothing below it may.
//!
//! The HF layout's one link, `snapshots/<commit>/<file>` → `../../blobs/<etag>`, is only ever
//! read as a link ([`read_link`]) and resolved by the caller inside the repo folder.
//!
//! Durability: [`write_atomic`] (refs, the synced part map, the `.meta` of a published blob)
//! writes a temporary file, `fdatasync`s it, renames it over the name and `fsync`s the directory;
//! [`publish`] does the same for a blob. [`replace`] is the same without the syncs, for what only
//! this boot of the machine trusts (the live part map, its boot record, a `.meta` before the
//! transfer); each sync costs a few ms on a disk, before the first byte of a download.

use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, Read as _};
use std::os::fd::OwnedFd;
use std::path::{Component, Path, PathBuf};

use rustix::fs::{AtFlags, FileType, Mode, OFlags};
use rustix::io::Errno;

use super::{at, CacheError};

mod write;

pub use write::{publish, remove, remove_tree, rename, replace, set_durable, symlink, sync_data, write_atomic};

/// What a name in the cache is (never followed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A directory.
    Dir,
    /// A regular file.
    File,
    /// A symbolic link.
    Link,
    /// A FIFO, socket or device.
    Other,
}

/// A name in a directory: what it is and its size.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The name.
    pub name: String,
    /// What it is.
    pub kind: Kind,
    /// Its size in bytes (`lstat`).
    pub len: u64,
}

/// How to open a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Open {
    /// Read only; a missing file is `None`.
    Read,
    /// Read and write; a missing file is `None`.
    ReadWrite,
    /// Read and append, created when missing.
    Append,
    /// Write, created when missing, never truncated (a lock file).
    Create,
    /// Write, created (truncated when there).
    Truncate,
    /// Write, created; refused when the name exists.
    CreateNew,
}

const DIR: OFlags = OFlags::RDONLY.union(OFlags::DIRECTORY).union(OFlags::NOFOLLOW).union(OFlags::CLOEXEC);

fn kind_of(t: FileType) -> Kind {
    match t {
        FileType::Directory => Kind::Dir,
        FileType::RegularFile => Kind::File,
        FileType::Symlink => Kind::Link,
        _ => Kind::Other,
    }
}

fn describe(t: FileType) -> &'static str {
    match t {
        FileType::Symlink => "a symlink",
        FileType::Fifo => "a FIFO",
        FileType::Socket => "a socket",
        FileType::CharacterDevice | FileType::BlockDevice => "a device",
        FileType::Directory => "a directory",
        FileType::RegularFile => "a file",
        FileType::Unknown => "of an unknown kind",
    }
}

/// The refusal of `path` (of type `found`) where the layout expects `want`.
fn refused(path: &Path, found: FileType, want: &str) -> CacheError {
    let target = match found {
        FileType::Symlink => std::fs::read_link(path).map(|t| format!(" (to `{}`)", t.display())).unwrap_or_default(),
        _ => String::new(),
    };
    at(path)(io::Error::other(format!(
        "is {}{target} where the cache layout expects {want}: refusing to follow or use it (left in place; \
         remove or replace it by hand)",
        describe(found)
    )))
}

/// The refusal for what `name` in `dir` turned out to be, or the OS error as is.
fn explain(dir: &OwnedFd, name: &OsStr, path: &Path, e: Errno, want: &str) -> CacheError {
    match rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) if e == Errno::LOOP || e == Errno::NOTDIR || e == Errno::NXIO || e == Errno::ISDIR => {
            refused(path, FileType::from_raw_mode(st.st_mode), want)
        }
        _ => at(path)(e.into()),
    }
}

/// The components of `path` below `root` (only plain names: no `..`, no absolute part).
fn below<'p>(root: &Path, path: &'p Path) -> Result<Vec<&'p OsStr>, CacheError> {
    let rel = path.strip_prefix(root).map_err(|_| at(path)(io::Error::other("is outside the cache")))?;
    rel.components()
        .map(|c| match c {
            Component::Normal(n) => Ok(n),
            _ => Err(at(path)(io::Error::other("names no plain path inside the cache"))),
        })
        .collect()
}

/// Opens the directory `path` under `root`, every component below `root` without following a
/// link; with `create`, missing directories are made. `None`: a component is missing (and not
/// created).
///
/// # Errors
/// When a component is a symlink, FIFO, device or file, or the OS refuses.
pub fn dir(root: &Path, path: &Path, create: bool) -> Result<Option<OwnedFd>, CacheError> {
    let names = below(root, path)?;
    if create {
        std::fs::create_dir_all(root).map_err(at(root))?;
    }
    let mut fd = match rustix::fs::open(root, DIR.difference(OFlags::NOFOLLOW), Mode::empty()) {
        Ok(fd) => fd,
        Err(Errno::NOENT) => return Ok(None),
        Err(e) => return Err(at(root)(e.into())),
    };
    let mut here = root.to_owned();
    for name in names {
        here.push(name);
        fd = match rustix::fs::openat(&fd, name, DIR, Mode::empty()) {
            Ok(next) => next,
            Err(Errno::NOENT) if create => {
                match rustix::fs::mkdirat(&fd, name, Mode::from_raw_mode(0o755)) {
                    Ok(()) | Err(Errno::EXIST) => {}
                    Err(e) => return Err(at(&here)(e.into())),
                }
                // Not fsynced here: the fsync of what is later put inside (a blob's rename, a
                // ref, a link) commits the journal holding this mkdir too (ext4, xfs), and a
                // directory made for a download that never finished needs no durability.
                rustix::fs::openat(&fd, name, DIR, Mode::empty())
                    .map_err(|e| explain(&fd, name, &here, e, "a directory"))?
            }
            Err(Errno::NOENT) => return Ok(None),
            Err(e) => return Err(explain(&fd, name, &here, e, "a directory")),
        };
    }
    Ok(Some(fd))
}

/// The directory holding `path` (opened as [`dir`] does) and `path`'s last name.
fn parent<'p>(root: &Path, path: &'p Path, create: bool) -> Result<Option<(OwnedFd, &'p OsStr)>, CacheError> {
    let name = path.file_name().ok_or_else(|| at(path)(io::Error::other("names no file")))?;
    let Some(parent) = path.parent() else { return Ok(None) };
    Ok(dir(root, parent, create)?.map(|d| (d, name)))
}

/// Opens the regular file `path` under `root` as `how` says, refusing a symlink, FIFO or device
/// (a FIFO is opened non-blocking, so it is refused without waiting for a writer). `None`: it
/// (or a directory above it) does not exist and `how` does not create it.
///
/// # Errors
/// When refused, or the OS refuses.
pub fn open(root: &Path, path: &Path, how: Open) -> Result<Option<File>, CacheError> {
    let creates = matches!(how, Open::Append | Open::Create | Open::Truncate | Open::CreateNew);
    let Some((d, name)) = parent(root, path, creates)? else { return Ok(None) };
    // Look before opening: a device is never opened at all (opening one can act on it).
    if let Ok(st) = rustix::fs::statat(&d, name, AtFlags::SYMLINK_NOFOLLOW) {
        let found = FileType::from_raw_mode(st.st_mode);
        if found != FileType::RegularFile {
            return Err(refused(path, found, "a regular file"));
        }
    }
    let base = OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NONBLOCK | OFlags::NOCTTY;
    let flags = base
        | match how {
            Open::Read => OFlags::RDONLY,
            Open::ReadWrite => OFlags::RDWR,
            Open::Append => OFlags::RDWR | OFlags::APPEND | OFlags::CREATE,
            Open::Create => OFlags::WRONLY | OFlags::CREATE,
            Open::Truncate => OFlags::WRONLY | OFlags::CREATE | OFlags::TRUNC,
            Open::CreateNew => OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL,
        };
    let fd = match rustix::fs::openat(&d, name, flags, Mode::from_raw_mode(0o644)) {
        Ok(fd) => fd,
        Err(Errno::NOENT) if !creates => return Ok(None),
        Err(e) => return Err(explain(&d, name, path, e, "a regular file")),
    };
    let st = rustix::fs::fstat(&fd).map_err(|e| at(path)(e.into()))?;
    let found = FileType::from_raw_mode(st.st_mode);
    if found != FileType::RegularFile {
        return Err(refused(path, found, "a regular file"));
    }
    // Back to blocking I/O (a regular file ignores the flag; this keeps it honest).
    let keep = rustix::fs::fcntl_getfl(&fd).map_err(|e| at(path)(e.into()))?;
    rustix::fs::fcntl_setfl(&fd, keep.difference(OFlags::NONBLOCK)).map_err(|e| at(path)(e.into()))?;
    Ok(Some(File::from(fd)))
}

/// The contents of the regular file `path`, if it exists and holds at most `max` bytes (refs:
/// 64; `.meta` and part maps: a few KiB). Larger is refused, never read.
///
/// # Errors
/// When refused, too large, or unreadable.
pub fn read(root: &Path, path: &Path, max: u64) -> Result<Option<Vec<u8>>, CacheError> {
    let Some(file) = open(root, path, Open::Read)? else { return Ok(None) };
    let len = file.metadata().map_err(at(path))?.len();
    if len > max {
        return Err(at(path)(io::Error::other(format!("holds {len} bytes, more than the {max} expected: not read"))));
    }
    let mut out = Vec::new();
    file.take(max + 1).read_to_end(&mut out).map_err(at(path))?;
    Ok(Some(out))
}

/// `lstat` of `path` under `root`: `None` when it (or a directory above it) is missing.
///
/// # Errors
/// When a directory above it is refused, or the OS refuses.
pub fn entry(root: &Path, path: &Path) -> Result<Option<Entry>, CacheError> {
    let Some((d, name)) = parent(root, path, false)? else { return Ok(None) };
    stat_in(&d, name, path)
}

fn stat_in(d: &OwnedFd, name: &OsStr, path: &Path) -> Result<Option<Entry>, CacheError> {
    match rustix::fs::statat(d, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => Ok(Some(Entry {
            name: name.to_string_lossy().into_owned(),
            kind: kind_of(FileType::from_raw_mode(st.st_mode)),
            len: u64::try_from(st.st_size).unwrap_or(0),
        })),
        Err(Errno::NOENT) => Ok(None),
        Err(e) => Err(at(path)(e.into())),
    }
}

/// Whether `path` is, itself, of `kind` (never followed; false when anything above is refused).
#[must_use]
pub fn is(root: &Path, path: &Path, kind: Kind) -> bool {
    entry(root, path).ok().flatten().is_some_and(|e| e.kind == kind)
}

/// The names in directory `path` (sorted; `.`/`..` and non-UTF-8 names left out), each `lstat`ed.
/// A missing directory has none.
///
/// # Errors
/// When the directory, or one above it, is refused, or it cannot be read.
pub fn entries(root: &Path, path: &Path) -> Result<Vec<Entry>, CacheError> {
    let Some(d) = dir(root, path, false)? else { return Ok(Vec::new()) };
    let mut out = Vec::new();
    for item in rustix::fs::Dir::read_from(&d).map_err(|e| at(path)(e.into()))? {
        let item = item.map_err(|e| at(path)(e.into()))?;
        let Ok(name) = item.file_name().to_str() else { continue };
        if name == "." || name == ".." {
            continue;
        }
        if let Some(e) = stat_in(&d, OsStr::new(name), &path.join(name))? {
            out.push(e);
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// Files and links under directory `base`, recursively (a link to a directory is listed, never
/// entered); sorted. Unreadable or refused directories are skipped.
#[must_use]
pub fn walk(root: &Path, base: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![base.to_owned()];
    while let Some(d) = stack.pop() {
        for e in entries(root, &d).unwrap_or_default() {
            match e.kind {
                Kind::Dir => stack.push(d.join(&e.name)),
                Kind::File | Kind::Link => out.push(d.join(&e.name)),
                Kind::Other => {}
            }
        }
    }
    out.sort();
    out
}

/// The target of the link `path` (read, never followed). `None` when it is missing or no link.
#[must_use]
pub fn read_link(root: &Path, path: &Path) -> Option<PathBuf> {
    let (d, name) = parent(root, path, false).ok()??;
    let target = rustix::fs::readlinkat(&d, name, Vec::new()).ok()?;
    Some(PathBuf::from(<std::ffi::OsString as std::os::unix::ffi::OsStringExt>::from_vec(target.into_bytes())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn a_linked_directory_is_refused_by_name_and_nothing_is_made_through_it() {
        let (root, outside) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let a = root.path().join("a");
        symlink(outside.path(), &a).unwrap();
        let err = dir(root.path(), &a.join("b/c"), true).unwrap_err().to_string();
        assert!(err.contains(&format!("`{}`", a.display())) && err.contains("is a symlink"), "{err}");
        assert!(err.contains(&outside.path().display().to_string()), "names the target: {err}");
        let err = write_atomic(root.path(), &a.join("f"), b"x").unwrap_err().to_string();
        assert!(err.contains("is a symlink"), "{err}");
        assert_eq!(std::fs::read_dir(outside.path()).unwrap().count(), 0, "nothing written outside");
        assert!(std::fs::symlink_metadata(&a).unwrap().file_type().is_symlink(), "left in place");
        assert!(below(root.path(), Path::new("/etc/passwd")).is_err());
        assert!(dir(root.path(), &root.path().join("../x"), false).is_err(), "no `..`");
    }

    #[test]
    fn files_that_are_links_fifos_or_too_long_are_never_read_and_a_fifo_never_blocks() {
        let root = tempfile::tempdir().unwrap();
        let secret = root.path().join("secret");
        std::fs::write(&secret, "root:x:0:0").unwrap();
        let link = root.path().join("ref");
        symlink(&secret, &link).unwrap();
        let fifo = root.path().join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
        for (path, found) in [(&link, "is a symlink"), (&fifo, "is a FIFO")] {
            for how in [Open::Read, Open::ReadWrite, Open::Append, Open::Create, Open::Truncate] {
                let err = open(root.path(), path, how).unwrap_err().to_string();
                assert!(err.contains(found), "{how:?}: {err}");
            }
            let err = remove(root.path(), path, Kind::File).unwrap_err().to_string();
            assert!(err.contains(found), "{err}");
        }
        assert_eq!(read(root.path(), &secret, 64).unwrap().unwrap(), b"root:x:0:0");
        assert!(read(root.path(), &secret, 4).unwrap_err().to_string().contains("more than the 4 expected"));
        assert!(read(root.path(), &root.path().join("missing"), 64).unwrap().is_none());
        assert_eq!(std::fs::read(&secret).unwrap(), b"root:x:0:0");
        assert!(std::fs::symlink_metadata(&link).is_ok() && std::fs::symlink_metadata(&fifo).is_ok());
    }

    #[test]
    fn names_are_listed_walked_renamed_and_removed_without_following() {
        let (root, outside) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let r = root.path();
        std::fs::write(outside.path().join("keep"), "x").unwrap();
        write_atomic(r, &r.join("d/f"), b"12345").unwrap();
        symlink(outside.path(), r.join("d/link")).unwrap();
        let names: Vec<(String, Kind, u64)> =
            entries(r, &r.join("d")).unwrap().into_iter().map(|e| (e.name, e.kind, e.len)).collect();
        assert_eq!(names[0], ("f".to_owned(), Kind::File, 5));
        assert_eq!((names[1].0.as_str(), names[1].1), ("link", Kind::Link));
        assert_eq!(walk(r, &r.join("d")), vec![r.join("d/f"), r.join("d/link")], "the link is listed, not entered");
        assert_eq!(read_link(r, &r.join("d/link")).unwrap(), outside.path());
        assert!(rename(r, &r.join("d/f"), &r.join("d/link"), true).is_err(), "a file never replaces a link");
        std::fs::write(r.join("d/g"), "g").unwrap();
        assert!(rename(r, &r.join("d/g"), &r.join("d/f"), false).is_err(), "no overwrite unless asked");
        rename(r, &r.join("d/g"), &r.join("e/g"), false).unwrap();
        remove_tree(r, &r.join("d")).unwrap();
        assert!(!r.join("d").exists() && r.join("e/g").exists());
        assert!(outside.path().join("keep").exists(), "a link's target is never removed");
    }
}
