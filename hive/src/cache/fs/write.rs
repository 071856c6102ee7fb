//! The writing half of [`super`]: removals, renames, durable publishing and atomic writes, every
//! one inside directories opened without following a link.

use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, Write as _};
use std::os::fd::OwnedFd;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use rustix::fs::{AtFlags, FileType, RenameFlags};
use rustix::io::Errno;

use super::{entries, open, parent, refused, stat_in, Kind, Open};
use crate::cache::{at, CacheError};

/// Whether to `fsync` at all (always, but for a benchmark's `--test-no-fsync`).
static DURABLE: AtomicBool = AtomicBool::new(true);

/// Benchmarks only: `false` skips every `fsync`/`fdatasync` below, to measure their cost.
pub fn set_durable(on: bool) {
    DURABLE.store(on, Ordering::Relaxed);
}

/// `fdatasync` of a file (what a publish, a ref, a map or a record waits for).
///
/// # Errors
/// When the OS refuses.
pub fn sync_data(file: &File) -> io::Result<()> {
    if DURABLE.load(Ordering::Relaxed) {
        file.sync_data()
    } else {
        Ok(())
    }
}

/// `fsync` of a directory, making the names in it durable.
fn sync_dir(dir: &OwnedFd, path: &Path) -> Result<(), CacheError> {
    if DURABLE.load(Ordering::Relaxed) {
        rustix::fs::fsync(dir).map_err(|e| at(path)(e.into()))?;
    }
    Ok(())
}

/// Removes the name `path` if it is of `kind` (a file, or a link); anything else is refused and
/// left in place. Returns whether something was removed.
///
/// # Errors
/// When refused, or the OS refuses.
pub fn remove(root: &Path, path: &Path, kind: Kind) -> Result<bool, CacheError> {
    let Some((d, name)) = parent(root, path, false)? else { return Ok(false) };
    let Some(found) = stat_in(&d, name, path)? else { return Ok(false) };
    if found.kind != kind {
        let st = rustix::fs::statat(&d, name, AtFlags::SYMLINK_NOFOLLOW).map_err(|e| at(path)(e.into()))?;
        let want = if kind == Kind::Link { "a link" } else { "a regular file" };
        return Err(refused(path, FileType::from_raw_mode(st.st_mode), want));
    }
    match rustix::fs::unlinkat(&d, name, AtFlags::empty()) {
        Ok(()) => Ok(true),
        Err(Errno::NOENT) => Ok(false),
        Err(e) => Err(at(path)(e.into())),
    }
}

/// Removes directory `path` and everything in it; links inside are removed as links, never
/// followed. A missing directory is fine.
///
/// # Errors
/// When `path` (or one above it) is refused, or something cannot be removed.
pub fn remove_tree(root: &Path, path: &Path) -> Result<(), CacheError> {
    for e in entries(root, path)? {
        let p = path.join(&e.name);
        match e.kind {
            Kind::Dir => remove_tree(root, &p)?,
            kind => {
                remove(root, &p, kind)?;
            }
        }
    }
    let Some((d, name)) = parent(root, path, false)? else { return Ok(()) };
    match rustix::fs::unlinkat(&d, name, AtFlags::REMOVEDIR) {
        Ok(()) | Err(Errno::NOENT) => Ok(()),
        Err(e) => Err(at(path)(e.into())),
    }
}

/// Renames `from` to `to` (both under `root`; `to`'s directory made when missing), then
/// `fsync`s `to`'s directory. With `replace` false, an existing `to` is an error
/// (`AlreadyExists`), never overwritten.
///
/// # Errors
/// When a directory is refused, or the OS refuses.
pub fn rename(root: &Path, from: &Path, to: &Path, replace: bool) -> Result<(), CacheError> {
    rename_synced(root, from, to, replace, true)
}

