//! Crash-safe writes of files and whole directories.
//!
//! A leaf module (it imports only [`crate::error`]): every other module that writes a file the
//! user keeps (model directories, checkpoints, tables, reports) goes through it.
//!
//! **Files** ([`write_file_atomic`]): the bytes go to a hidden sibling
//! `.NAME.tmp-PID-N`, are synced to disk, and the sibling is renamed over `NAME`; the parent
//! directory is synced after the rename. A reader sees the old file or the new one.
//!
//! **Directories** ([`write_dir_atomic`]): every file is written and synced in a hidden sibling
//! `.NAME.tmp-PID-N`, which then takes the place of `NAME`:
//! - on Linux with one `renameat2(RENAME_EXCHANGE)`, so that at every instant `NAME` is either
//!   the whole old directory or the whole new one, even if the process is killed with
//!   `SIGKILL` between any two instructions;
//! - elsewhere (or on a file system without the exchange) with two renames (`NAME` →
//!   `.NAME.old-PID-N`, then the new one → `NAME`); if the process dies between them,
//!   [`recover_dir`] (run by every save and load) moves the old directory back.
//!
//! Leftovers of a killed save (`.NAME.tmp-*`, `.NAME.old-*` of a process that no longer runs)
//! are removed by the next save or load of the same directory ([`recover_dir`]).

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::{Result, SiameseError};

/// Distinguishes the temporary names of concurrent writes within one process.
static NONCE: AtomicU64 = AtomicU64::new(0);

/// `(parent, name)` of `path`, the parent being `.` for a bare name.
fn split(path: &Path, what: &str) -> Result<(PathBuf, String)> {
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .ok_or_else(|| SiameseError::config(what, format!("{} has no name", path.display())))?
        .to_string_lossy()
        .into_owned();
    Ok((parent, name))
}

/// A fresh hidden sibling name: `.NAME.KIND-PID-N`.
fn sibling(parent: &Path, name: &str, kind: &str) -> PathBuf {
    let n = NONCE.fetch_add(1, Ordering::Relaxed);
    parent.join(format!(".{name}.{kind}-{}-{n}", std::process::id()))
}

/// Syncs a directory's entries to disk (a no-op where directories cannot be opened).
fn sync_dir(dir: &Path) -> Result<()> {
    #[cfg(unix)]
    {
        let f = fs::File::open(dir).map_err(|e| SiameseError::io(dir, e))?;
        f.sync_all().map_err(|e| SiameseError::io(dir, e))?;
    }
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

/// Writes `bytes` to `path` and syncs it.
fn write_synced(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let mut f = fs::File::create(path).map_err(|e| SiameseError::io(path, e))?;
    f.write_all(bytes).map_err(|e| SiameseError::io(path, e))?;
    f.sync_all().map_err(|e| SiameseError::io(path, e))
}

/// Writes one file atomically: a synced temporary sibling renamed over `path`, then the
/// parent directory synced.
pub fn write_file_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let (parent, name) = split(path, "output")?;
    let tmp = sibling(&parent, &name, "tmp");
    let result = write_synced(&tmp, bytes)
        .and_then(|()| fs::rename(&tmp, path).map_err(|e| SiameseError::io(path, e)))
        .and_then(|()| sync_dir(&parent));
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Writes `files` (name, bytes) as the directory `dir`, atomically replacing any previous
/// one (see the module docs for the guarantee).
pub fn write_dir_atomic(dir: &Path, files: &[(&str, Vec<u8>)]) -> Result<()> {
    let (parent, name) = split(dir, "model directory")?;
    fs::create_dir_all(&parent).map_err(|e| SiameseError::io(&parent, e))?;
    recover_dir(dir);
    if dir.exists() && !dir.is_dir() {
        return Err(SiameseError::config(
            "model directory",
            format!("{} exists and is not a directory", dir.display()),
        ));
    }
    let tmp = sibling(&parent, &name, "tmp");
    fs::create_dir(&tmp).map_err(|e| SiameseError::io(&tmp, e))?;
    let result = (|| {
        for (file, bytes) in files {
            if file.contains(['/', '\\']) || *file == ".." || file.is_empty() {
                return Err(SiameseError::config(
                    "model directory",
                    format!("`{file}` is not a plain file name"),
                ));
            }
            write_synced(&tmp.join(file), bytes)?;
        }
        sync_dir(&tmp)?;
        replace_dir(&tmp, dir, &parent, &name)
    })();
    if result.is_err() {
        let _ = fs::remove_dir_all(&tmp);
    }
    result
}

/// Puts the complete directory `new` in the place of `dir`, then removes the previous one.
fn replace_dir(new: &Path, dir: &Path, parent: &Path, name: &str) -> Result<()> {
    if !dir.exists() {
        fs::rename(new, dir).map_err(|e| SiameseError::io(dir, e))?;
        return sync_dir(parent);
    }
    if exchange(new, dir) {
        // `new` now holds the previous directory.
        sync_dir(parent)?;
        let _ = fs::remove_dir_all(new);
        return Ok(());
    }
    let old = sibling(parent, name, "old");
    fs::rename(dir, &old).map_err(|e| SiameseError::io(dir, e))?;
    if let Err(e) = fs::rename(new, dir) {
        // Put the previous directory back before reporting.
        let _ = fs::rename(&old, dir);
        return Err(SiameseError::io(dir, e));
    }
    sync_dir(parent)?;
    let _ = fs::remove_dir_all(&old);
    Ok(())
}

/// Swaps two paths in one atomic step; `false` where the platform or file system cannot.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn exchange(a: &Path, b: &Path) -> bool {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    let (Ok(ca), Ok(cb)) = (
        CString::new(a.as_os_str().as_bytes()),
        CString::new(b.as_os_str().as_bytes()),
    ) else {
        return false;
    };
    // SAFETY: both arguments are valid NUL-terminated paths relative to the working directory.
    let rc = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            ca.as_ptr(),
            libc::AT_FDCWD,
            cb.as_ptr(),
            libc::RENAME_EXCHANGE,
        )
    };
    rc == 0
}

