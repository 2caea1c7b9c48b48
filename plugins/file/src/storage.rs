//! [`FileStorage`]: the operations, built from the layout, the index and the file-system steps.
//!
//! Where a uuid is looked for, in order (the same order for `get`, `exists`, `delete`, `list`
//! and `count`, so they always agree):
//! - `organize_by_date: true`: the index entry, then `{path}/{uuid}.json`, then `.json.gz`;
//! - `organize_by_date: false`: `{path}/{uuid}.json`, then `.json.gz`, then the index entry.
//!
//! The location the current options write comes first, so after a change of options the newest
//! copy wins; each step is one system call, so a miss costs three, never a walk.

use std::collections::{HashMap, HashSet};
use std::fs::{self, File};
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use flate2::read::GzDecoder;
use plugin_sdk::{
    BatchResult, Capabilities, ListPage, ListRequest, OpenContext, ProvisionRequest, Storage,
    StorageError, StoragePlugin, VconRecord,
};

use crate::error::{Error, IoContext};
use crate::fsops::{
    ensure_dir, prune_empty_dirs, read_dir_names, remove_if_exists, DirSync, TempFile,
};
use crate::index;
use crate::layout::{
    data_name, is_canonical_uuid, is_temp_name, parse_data_name, Ext, Layout, Location,
    INCOMPLETE_MARKER,
};
use crate::options::Options;

/// The page size of `list` when the request gives none.
const DEFAULT_PAGE: usize = 100;

/// How many times a write is retried when its directory vanished under it (a concurrent delete
/// pruned the emptied date directory between creating it and writing into it).
const WRITE_ATTEMPTS: usize = 10;

/// Temporary files younger than this may belong to a save in progress; `clear` and `provision`
/// only remove older ones.
const STALE_TEMP_AGE: std::time::Duration = std::time::Duration::from_secs(3600);

/// Lock stripes: operations on one uuid are serialised inside a process, so the index entry
/// and the copies to remove are decided on a stable view.
const STRIPES: usize = 64;

/// A storage in a directory: one file per vCon, in the Python module's layout.
#[derive(Debug)]
pub struct FileStorage {
    layout: Layout,
    file_mode: u32,
    dir_mode: u32,
    max_file_size: u64,
    stripes: [Mutex<()>; STRIPES],
    /// Writers claim a directory under the read side; pruning empty directories takes the
    /// write side, so it never removes a directory a save in this process is about to use.
    tree: RwLock<()>,
}

/// What a write leaves to do once its directories are synced: remove the copies it replaced.
#[derive(Debug)]
struct Pending {
    uuid: String,
    location: Location,
    /// Older copies at other locations (another date, the other format, flat vs dated).
    stale: Vec<Location>,
    /// Whether the index entry must go (the vCon is now flat).
    drop_entry: bool,
    /// The directories this write changed.
    dirs: DirSync,
}

/// A stored vCon as `list` and `count` see it.
#[derive(Debug)]
struct Stored {
    uuid: String,
    modified_ns: u128,
    size: u64,
    indexed: bool,
}

impl FileStorage {
    /// Opens a storage on `options.path`, building the index first when the directory has
    /// never been indexed (a directory the Python server wrote) or a build was interrupted.
    pub fn open_with(options: Options) -> Result<Self, StorageError> {
        options.check().map_err(Error::Options)?;
        if let Ok(meta) = fs::metadata(&options.path) {
            if !meta.is_dir() {
                return Err(Error::NotADirectory(options.path).into());
            }
        }
        let storage = Self {
            layout: Layout::new(options.path, options.organize_by_date, options.compression),
            file_mode: options.file_permissions.bits(),
            dir_mode: options.dir_permissions.bits(),
            max_file_size: options.max_file_size,
            stripes: std::array::from_fn(|_| Mutex::new(())),
            tree: RwLock::new(()),
        };
        if index::needs_build(&storage.layout)? {
            index::build(&storage.layout, storage.dir_mode)?;
        }
        Ok(storage)
    }

