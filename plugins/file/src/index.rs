//! The index of dated files: `{path}/.index/{uuid}`, a symbolic link to
//! `../YYYY/MM/DD/{uuid}.json[.gz]`.
//!
//! `get(uuid)` has no date to find a dated file with; the Python module walks the whole tree
//! per lookup. One `readlink` here answers in constant time. A link is the cheapest entry there
//! is: its target lives in the inode (nothing to fsync but the directory), `ls -l .index` shows
//! it to an operator, and it is never followed blindly: the target is parsed and must be
//! exactly a date path of the same uuid ([`Location::from_index_target`]).
//!
//! Crash order: a save renames the data file into place before it writes the link, and a delete
//! removes the data file before the link. So an entry may point at nothing (every reader then
//! falls back to the flat location and answers "not stored"), but no acknowledged save is ever
//! without its entry. Data files without an entry (the Python server's, or a save that crashed
//! before it was acknowledged) are indexed by [`build`], run at open when the directory has
//! never been indexed or a build was interrupted, and by `provision`.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io;
use std::path::PathBuf;
use std::time::SystemTime;

use crate::error::{Error, IoContext};
use crate::fsops::{ensure_dir, read_dir_names, remove_if_exists, symlink_atomic, DirSync};
use crate::layout::{
    is_canonical_uuid, is_date_component, parse_data_name, Layout, Location, INCOMPLETE_MARKER,
};

/// The location `uuid`'s index entry points to, or `None` when there is no entry (or it is not
/// a link this plugin could have written).
pub(crate) fn read_entry(layout: &Layout, uuid: &str) -> Result<Option<Location>, Error> {
    let entry = layout.index_entry(uuid);
    match fs::read_link(&entry) {
        Ok(target) => Ok(Location::from_index_target(uuid, &target)),
        Err(err)
            if matches!(
                err.kind(),
                io::ErrorKind::NotFound
                    | io::ErrorKind::InvalidInput
                    | io::ErrorKind::NotADirectory
            ) =>
        {
            // No entry, or not a link (EINVAL), or the base path is not a directory (reads
            // answer "not stored"; writes report it).
            Ok(None)
        }
        Err(err) => Err(Error::io("reading index entry", entry, err)),
    }
}

/// Points `location.uuid`'s entry at a dated location, creating the index directory if needed;
/// notes the index directory for fsync.
pub(crate) fn write_entry(
    layout: &Layout,
    location: &Location,
    dir_mode: u32,
    sync: &mut DirSync,
) -> Result<(), Error> {
    let dir = layout.index_dir();
    ensure_dir(layout.base(), &dir, dir_mode, sync)?;
    symlink_atomic(
        &dir,
        &location.uuid,
        &location.uuid,
        &location.index_target(),
    )?;
    sync.add(dir);
    Ok(())
}

/// Removes `uuid`'s entry if there is one; notes the index directory for fsync when it was.
pub(crate) fn remove_entry(layout: &Layout, uuid: &str, sync: &mut DirSync) -> Result<bool, Error> {
    let removed = remove_if_exists(&layout.index_entry(uuid))?;
    if removed {
        sync.add(layout.index_dir());
    }
    Ok(removed)
}

/// Every entry of the index: uuid and where it points (`None` for a link that is not ours).
/// Names that are not uuids (temporary links, the build marker, an operator's files) are not
/// entries.
pub(crate) fn entries(layout: &Layout) -> Result<Vec<(String, Option<Location>)>, Error> {
    let mut entries = Vec::new();
    for (name, is_dir) in read_dir_names(&layout.index_dir())? {
        if is_dir || !is_canonical_uuid(&name) {
            continue;
        }
        let location = read_entry(layout, &name)?;
        entries.push((name, location));
    }
    Ok(entries)
}

/// Whether the index must be built before the storage answers: the directory holds date
/// directories but was never indexed (the Python server wrote it), or a build was interrupted.
pub(crate) fn needs_build(layout: &Layout) -> Result<bool, Error> {
    if !layout.base().is_dir() {
        // Nothing written yet (or a file is in the way, which the first write reports).
        return Ok(false);
    }
    let index_dir = layout.index_dir();
    if index_dir.join(INCOMPLETE_MARKER).exists() {
        return Ok(true);
    }
    if index_dir.is_dir() {
        return Ok(false);
    }
    Ok(read_dir_names(layout.base())?
        .iter()
        .any(|(name, is_dir)| *is_dir && is_date_component(name, 0)))
}

