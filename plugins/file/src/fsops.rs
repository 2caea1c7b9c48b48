//! The file-system steps every operation is built from: atomic replacement of a file or an
//! index link, directory creation with the configured mode, directory fsync, and pruning of
//! emptied date directories.
//!
//! Durability rule: a name created, replaced or removed in a directory is only durable once the
//! directory itself is fsynced. Operations collect the directories they touched in a [`DirSync`]
//! and sync each once at the end, which is what makes a batch cheaper than single saves.

use std::collections::BTreeSet;
use std::fs::{self, DirBuilder, File, OpenOptions, Permissions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use flate2::write::GzEncoder;
use flate2::Compression;

use crate::error::{Error, IoContext};
use crate::layout::temp_name;

/// The directories whose entries changed, to fsync once each.
#[derive(Debug, Default)]
pub(crate) struct DirSync {
    dirs: BTreeSet<PathBuf>,
}

impl DirSync {
    /// Remembers that an entry of `dir` changed.
    pub(crate) fn add(&mut self, dir: PathBuf) {
        self.dirs.insert(dir);
    }

    /// Adds every directory of `other`.
    pub(crate) fn extend(&mut self, other: &DirSync) {
        self.dirs.extend(other.dirs.iter().cloned());
    }

    /// Whether `dir` is among the directories to sync.
    pub(crate) fn contains(&self, dir: &Path) -> bool {
        self.dirs.contains(dir)
    }

    /// Fsyncs every directory once, answering those that failed. A directory that no longer
    /// exists (pruned after it was noted) needs no sync: its parent was noted when it went.
    pub(crate) fn sync(&mut self) -> Vec<(PathBuf, Error)> {
        let mut failures = Vec::new();
        for dir in std::mem::take(&mut self.dirs) {
            if let Err(err) = sync_dir(&dir) {
                failures.push((dir, err));
            }
        }
        failures
    }

    /// Fsyncs every directory once; the first failure is the answer.
    pub(crate) fn sync_or_first_error(&mut self) -> Result<(), Error> {
        match self.sync().into_iter().next() {
            Some((_, err)) => Err(err),
            None => Ok(()),
        }
    }
}

/// Fsyncs a directory, making the creations, renames and removals in it durable.
fn sync_dir(dir: &Path) -> Result<(), Error> {
    match File::open(dir) {
        Ok(handle) => handle.sync_all().at("flushing directory", dir),
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(err) => Err(Error::io("opening directory", dir, err)),
    }
}

/// The parent of `path`, with `.` for a bare relative name (so it can be opened).
pub(crate) fn parent_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// How often directory creation is retried when a parent vanishes between being made and being
/// used: a concurrent delete prunes a date directory as soon as it is empty.
const CREATE_ATTEMPTS: usize = 10;

/// Makes sure `dir` (the base directory or one below it) exists, creating each missing level
/// with `mode` (set explicitly, so the umask does not change it) and noting each new level's
/// parent for fsync. The base directory's own parents are created as `mkdir -p` would.
pub(crate) fn ensure_dir(
    base: &Path,
    dir: &Path,
    mode: u32,
    sync: &mut DirSync,
) -> Result<(), Error> {
    let mut attempt = 1;
    loop {
        match fs::metadata(dir) {
            Ok(meta) if meta.is_dir() => return Ok(()),
            Ok(_) if dir == base => return Err(Error::NotADirectory(dir.to_path_buf())),
            Ok(_) => {
                return Err(Error::io(
                    "creating directory",
                    dir,
                    io::Error::from(io::ErrorKind::NotADirectory),
                ))
            }
            Err(err) if err.kind() == io::ErrorKind::NotFound => {}
            Err(err) => return Err(Error::io("checking directory", dir, err)),
        }
        let parent = parent_of(dir);
        if dir == base || !dir.starts_with(base) {
            fs::create_dir_all(&parent).at("creating directory", &parent)?;
        } else {
            ensure_dir(base, &parent, mode, sync)?;
        }
        match DirBuilder::new().mode(mode).create(dir) {
            Ok(()) => {
                fs::set_permissions(dir, Permissions::from_mode(mode))
                    .at("setting permissions of", dir)?;
                sync.add(parent);
                return Ok(());
            }
            // Another writer created it meanwhile.
            Err(err) if err.kind() == io::ErrorKind::AlreadyExists && dir.is_dir() => return Ok(()),
            // The parent was pruned between its creation and ours: make it again.
            Err(err) if err.kind() == io::ErrorKind::NotFound && attempt < CREATE_ATTEMPTS => {
                attempt += 1;
            }
            Err(err) => return Err(Error::io("creating directory", dir, err)),
        }
    }
}

/// A hidden temporary file for `uuid`, created (empty) in the directory that will hold the
/// document. Its existence keeps the directory from being pruned as empty, so creating it is
/// the moment a write claims its directory. Removed on drop unless committed.
#[derive(Debug)]
pub(crate) struct TempFile {
    path: PathBuf,
    file: Option<File>,
}

impl TempFile {
    /// Creates `dir/.{uuid}.{pid}.{n}.tmp`, readable by its owner only until committed.
    pub(crate) fn create(dir: &Path, uuid: &str) -> Result<Self, Error> {
        let path = dir.join(temp_name(uuid));
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .at("creating", &path)?;
        Ok(Self {
            path,
            file: Some(file),
        })
    }

    /// Replaces `target` (in the same directory) with `json`, gzipped when `gzip`, atomically:
    /// written here, given `mode`, fsynced, then renamed over the target. A reader sees the old
    /// file or the new one, never a torn one; a crash leaves at most this hidden file, which
    /// every reader ignores. The directory is NOT fsynced here: the caller notes it in its
    /// [`DirSync`].
    pub(crate) fn commit(
        mut self,
        target: &Path,
        json: &[u8],
        gzip: bool,
        mode: u32,
    ) -> Result<(), Error> {
        let tmp = self.path.clone();
        let Some(mut file) = self.file.take() else {
            return Err(Error::io(
                "writing",
                tmp,
                io::Error::other("already committed"),
            ));
        };
        if gzip {
            let mut encoder = GzEncoder::new(&mut file, Compression::default());
            encoder.write_all(json).at("writing", &tmp)?;
            encoder.finish().at("writing", &tmp)?;
        } else {
            file.write_all(json).at("writing", &tmp)?;
        }
        file.set_permissions(Permissions::from_mode(mode))
            .at("setting permissions of", &tmp)?;
        file.sync_all().at("flushing", &tmp)?;
        drop(file);
        fs::rename(&tmp, target).at(&format!("renaming {} to", tmp.display()), target)?;
        // Renamed: nothing left to clean up.
        self.path = PathBuf::new();
        Ok(())
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if !self.path.as_os_str().is_empty() {
            // Best effort: a leftover temporary file is ignored by readers anyway.
            let _ = fs::remove_file(&self.path);
        }
    }
}

/// Replaces the symbolic link `dir/name` with one to `target`, atomically (a link made under a
/// temporary name, then renamed). A link's target lives in its inode, so there is no content to
/// fsync: syncing `dir` afterwards is enough.
pub(crate) fn symlink_atomic(
    dir: &Path,
    name: &str,
    uuid: &str,
    target: &Path,
) -> Result<(), Error> {
    let tmp = dir.join(temp_name(uuid));
    std::os::unix::fs::symlink(target, &tmp).at("creating link", &tmp)?;
    let link = dir.join(name);
    let result = fs::rename(&tmp, &link).at(&format!("renaming {} to", tmp.display()), &link);
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Removes a file (or link) if it is there; answers whether it was.
pub(crate) fn remove_if_exists(path: &Path) -> Result<bool, Error> {
    match fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(err) => Err(Error::io("removing", path, err)),
    }
}

/// Removes `dir` and then each parent while they are empty, stopping at `base` (never removed)
/// and at the first directory that is not empty, as the Python module does after a delete.
/// Best effort: a directory that cannot be removed is simply kept.
pub(crate) fn prune_empty_dirs(base: &Path, dir: &Path, sync: &mut DirSync) {
    let mut current = dir.to_path_buf();
    while current != base && current.starts_with(base) {
        if fs::remove_dir(&current).is_err() {
            break;
        }
        let parent = parent_of(&current);
        sync.add(parent.clone());
        current = parent;
    }
}

/// The names in a directory with whether each is a directory (without following links), or
/// nothing when the directory does not exist.
pub(crate) fn read_dir_names(dir: &Path) -> Result<Vec<(String, bool)>, Error> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(err) => return Err(Error::io("reading directory", dir, err)),
    };
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.at("reading directory", dir)?;
        // Names that are not UTF-8 are never ours.
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        let is_dir = entry.file_type().at("reading directory", dir)?.is_dir();
        names.push((name, is_dir));
    }
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    const UUID: &str = "018c7fd6-8824-8c27-9dd8-dd37220d739c";

    #[test]
    fn parents() {
        assert_eq!(parent_of(Path::new("vcons")), PathBuf::from("."));
        assert_eq!(parent_of(Path::new("a/b")), PathBuf::from("a"));
        assert_eq!(parent_of(Path::new("/a")), PathBuf::from("/"));
    }

    #[test]
    fn ensure_dir_creates_levels_with_the_mode_and_notes_parents() {
        let tmp = tempfile::tempdir().unwrap();
        let base = tmp.path().join("base");
        let day = base.join("2024/01/02");
        let mut sync = DirSync::default();
        ensure_dir(&base, &day, 0o750, &mut sync).unwrap();
        for dir in [&base, &base.join("2024"), &base.join("2024/01"), &day] {
            let mode = fs::metadata(dir).unwrap().permissions().mode() & 0o7777;
            assert_eq!(mode, 0o750, "{}", dir.display());
        }
        assert!(sync.contains(tmp.path()));
        assert!(sync.contains(&base.join("2024/01")));
        assert!(sync.sync().is_empty());
        // Existing: nothing to do.
        ensure_dir(&base, &day, 0o750, &mut sync).unwrap();
        assert!(!sync.contains(&base));
    }

    #[test]
    fn atomic_write_leaves_only_the_target() {
        let tmp = tempfile::tempdir().unwrap();
        let target = tmp.path().join("x.json");
        let temp = TempFile::create(tmp.path(), UUID).unwrap();
        temp.commit(&target, b"{}", false, 0o640).unwrap();
        let temp = TempFile::create(tmp.path(), UUID).unwrap();
        temp.commit(&target, b"{\"a\":1}", false, 0o640).unwrap();
        let names: Vec<_> = read_dir_names(tmp.path()).unwrap();
        assert_eq!(names, vec![("x.json".to_owned(), false)]);
        assert_eq!(fs::read(tmp.path().join("x.json")).unwrap(), b"{\"a\":1}");
        let mode = fs::metadata(tmp.path().join("x.json"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o640);
    }

    #[test]
    fn a_failed_write_leaves_no_temporary_file() {
        let tmp = tempfile::tempdir().unwrap();
        // The target is a non-empty directory: the rename fails after the write.
        fs::create_dir_all(tmp.path().join("x.json/inner")).unwrap();
        let temp = TempFile::create(tmp.path(), UUID).unwrap();
        let target = tmp.path().join("x.json");
        assert!(temp.commit(&target, b"{}", false, 0o644).is_err());
        let names = read_dir_names(tmp.path()).unwrap();
        assert_eq!(names, vec![("x.json".to_owned(), true)]);
    }

    #[test]
    fn prune_stops_at_base_and_at_non_empty_dirs() {
        let tmp = tempfile::tempdir().unwrap();
        let base = tmp.path().to_path_buf();
        fs::create_dir_all(base.join("2024/01/02")).unwrap();
        fs::create_dir_all(base.join("2024/02")).unwrap();
        let mut sync = DirSync::default();
        prune_empty_dirs(&base, &base.join("2024/01/02"), &mut sync);
        assert!(!base.join("2024/01").exists());
        assert!(base.join("2024/02").exists());
        prune_empty_dirs(&base, &base.join("2024/02"), &mut sync);
        assert!(!base.join("2024").exists());
        assert!(base.exists());
    }

    #[test]
    fn links_are_replaced_atomically() {
        let tmp = tempfile::tempdir().unwrap();
        symlink_atomic(tmp.path(), UUID, UUID, Path::new("../a")).unwrap();
        symlink_atomic(tmp.path(), UUID, UUID, Path::new("../b")).unwrap();
        assert_eq!(
            fs::read_link(tmp.path().join(UUID)).unwrap(),
            PathBuf::from("../b")
        );
        assert_eq!(read_dir_names(tmp.path()).unwrap().len(), 1);
    }
}