    fn lock(&self, uuid: &str) -> MutexGuard<'_, ()> {
        // FNV-1a over the uuid: cheap and spreads uuids of any version across the stripes.
        let hash = uuid.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
        let stripe = usize::try_from(hash % STRIPES as u64).unwrap_or(0);
        // Nothing guarded is left half-done by a panic (the lock guards no data), so a
        // poisoned lock is still good.
        self.stripes[stripe]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Removes `dir` and its parents while empty (see [`prune_empty_dirs`]), never while a save
    /// in this process is claiming a directory.
    fn prune(&self, dir: &Path, sync: &mut DirSync) {
        let _tree = self.tree.write().unwrap_or_else(PoisonError::into_inner);
        prune_empty_dirs(self.layout.base(), dir, sync);
    }

    /// Finds `uuid` in lookup order, answering the first location `probe` accepts.
    fn locate<T>(
        &self,
        uuid: &str,
        mut probe: impl FnMut(&Location) -> Result<Option<T>, Error>,
    ) -> Result<Option<(Location, T)>, Error> {
        check_uuid(uuid)?;
        let flat = Ext::ALL.map(|ext| self.layout.flat(uuid, ext));
        let from_index =
            |probe: &mut dyn FnMut(&Location) -> Result<Option<T>, Error>| match index::read_entry(
                &self.layout,
                uuid,
            )? {
                Some(location) => Ok(probe(&location)?.map(|t| (location, t))),
                None => Ok(None),
            };
        if self.layout.organize_by_date() {
            if let Some(found) = from_index(&mut probe)? {
                return Ok(Some(found));
            }
        }
        for location in flat {
            if let Some(t) = probe(&location)? {
                return Ok(Some((location, t)));
            }
        }
        if !self.layout.organize_by_date() {
            return from_index(&mut probe);
        }
        Ok(None)
    }

    fn read(&self, location: &Location) -> Result<Option<Vec<u8>>, Error> {
        let path = self.layout.path_of(location);
        let mut file = match File::open(&path) {
            Ok(file) => file,
            Err(err) if matches!(err.kind(), io::ErrorKind::NotFound) => return Ok(None),
            Err(err) => return Err(Error::io("opening", path, err)),
        };
        let size = file.metadata().at("reading", &path)?.len();
        let mut raw = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
        file.read_to_end(&mut raw).at("reading", &path)?;
        match location.ext {
            Ext::Json => Ok(Some(raw)),
            Ext::JsonGz => {
                let mut json = Vec::with_capacity(raw.len().saturating_mul(4));
                GzDecoder::new(raw.as_slice())
                    .read_to_end(&mut json)
                    .map_err(|source| Error::Corrupt { path, source })?;
                Ok(Some(json))
            }
        }
    }

    fn is_stored(&self, location: &Location) -> Result<Option<()>, Error> {
        let path = self.layout.path_of(location);
        match fs::metadata(&path) {
            Ok(meta) if meta.is_file() => Ok(Some(())),
            Ok(_) => Ok(None),
            Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(err) => Err(Error::io("checking", path, err)),
        }
    }