/// Swaps two paths in one atomic step; `false` where the platform or file system cannot.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn exchange(_a: &Path, _b: &Path) -> bool {
    false
}

/// Whether the process `pid` may still be running (its leftovers must then be kept).
fn alive(pid: u32) -> bool {
    if pid == std::process::id() {
        return true;
    }
    #[cfg(unix)]
    {
        let Ok(pid) = libc::pid_t::try_from(pid) else {
            return false;
        };
        // SAFETY: signal 0 only checks whether the process exists.
        let rc = unsafe { libc::kill(pid, 0) };
        rc == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
    }
    #[cfg(not(unix))]
    {
        let _ = pid;
        true
    }
}

/// Leftovers of earlier saves of `dir` by processes that no longer run: `(path, kind)` with
/// kind `tmp` or `old`.
pub fn leftovers(dir: &Path) -> Vec<(PathBuf, &'static str)> {
    let Ok((parent, name)) = split(dir, "model directory") else {
        return Vec::new();
    };
    let Ok(entries) = fs::read_dir(&parent) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for entry in entries.flatten() {
        let file = entry.file_name().to_string_lossy().into_owned();
        for kind in ["tmp", "old"] {
            let prefix = format!(".{name}.{kind}-");
            let Some(rest) = file.strip_prefix(&prefix) else {
                continue;
            };
            let pid = rest.split('-').next().and_then(|p| p.parse::<u32>().ok());
            if pid.is_some_and(|p| !alive(p)) {
                out.push((entry.path(), if kind == "tmp" { "tmp" } else { "old" }));
            }
        }
    }
    out.sort();
    out
}

/// Repairs what a killed save of `dir` left: when `dir` is missing but a previous version was
/// moved aside (two-rename fallback), it is moved back; then every leftover of a dead process
/// is removed. Best effort: errors (a read-only folder, say) are ignored.
pub fn recover_dir(dir: &Path) {
    let found = leftovers(dir);
    if !dir.exists()
        && let Some((old, _)) = found.iter().rev().find(|(_, kind)| *kind == "old")
        && fs::rename(old, dir).is_ok()
        && let Some(parent) = dir.parent()
    {
        let _ = sync_dir(if parent.as_os_str().is_empty() {
            Path::new(".")
        } else {
            parent
        });
    }
    for (path, _) in found {
        if path.exists() {
            let _ = fs::remove_dir_all(&path).or_else(|_| fs::remove_file(&path));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_a_directory_and_leaves_nothing_behind() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("m");
        write_dir_atomic(&dir, &[("a", b"1".to_vec())]).unwrap();
        write_dir_atomic(&dir, &[("b", b"2".to_vec())]).unwrap();
        assert!(!dir.join("a").exists());
        assert_eq!(fs::read(dir.join("b")).unwrap(), b"2");
        let names: Vec<_> = fs::read_dir(root.path()).unwrap().flatten().collect();
        assert_eq!(names.len(), 1, "only the directory itself remains");
    }

    #[test]
    fn leftovers_of_dead_processes_are_removed_and_the_old_model_restored() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("m");
        // A pid far above any pid_max: no such process.
        let dead = 999_999_999u32;
        let old = root.path().join(format!(".m.old-{dead}-0"));
        fs::create_dir(&old).unwrap();
        fs::write(old.join("w"), b"old").unwrap();
        let tmp = root.path().join(format!(".m.tmp-{dead}-3"));
        fs::create_dir(&tmp).unwrap();
        // A live process's temporary directory is kept.
        let mine = root
            .path()
            .join(format!(".m.tmp-{}-77", std::process::id()));
        fs::create_dir(&mine).unwrap();
        recover_dir(&dir);
        assert_eq!(fs::read(dir.join("w")).unwrap(), b"old");
        assert!(!old.exists() && !tmp.exists());
        assert!(mine.exists());
    }

    #[test]
    fn a_file_is_replaced_whole() {
        let root = tempfile::tempdir().unwrap();
        let path = root.path().join("t.csv");
        write_file_atomic(&path, b"one").unwrap();
        write_file_atomic(&path, b"two").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"two");
        assert_eq!(fs::read_dir(root.path()).unwrap().count(), 1);
    }

    #[test]
    fn bad_file_names_are_refused() {
        let root = tempfile::tempdir().unwrap();
        let err = write_dir_atomic(&root.path().join("m"), &[("../x", vec![])]).unwrap_err();
        assert!(err.to_string().contains("plain file name"), "{err}");
        assert!(!root.path().join("m").exists());
    }
}