fn rename_synced(root: &Path, from: &Path, to: &Path, replace: bool, sync: bool) -> Result<(), CacheError> {
    let (fd, fname) = parent(root, from, false)?.ok_or_else(|| at(from)(io::ErrorKind::NotFound.into()))?;
    let (td, tname) = parent(root, to, true)?.ok_or_else(|| at(to)(io::ErrorKind::NotFound.into()))?;
    // Replacing is for a name of the same kind (a file over a file, a link over a link): a link,
    // FIFO or directory where the layout expects the other kind is refused and left in place.
    if let (Ok(src), Ok(dst)) = (
        rustix::fs::statat(&fd, fname, AtFlags::SYMLINK_NOFOLLOW),
        rustix::fs::statat(&td, tname, AtFlags::SYMLINK_NOFOLLOW),
    ) {
        let (src, dst) = (FileType::from_raw_mode(src.st_mode), FileType::from_raw_mode(dst.st_mode));
        if replace && src != dst {
            let want = if src == FileType::Symlink { "a link" } else { "a regular file" };
            return Err(refused(to, dst, want));
        }
    }
    let flags = if replace { RenameFlags::empty() } else { RenameFlags::NOREPLACE };
    rustix::fs::renameat_with(&fd, fname, &td, tname, flags).map_err(|e| at(to)(e.into()))?;
    if sync {
        sync_dir(&td, to)?;
    }
    Ok(())
}

/// Makes what was written to `from` durable, then renames it to `to` and `fsync`s `to`'s
/// directory: after a power cut, `to` is either absent or whole. (Publishing a blob.)
///
/// # Errors
/// When `from` is refused or missing, or the OS refuses.
pub fn publish(root: &Path, from: &Path, to: &Path) -> Result<(), CacheError> {
    let file = open(root, from, Open::Read)?.ok_or_else(|| at(from)(io::ErrorKind::NotFound.into()))?;
    sync_data(&file).map_err(at(from))?;
    drop(file);
    rename(root, from, to, true)
}

/// Writes `bytes` as `path` atomically and durably: a temporary file beside it, `fdatasync`,
/// rename over `path`, `fsync` of the directory.
///
/// # Errors
/// When a directory is refused, or the OS refuses.
pub fn write_atomic(root: &Path, path: &Path, bytes: &[u8]) -> Result<(), CacheError> {
    write_then_rename(root, path, bytes, true)
}

/// Writes `bytes` as `path` atomically (a temporary file renamed over it), without making it
/// durable: what a reader sees is whole, but a power cut may lose it.
///
/// # Errors
/// When a directory is refused, or the OS refuses.
pub fn replace(root: &Path, path: &Path, bytes: &[u8]) -> Result<(), CacheError> {
    write_then_rename(root, path, bytes, false)
}

fn write_then_rename(root: &Path, path: &Path, bytes: &[u8], sync: bool) -> Result<(), CacheError> {
    let name = path.file_name().map(OsStr::to_string_lossy).unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.tmp{}", std::process::id()));
    let mut file = open(root, &tmp, Open::Truncate)?.ok_or_else(|| at(&tmp)(io::ErrorKind::NotFound.into()))?;
    file.write_all(bytes).map_err(at(&tmp))?;
    if sync {
        sync_data(&file).map_err(at(&tmp))?;
    }
    drop(file);
    rename_synced(root, &tmp, path, true, sync)
}

/// Creates (or replaces) the link `path` → `target` atomically: a temporary link beside it,
/// renamed over it, the directory `fsync`ed.
///
/// # Errors
/// When a directory is refused, or the OS refuses.
pub fn symlink(root: &Path, target: &Path, path: &Path) -> Result<(), CacheError> {
    let name = path.file_name().map(OsStr::to_string_lossy).unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.tmp{}", std::process::id()));
    let (d, tname) = parent(root, &tmp, true)?.ok_or_else(|| at(&tmp)(io::ErrorKind::NotFound.into()))?;
    match rustix::fs::unlinkat(&d, tname, AtFlags::empty()) {
        Ok(()) | Err(Errno::NOENT) => {}
        Err(e) => return Err(at(&tmp)(e.into())),
    }
    rustix::fs::symlinkat(target, &d, tname).map_err(|e| at(&tmp)(e.into()))?;
    rename(root, &tmp, path, true)
}