    /// Writes one record into place (file and index entry) without syncing directories; the
    /// answer says which directories to sync and what to remove afterwards.
    fn write_one(&self, record: &VconRecord<'_>) -> Result<Pending, Error> {
        let uuid = record.uuid;
        check_uuid(uuid)?;
        let size = record.json.len() as u64;
        if self.max_file_size > 0 && size > self.max_file_size {
            return Err(Error::TooLarge {
                uuid: uuid.to_owned(),
                size,
                limit: self.max_file_size,
            });
        }
        let mut dirs = DirSync::default();
        let location = self.layout.location_for(record);
        let dir = self.layout.dir_of(&location);
        let name = data_name(uuid, location.ext);
        let gzip = location.ext == Ext::JsonGz;
        let mut attempt = 1;
        let temp = loop {
            // Shared with other writers, exclusive of pruning: once the temporary file exists
            // the directory is not empty, so no prune in this process can remove it. Another
            // process sharing the directory can still prune in between: then retry.
            let claimed = {
                let _tree = self.tree.read().unwrap_or_else(PoisonError::into_inner);
                ensure_dir(self.layout.base(), &dir, self.dir_mode, &mut dirs)
                    .and_then(|()| TempFile::create(&dir, uuid))
            };
            match claimed {
                Ok(temp) => break temp,
                Err(Error::Io { source, .. })
                    if source.kind() == io::ErrorKind::NotFound && attempt < WRITE_ATTEMPTS =>
                {
                    attempt += 1;
                }
                Err(err) => return Err(err),
            }
        };
        temp.commit(&dir.join(&name), record.json, gzip, self.file_mode)?;
        dirs.add(dir);

        // The data is in place; what the index says and which copies are stale is decided
        // under the uuid's lock, on a view no other operation on this uuid changes meanwhile.
        let _guard = self.lock(uuid);
        let previous = index::read_entry(&self.layout, uuid)?;
        let mut stale = vec![location.with_ext(location.ext.other())];
        let mut drop_entry = false;
        if location.date.is_some() {
            if previous.as_ref() != Some(&location) {
                index::write_entry(&self.layout, &location, self.dir_mode, &mut dirs)?;
                stale.extend(previous);
            }
            stale.extend(Ext::ALL.map(|ext| self.layout.flat(uuid, ext)));
        } else if let Some(previous) = previous {
            stale.push(previous);
            drop_entry = true;
        }
        Ok(Pending {
            uuid: uuid.to_owned(),
            location,
            stale,
            drop_entry,
            dirs,
        })
    }

    /// Removes the copies a write replaced, once the write is durable, noting the directories
    /// changed.
    fn finish(&self, pending: &Pending, sync: &mut DirSync) -> Result<(), Error> {
        let _guard = self.lock(&pending.uuid);
        if pending.drop_entry {
            index::remove_entry(&self.layout, &pending.uuid, sync)?;
        }
        for location in &pending.stale {
            if *location == pending.location {
                continue;
            }
            if remove_if_exists(&self.layout.path_of(location))? {
                let dir = self.layout.dir_of(location);
                sync.add(dir.clone());
                self.prune(&dir, sync);
            }
        }
        Ok(())
    }

    /// Removes every copy of `uuid` and its index entry, noting the directories changed.
    fn delete_one(&self, uuid: &str, sync: &mut DirSync) -> Result<bool, Error> {
        check_uuid(uuid)?;
        let _guard = self.lock(uuid);
        let mut copies: Vec<Location> = Ext::ALL.map(|ext| self.layout.flat(uuid, ext)).into();
        if let Some(indexed) = index::read_entry(&self.layout, uuid)? {
            copies.push(indexed.with_ext(indexed.ext.other()));
            copies.push(indexed);
        }
        let mut removed = false;
        for location in &copies {
            if remove_if_exists(&self.layout.path_of(location))? {
                removed = true;
                let dir = self.layout.dir_of(location);
                sync.add(dir.clone());
                self.prune(&dir, sync);
            }
        }
        // After the data: a crash in between leaves an entry pointing at nothing, which every
        // reader treats as absent.
        index::remove_entry(&self.layout, uuid, sync)?;
        Ok(removed)
    }

    /// Every stored vCon, exactly as `get` would find them: indexed files whose target exists
    /// and flat files, each uuid once, by the lookup order.
    fn stored(&self) -> Result<Vec<Stored>, Error> {
        let mut indexed: HashMap<String, Stored> = HashMap::new();
        for (uuid, location) in index::entries(&self.layout)? {
            let Some(location) = location else { continue };
            if let Some((modified_ns, size)) = self.file_stat(&location)? {
                let stored = Stored {
                    uuid: uuid.clone(),
                    modified_ns,
                    size,
                    indexed: true,
                };
                indexed.insert(uuid, stored);
            }
        }
        let mut flat: HashMap<String, Stored> = HashMap::new();
        let mut flat_names: Vec<(String, Ext)> = read_dir_names(self.layout.base())?
            .into_iter()
            .filter(|(_, is_dir)| !is_dir)
            .filter_map(|(name, _)| parse_data_name(&name).map(|(u, e)| (u.to_owned(), e)))
            .collect();
        // `.json` before `.json.gz`, so the first seen of a uuid is the one `get` reads.
        flat_names.sort();
        for (uuid, ext) in flat_names {
            if flat.contains_key(&uuid) {
                continue;
            }
            if let Some((modified_ns, size)) = self.file_stat(&self.layout.flat(&uuid, ext))? {
                let stored = Stored {
                    uuid: uuid.clone(),
                    modified_ns,
                    size,
                    indexed: false,
                };
                flat.insert(uuid, stored);
            }
        }
        let (first, second) = if self.layout.organize_by_date() {
            (indexed, flat)
        } else {
            (flat, indexed)
        };
        let mut all = first;
        for (uuid, stored) in second {
            all.entry(uuid).or_insert(stored);
        }
        Ok(all.into_values().collect())
    }

