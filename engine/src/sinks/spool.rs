//! The upload queue's spool folder: `stationflow-spool-XXXXXX` in the configured parent,
//! removed when the process ends normally. A process that is killed (`kill -9`, the
//! OOM killer, an abort) cannot remove it, and its spool may hold gigabytes, so each
//! spool holds `owner.lock`, locked (`flock`) for the life of its process: the kernel
//! lets go of the lock when the process dies, however it dies. A new spool first removes
//! every spool in the parent whose lock it can take — never one whose process still
//! runs, so engines may share a parent.

use crate::error::{Context as _, Result};
use std::fs::{File, TryLockError};
use std::path::{Path, PathBuf};

const PREFIX: &str = "stationflow-spool-";
const LOCK: &str = "owner.lock";

/// A spool folder owned by this process.
pub struct Spool {
    // Dropped in this order: the folder is removed while its lock is still held, so no
    // engine starting meanwhile takes it for abandoned and removes it at the same time.
    folder: tempfile::TempDir,
    _lock: File,
}

/// A spool left by a process that is gone, removed.
#[derive(Debug, PartialEq, Eq)]
pub struct Abandoned {
    pub folder: PathBuf,
    pub bytes: u64,
}

impl Spool {
    /// Removes the parent's abandoned spools, then makes and locks a new one.
    pub fn create(parent: &Path) -> Result<Spool> {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating spool folder {}", parent.display()))?;
        for gone in remove_abandoned(parent) {
            tracing::info!(
                folder = %gone.folder.display(),
                bytes = gone.bytes,
                "removed a spool left by a process that did not stop cleanly"
            );
        }
        let folder = tempfile::Builder::new()
            .prefix(PREFIX)
            .tempdir_in(parent)
            .with_context(|| format!("making a spool in {}", parent.display()))?;
        let lock = lock_new(folder.path())
            .with_context(|| format!("locking spool {}", folder.path().display()))?;
        Ok(Spool {
            folder,
            _lock: lock,
        })
    }

    pub fn path(&self) -> &Path {
        self.folder.path()
    }
}

/// Creates `folder/owner.lock` already locked: it is locked under another name and then
/// renamed, so a process that finds `owner.lock` unlocked knows its owner is gone (the
/// lock belongs to the open file, and survives the rename).
fn lock_new(folder: &Path) -> std::io::Result<File> {
    let pending = folder.join(format!("{LOCK}.new"));
    let file = File::create(&pending)?;
    file.lock()?;
    std::fs::rename(&pending, folder.join(LOCK))?;
    Ok(file)
}

/// Removes the spools in `parent` whose lock is free. A spool without a lock file is
/// left alone: it may be being made, or belong to a version that did not lock.
fn remove_abandoned(parent: &Path) -> Vec<Abandoned> {
    let Ok(entries) = std::fs::read_dir(parent) else {
        return Vec::new();
    };
    let mut removed = Vec::new();
    for entry in entries.flatten() {
        let is_spool = entry.file_name().to_string_lossy().starts_with(PREFIX)
            && entry.file_type().is_ok_and(|t| t.is_dir());
        if !is_spool {
            continue;
        }
        let folder = entry.path();
        let Ok(lock) = File::open(folder.join(LOCK)) else {
            continue;
        };
        match lock.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => continue,
            Err(TryLockError::Error(e)) => {
                tracing::warn!(folder = %folder.display(), error = %e, "cannot tell whether a spool is in use; left alone");
                continue;
            }
        }
        let bytes = folder_bytes(&folder);
        match std::fs::remove_dir_all(&folder) {
            Ok(()) => removed.push(Abandoned { folder, bytes }),
            Err(e) => tracing::warn!(
                folder = %folder.display(),
                error = %e,
                "cannot remove a spool left by a process that did not stop cleanly"
            ),
        }
    }
    removed
}

fn folder_bytes(folder: &Path) -> u64 {
    std::fs::read_dir(folder)
        .map(|entries| {
            entries
                .flatten()
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spools_in(parent: &Path) -> Vec<PathBuf> {
        let mut spools: Vec<PathBuf> = std::fs::read_dir(parent)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with(PREFIX))
            .collect();
        spools.sort();
        spools
    }

    /// What a killed process leaves: its folder, a spooled file, and `owner.lock` that
    /// nobody holds any more.
    fn abandoned_spool(parent: &Path, name: &str) -> PathBuf {
        let folder = parent.join(format!("{PREFIX}{name}"));
        std::fs::create_dir(&folder).unwrap();
        std::fs::write(folder.join("000000000000"), vec![7u8; 1_000]).unwrap();
        drop(lock_new(&folder).unwrap());
        folder
    }

    #[test]
    fn a_new_spool_removes_those_of_processes_that_are_gone() {
        let parent = tempfile::tempdir().unwrap();
        let gone = abandoned_spool(parent.path(), "gone");
        let spool = Spool::create(parent.path()).unwrap();
        assert!(!gone.exists());
        assert_eq!(spools_in(parent.path()), vec![spool.path().to_path_buf()]);
        assert!(spool.path().join(LOCK).exists());
        let own = spool.path().to_path_buf();
        drop(spool);
        assert!(!own.exists(), "a spool is removed with its owner");
    }

    #[test]
    fn spools_in_use_and_folders_without_a_lock_are_left_alone() {
        let parent = tempfile::tempdir().unwrap();
        // A spool of another engine that runs (a lock is per open file, so a second
        // open in this process stands for another process).
        let running = Spool::create(parent.path()).unwrap();
        let unlocked = parent.path().join(format!("{PREFIX}being-made"));
        std::fs::create_dir(&unlocked).unwrap();
        let other = parent.path().join("not-a-spool");
        std::fs::create_dir(&other).unwrap();
        drop(lock_new(&other).unwrap());

        let mine = Spool::create(parent.path()).unwrap();
        let mut expected = vec![
            running.path().to_path_buf(),
            unlocked.clone(),
            mine.path().to_path_buf(),
        ];
        expected.sort();
        assert_eq!(spools_in(parent.path()), expected);
        assert!(other.exists());
    }

    #[test]
    fn removal_reports_the_folder_and_its_bytes() {
        let parent = tempfile::tempdir().unwrap();
        let gone = abandoned_spool(parent.path(), "a");
        assert_eq!(
            remove_abandoned(parent.path()),
            vec![Abandoned {
                folder: gone,
                bytes: 1_000
            }]
        );
        assert!(remove_abandoned(parent.path()).is_empty());
    }
}