/// A data file found under a date directory.
#[derive(Debug, Clone)]
pub(crate) struct DatedFile {
    /// Where it is.
    pub(crate) location: Location,
    /// When it was last written.
    pub(crate) modified: SystemTime,
}

/// Every `YYYY/MM/DD` directory under the base, as (relative date, path).
pub(crate) fn date_dirs(layout: &Layout) -> Result<Vec<(String, PathBuf)>, Error> {
    let mut days = Vec::new();
    let base = layout.base();
    for (year, is_dir) in read_dir_names(base)? {
        if !is_dir || !is_date_component(&year, 0) {
            continue;
        }
        let year_dir = base.join(&year);
        for (month, is_dir) in read_dir_names(&year_dir)? {
            if !is_dir || !is_date_component(&month, 1) {
                continue;
            }
            let month_dir = year_dir.join(&month);
            for (day, is_dir) in read_dir_names(&month_dir)? {
                if is_dir && is_date_component(&day, 2) {
                    days.push((format!("{year}/{month}/{day}"), month_dir.join(&day)));
                }
            }
        }
    }
    days.sort();
    Ok(days)
}

/// Every data file under the date directories (a full walk: for index builds and `clear`).
pub(crate) fn dated_files(layout: &Layout) -> Result<Vec<DatedFile>, Error> {
    let mut files = Vec::new();
    for (date, dir) in date_dirs(layout)? {
        for (name, is_dir) in read_dir_names(&dir)? {
            let Some((uuid, ext)) = parse_data_name(&name).filter(|_| !is_dir) else {
                continue;
            };
            let path = dir.join(&name);
            let modified = match fs::metadata(&path) {
                Ok(meta) => meta.modified().at("reading the time of", &path)?,
                // Removed meanwhile.
                Err(err) if err.kind() == io::ErrorKind::NotFound => continue,
                Err(err) => return Err(Error::io("reading", path, err)),
            };
            files.push(DatedFile {
                location: Location {
                    date: Some(date.clone()),
                    uuid: uuid.to_owned(),
                    ext,
                },
                modified,
            });
        }
    }
    Ok(files)
}

/// What an index build did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BuildReport {
    /// Entries created or repointed.
    pub(crate) added: u64,
    /// Entries removed: dangling, or not a link this plugin writes.
    pub(crate) removed: u64,
    /// Entries after the build.
    pub(crate) entries: u64,
}