    /// Modification time (ns since the epoch) and size of a location's file, if it is a file.
    fn file_stat(&self, location: &Location) -> Result<Option<(u128, u64)>, Error> {
        let path = self.layout.path_of(location);
        match fs::metadata(&path) {
            Ok(meta) if meta.is_file() => {
                let modified = meta.modified().at("reading the time of", &path)?;
                let ns = modified
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| d.as_nanos());
                Ok(Some((ns, meta.len())))
            }
            Ok(_) => Ok(None),
            Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(err) => Err(Error::io("reading", path, err)),
        }
    }

    /// Removes every data file (indexed or not, flat or dated), every index entry, old
    /// temporary files and the date directories left empty. Only names this plugin writes are
    /// touched: `{uuid}.json`, `{uuid}.json.gz`, `.{uuid}.{pid}.{n}.tmp`, index links, the
    /// build marker, and `YYYY/MM/DD` directories once empty. Answers the number of vCons
    /// removed.
    fn remove_all(&self) -> Result<u64, Error> {
        let base = self.layout.base();
        let mut sync = DirSync::default();
        let mut removed = HashSet::new();
        let now = SystemTime::now();
        let days = index::date_dirs(&self.layout)?;
        for (_, dir) in &days {
            sweep(dir, now, &mut sync, &mut removed)?;
        }
        sweep(base, now, &mut sync, &mut removed)?;

        let index_dir = self.layout.index_dir();
        for (name, is_dir) in read_dir_names(&index_dir)? {
            let path = index_dir.join(&name);
            let ours = is_canonical_uuid(&name)
                || name == INCOMPLETE_MARKER
                || (is_temp_name(&name) && is_old(&path, now));
            if !is_dir && ours && remove_if_exists(&path)? {
                sync.add(index_dir.clone());
            }
        }
        for (_, dir) in days.iter().rev() {
            self.prune(dir, &mut sync);
        }
        sync.sync_or_first_error()?;
        Ok(removed.len() as u64)
    }

    fn check_status(&self) -> Result<serde_json::Value, Error> {
        let base = self.layout.base();
        let exists = base.is_dir();
        let stored = self.stored()?;
        let bytes: u64 = stored.iter().map(|s| s.size).sum();
        let indexed = stored.iter().filter(|s| s.indexed).count();
        Ok(serde_json::json!({
            "path": base.display().to_string(),
            "absolute_path": fs::canonicalize(base).ok().map(|p| p.display().to_string()),
            "exists": exists,
            "organize_by_date": self.layout.organize_by_date(),
            "compression": self.layout.ext() == Ext::JsonGz,
            "max_file_size": self.max_file_size,
            "file_permissions": format!("0o{:03o}", self.file_mode),
            "dir_permissions": format!("0o{:03o}", self.dir_mode),
            "vcons": stored.len(),
            "bytes": bytes,
            "indexed": indexed,
            "flat": stored.len() - indexed,
        }))
    }

    fn do_provision(&self, request: &ProvisionRequest) -> Result<serde_json::Value, Error> {
        let base = self.layout.base();
        let removed = if request.recreate {
            Some(self.remove_all()?)
        } else {
            None
        };
        let existed = base.is_dir();
        let mut sync = DirSync::default();
        ensure_dir(base, base, self.dir_mode, &mut sync)?;
        sync.sync_or_first_error()?;
        let report = index::build(&self.layout, self.dir_mode)?;
        Ok(serde_json::json!({
            "path": base.display().to_string(),
            "created": !existed,
            "removed": removed,
            "index": {
                "added": report.added,
                "removed": report.removed,
                "entries": report.entries,
            },
        }))
    }

    fn do_list(&self, request: &ListRequest) -> Result<ListPage, Error> {
        let limit = match usize::try_from(request.limit) {
            Ok(0) | Err(_) => DEFAULT_PAGE,
            Ok(n) => n,
        };
        let mut stored = self.stored()?;
        // Newest written first (as the Python module's `list_vcons`), then by uuid, so the order
        // is total and a cursor is a position in it.
        stored.sort_by(|a, b| {
            b.modified_ns
                .cmp(&a.modified_ns)
                .then_with(|| a.uuid.cmp(&b.uuid))
        });
        let start = match &request.after {
            None => 0,
            Some(cursor) => {
                let (after_ns, after_uuid) = parse_cursor(cursor)?;
                stored.partition_point(|s| {
                    s.modified_ns > after_ns
                        || (s.modified_ns == after_ns && s.uuid.as_str() <= after_uuid)
                })
            }
        };
        let page: Vec<&Stored> = stored.iter().skip(start).take(limit).collect();
        let next = match page.last() {
            Some(last) if start + page.len() < stored.len() => Some(cursor_of(last)),
            _ => None,
        };
        Ok(ListPage {
            uuids: page.iter().map(|s| s.uuid.clone()).collect(),
            next,
        })
    }
}

/// Removes the data files and old temporary files directly in `dir` (see
/// [`FileStorage::remove_all`]), collecting the uuids removed.
fn sweep(
    dir: &Path,
    now: SystemTime,
    sync: &mut DirSync,
    removed: &mut HashSet<String>,
) -> Result<(), Error> {
    for (name, is_dir) in read_dir_names(dir)? {
        if is_dir {
            continue;
        }
        let path = dir.join(&name);
        if let Some((uuid, _)) = parse_data_name(&name) {
            if remove_if_exists(&path)? {
                removed.insert(uuid.to_owned());
                sync.add(dir.to_path_buf());
            }
        } else if is_temp_name(&name) && is_old(&path, now) && remove_if_exists(&path)? {
            sync.add(dir.to_path_buf());
        }
    }
    Ok(())
}

/// Refuses a uuid that is not canonical before it becomes part of a path.
fn check_uuid(uuid: &str) -> Result<(), Error> {
    if is_canonical_uuid(uuid) {
        Ok(())
    } else {
        Err(Error::BadUuid(uuid.to_owned()))
    }
}

/// Whether a file was last changed longer ago than [`STALE_TEMP_AGE`].
fn is_old(path: &Path, now: SystemTime) -> bool {
    fs::symlink_metadata(path)
        .and_then(|meta| meta.modified())
        .is_ok_and(|modified| {
            now.duration_since(modified)
                .is_ok_and(|age| age > STALE_TEMP_AGE)
        })
}

/// The cursor after `stored`: its modification time and uuid, the sort key of `list`.
fn cursor_of(stored: &Stored) -> String {
    format!("{}:{}", stored.modified_ns, stored.uuid)
}

fn parse_cursor(cursor: &str) -> Result<(u128, &str), Error> {
    cursor
        .split_once(':')
        .and_then(|(ns, uuid)| Some((ns.parse().ok()?, uuid)))
        .filter(|(_, uuid)| is_canonical_uuid(uuid))
        .ok_or_else(|| Error::BadCursor(cursor.to_owned()))
}

impl Storage for FileStorage {
    fn save(&self, record: &VconRecord<'_>) -> Result<(), StorageError> {
        let mut pending = self.write_one(record)?;
        pending.dirs.sync_or_first_error()?;
        let mut sync = DirSync::default();
        self.finish(&pending, &mut sync)?;
        sync.sync_or_first_error()?;
        Ok(())
    }