/// Brings the index in line with the dated files on disk: one entry per uuid that has a dated
/// file, pointing at the file the current entry names if it still exists, else at the most
/// recently written copy (`.json` first on a tie, as the Python module prefers it); entries
/// for uuids with no dated file are removed.
///
/// A marker file is present while the build runs, so a crash mid-build is redone at the next
/// open rather than leaving a half index that would hide files.
pub(crate) fn build(layout: &Layout, dir_mode: u32) -> Result<BuildReport, Error> {
    let index_dir = layout.index_dir();
    let marker = index_dir.join(INCOMPLETE_MARKER);
    let mut sync = DirSync::default();
    ensure_dir(layout.base(), &index_dir, dir_mode, &mut sync)?;
    File::create(&marker).at("creating", &marker)?;
    sync.add(index_dir.clone());
    sync.sync_or_first_error()?;

    let current: HashMap<String, Option<Location>> = entries(layout)?.into_iter().collect();
    let mut chosen: HashMap<String, DatedFile> = HashMap::new();
    let files = dated_files(layout)?;
    let on_disk: HashMap<&Location, &DatedFile> = files.iter().map(|f| (&f.location, f)).collect();
    for file in &files {
        let uuid = &file.location.uuid;
        if let Some(pointed) = current.get(uuid).and_then(Option::as_ref) {
            if let Some(pointed_file) = on_disk.get(pointed) {
                // The existing entry names a file that is there: keep it.
                chosen.insert(uuid.clone(), (*pointed_file).clone());
                continue;
            }
        }
        let better = match chosen.get(uuid) {
            None => true,
            Some(best) => {
                (file.modified, std::cmp::Reverse(file.location.ext))
                    > (best.modified, std::cmp::Reverse(best.location.ext))
            }
        };
        if better {
            chosen.insert(uuid.clone(), file.clone());
        }
    }

    let mut report = BuildReport::default();
    for (uuid, file) in &chosen {
        if current.get(uuid) != Some(&Some(file.location.clone())) {
            write_entry(layout, &file.location, dir_mode, &mut sync)?;
            report.added += 1;
        }
    }
    for uuid in current.keys() {
        if !chosen.contains_key(uuid) && remove_entry(layout, uuid, &mut sync)? {
            report.removed += 1;
        }
    }
    report.entries = chosen.len() as u64;
    sync.sync_or_first_error()?;
    fs::remove_file(&marker).at("removing", &marker)?;
    sync.add(index_dir);
    sync.sync_or_first_error()?;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::Ext;
    use std::path::Path;

    const A: &str = "018c7fd6-8824-8c27-9dd8-dd37220d739c";
    const B: &str = "0195b7a2-69ef-8e73-9dd8-dd37220d739c";

    fn put(base: &Path, rel: &str) {
        let path = base.join(rel);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, b"{}").unwrap();
    }

    #[test]
    fn build_indexes_dated_files_and_drops_dangling_entries() {
        let tmp = tempfile::tempdir().unwrap();
        let layout = Layout::new(tmp.path().to_path_buf(), true, false);
        put(tmp.path(), &format!("2024/01/02/{A}.json"));
        put(tmp.path(), &format!("{B}.json"));
        put(tmp.path(), "2024/01/02/notes.json");
        put(tmp.path(), &format!("misc/2024/{B}.json"));
        assert!(needs_build(&layout).unwrap());

        let report = build(&layout, 0o755).unwrap();
        assert_eq!(
            report,
            BuildReport {
                added: 1,
                removed: 0,
                entries: 1
            }
        );
        assert!(!needs_build(&layout).unwrap());
        let entry = read_entry(&layout, A).unwrap().unwrap();
        assert_eq!(entry.date.as_deref(), Some("2024/01/02"));
        assert_eq!(entry.ext, Ext::Json);
        assert_eq!(read_entry(&layout, B).unwrap(), None);
        assert!(!layout.index_dir().join(INCOMPLETE_MARKER).exists());

        // The file goes: the next build drops the entry; a rebuild with nothing to do is a no-op.
        fs::remove_file(tmp.path().join(format!("2024/01/02/{A}.json"))).unwrap();
        let report = build(&layout, 0o755).unwrap();
        assert_eq!(
            report,
            BuildReport {
                added: 0,
                removed: 1,
                entries: 0
            }
        );
        assert_eq!(build(&layout, 0o755).unwrap(), BuildReport::default());
    }

    #[test]
    fn an_interrupted_build_is_redone() {
        let tmp = tempfile::tempdir().unwrap();
        let layout = Layout::new(tmp.path().to_path_buf(), true, false);
        fs::create_dir_all(layout.index_dir()).unwrap();
        assert!(!needs_build(&layout).unwrap());
        fs::write(layout.index_dir().join(INCOMPLETE_MARKER), b"").unwrap();
        assert!(needs_build(&layout).unwrap());
    }

    #[test]
    fn a_flat_directory_needs_no_index() {
        let tmp = tempfile::tempdir().unwrap();
        let layout = Layout::new(tmp.path().to_path_buf(), false, false);
        put(tmp.path(), &format!("{A}.json"));
        assert!(!needs_build(&layout).unwrap());
        let missing = Layout::new(tmp.path().join("nope"), true, false);
        assert!(!needs_build(&missing).unwrap());
    }

    #[test]
    fn entries_pointing_elsewhere_are_ignored() {
        let tmp = tempfile::tempdir().unwrap();
        let layout = Layout::new(tmp.path().to_path_buf(), true, false);
        fs::create_dir_all(layout.index_dir()).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", layout.index_entry(A)).unwrap();
        assert_eq!(read_entry(&layout, A).unwrap(), None);
        fs::write(layout.index_entry(B), b"not a link").unwrap();
        assert_eq!(read_entry(&layout, B).unwrap(), None);
    }
}