    fn get(&self, uuid: &str) -> Result<Option<Vec<u8>>, StorageError> {
        Ok(self.locate(uuid, |l| self.read(l))?.map(|(_, json)| json))
    }

    fn delete(&self, uuid: &str) -> Result<bool, StorageError> {
        let mut sync = DirSync::default();
        let removed = self.delete_one(uuid, &mut sync)?;
        sync.sync_or_first_error()?;
        Ok(removed)
    }

    fn exists(&self, uuid: &str) -> Result<bool, StorageError> {
        Ok(self.locate(uuid, |l| self.is_stored(l))?.is_some())
    }

    /// Writes every file, then syncs each directory once for the whole batch (the point of
    /// batching here: one fsync per date directory instead of one per vCon).
    fn save_many(&self, records: &[VconRecord<'_>]) -> BatchResult {
        let written: Vec<Result<Pending, Error>> =
            records.iter().map(|r| self.write_one(r)).collect();
        let mut all = DirSync::default();
        for pending in written.iter().flatten() {
            all.extend(&pending.dirs);
        }
        let failed: Vec<(PathBuf, StorageError)> = all
            .sync()
            .into_iter()
            .map(|(dir, err)| (dir, StorageError::from(err)))
            .collect();
        let mut cleanup = DirSync::default();
        let results = written
            .into_iter()
            .map(|result| {
                let pending = result?;
                // A record is durable only if every directory it changed was synced.
                if let Some((_, err)) = failed.iter().find(|(dir, _)| pending.dirs.contains(dir)) {
                    return Err(err.clone());
                }
                Ok(self.finish(&pending, &mut cleanup)?)
            })
            .collect();
        cleanup.sync_or_first_error()?;
        Ok(results)
    }

    fn get_many(&self, uuids: &[&str]) -> Result<Vec<Option<Vec<u8>>>, StorageError> {
        uuids.iter().map(|uuid| self.get(uuid)).collect()
    }

    fn delete_many(&self, uuids: &[&str]) -> Result<Vec<bool>, StorageError> {
        let mut sync = DirSync::default();
        let removed = uuids
            .iter()
            .map(|uuid| self.delete_one(uuid, &mut sync))
            .collect::<Result<Vec<bool>, Error>>()?;
        sync.sync_or_first_error()?;
        Ok(removed)
    }

    fn list(&self, request: &ListRequest) -> Result<ListPage, StorageError> {
        Ok(self.do_list(request)?)
    }

    fn count(&self) -> Result<u64, StorageError> {
        Ok(self.stored()?.len() as u64)
    }

    fn status(&self) -> Result<serde_json::Value, StorageError> {
        Ok(self.check_status()?)
    }

    fn provision(&self, request: &ProvisionRequest) -> Result<serde_json::Value, StorageError> {
        Ok(self.do_provision(request)?)
    }

    fn clear(&self) -> Result<u64, StorageError> {
        Ok(self.remove_all()?)
    }
}

impl StoragePlugin for FileStorage {
    type Options = Options;
    const NAME: &'static str = "file";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const DESCRIPTION: &'static str =
        "one JSON file per vCon in a directory, readable by the Python server's storage.file";
    const CAPABILITIES: Capabilities = Capabilities::GET
        .union(Capabilities::DELETE)
        .union(Capabilities::EXISTS)
        .union(Capabilities::BATCH)
        .union(Capabilities::LIST)
        .union(Capabilities::COUNT)
        .union(Capabilities::STATUS)
        .union(Capabilities::PROVISION)
        .union(Capabilities::CLEAR);

    fn option_defaults() -> serde_json::Value {
        let defaults = Options::default();
        serde_json::json!({
            "path": defaults.path.display().to_string(),
            "organize_by_date": defaults.organize_by_date,
            "compression": defaults.compression,
            "max_file_size": defaults.max_file_size,
            "file_permissions": defaults.file_permissions.to_string(),
            "dir_permissions": defaults.dir_permissions.to_string(),
        })
    }

    fn open(options: Options, _: &OpenContext) -> Result<Self, StorageError> {
        Self::open_with(options)
    }
}
