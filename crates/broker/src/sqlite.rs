//! The embedded broker: one SQLite file in WAL mode.
//!
//! WAL lets `vcon-host ingest` (another process) write while `vcon-host run` works, and makes a
//! commit a sequential append, so each batch costs one fsync-free write at `synchronous=NORMAL`
//! (durable across a process crash; a power loss may drop the last commits, as with Redis'
//! default persistence). One connection behind a mutex: SQLite serialises writers anyway, and
//! every operation here is a handful of indexed statements.
//!
//! A document of 64 KiB or more is appended to a segment file beside the database instead of
//! kept in its row ([`crate::documents`]): SQLite would write it twice (WAL, then database) and
//! fsync it twice.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension};

use crate::checkpoint::Checkpointer;
use crate::documents::{
    DocumentFile, Documents, ReadError, StagedDocument, WrittenDocument, LARGE_DOCUMENT_BYTES,
};
use crate::empty_lists::EmptyLists;
use crate::{
    now_us, BackgroundWork, Broker, BrokerError, Claim, ClaimedItem, Finish, HotVcon, IngestBatch,
    ItemId, ItemKey, ListEntry, ListingPage,
};

/// The schema, applied idempotently on open.
const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS vcons (
    uuid TEXT PRIMARY KEY,
    json BLOB NOT NULL,
    created_at_us INTEGER NOT NULL,
    created_at_offset_s INTEGER NOT NULL,
    updated_at_us INTEGER NOT NULL,
    subject TEXT,
    expires_at_us INTEGER,
    document_file TEXT,
    document_len INTEGER,
    document_crc32 INTEGER,
    document_offset INTEGER
);
CREATE INDEX IF NOT EXISTS vcons_expiry ON vcons(expires_at_us) WHERE expires_at_us IS NOT NULL;
CREATE TABLE IF NOT EXISTS list_items (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    list TEXT NOT NULL,
    uuid TEXT NOT NULL,
    owner TEXT,
    note TEXT,
    added_at_us INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS list_items_queue ON list_items(list, owner, id);
CREATE INDEX IF NOT EXISTS list_items_owner ON list_items(owner) WHERE owner IS NOT NULL;
CREATE TABLE IF NOT EXISTS listing (
    uuid TEXT PRIMARY KEY,
    created_at_us INTEGER NOT NULL,
    terms TEXT
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS listing_created ON listing(created_at_us, uuid);
CREATE TABLE IF NOT EXISTS search_terms (
    term TEXT NOT NULL,
    uuid TEXT NOT NULL,
    PRIMARY KEY (term, uuid)
) WITHOUT ROWID;
";

/// A file made before `listing.terms` existed gets the column, filled from `search_terms`
/// through the old index by uuid, which is then dropped. Why the column: replacing or forgetting
/// a vCon's terms then finds each by `search_terms`' own key, so an ingest no longer writes a
/// second index entry per term (a 5 KB vCon's commit appends 19.5 WAL pages instead of 21.2 in
/// `cargo xtask bench api -- broker-only`, and makes five B-tree inserts fewer). Run in its own `IMMEDIATE` transaction after [`SCHEMA`],
/// so two processes opening an old file migrate it once.
const MIGRATE_LISTING_TERMS: &str = "
ALTER TABLE listing ADD COLUMN terms TEXT;
UPDATE listing SET terms =
    (SELECT json_group_array(term) FROM search_terms s WHERE s.uuid = listing.uuid);
DROP INDEX IF EXISTS search_terms_uuid;
";

/// A file made before large documents were kept as files gets the columns that name them.
/// Its rows keep their documents inline, which reads the same.
const MIGRATE_DOCUMENT_FILES: &str = "
ALTER TABLE vcons ADD COLUMN document_file TEXT;
ALTER TABLE vcons ADD COLUMN document_len INTEGER;
ALTER TABLE vcons ADD COLUMN document_crc32 INTEGER;
";

/// A file made while each large document had a file of its own gets the column that says where
/// in a segment a document starts. Its rows keep naming their own files (no offset), which read
/// as before.
const MIGRATE_DOCUMENT_OFFSET: &str = "ALTER TABLE vcons ADD COLUMN document_offset INTEGER;";

/// Each change of the schema since the first release: the column it adds, and the statements
/// that bring an older file to it.
const MIGRATIONS: [(&str, &str, &str); 3] = [
    ("listing", "terms", MIGRATE_LISTING_TERMS),
    ("vcons", "document_file", MIGRATE_DOCUMENT_FILES),
    ("vcons", "document_offset", MIGRATE_DOCUMENT_OFFSET),
];

/// Applied after [`MIGRATIONS`], which add the column it indexes. Finds the rows that name a
/// segment ([`names_document_file`], before a segment is removed); only large vCons have an
/// entry.
const DOCUMENT_FILE_INDEX: &str = "CREATE INDEX IF NOT EXISTS vcons_document_file
    ON vcons(document_file) WHERE document_file IS NOT NULL";

/// Deletes the search terms `listing.terms` records for uuid `?1`, each by its own key.
const DELETE_LISTED_TERMS: &str = "DELETE FROM search_terms WHERE uuid = ?1 AND term IN
    (SELECT value FROM json_each((SELECT terms FROM listing WHERE uuid = ?1)))";

/// Deletes uuid `?1`'s hot copy, answering the document file it named.
const DELETE_VCON: &str = "DELETE FROM vcons WHERE uuid = ?1 RETURNING document_file";

/// The page size of a new broker file. Half SQLite's default: a commit writes each page it
/// changes whole, to the WAL and again at the checkpoint, and a `POST /vcon` changes a few
/// hundred bytes in each of about ten B-trees, so a 5 KB vCon's commit appends 23.6 pages of
/// 2 KiB (47 KB) instead of 19.5 of 4 KiB (80 KB) (`cargo xtask bench api -- broker-only`).
/// Small pages used to make large vCons slower (twice the overflow pages), but those are
/// files now ([`crate::documents`]). A file made with another page size keeps it.
const PAGE_SIZE: i64 = 2048;

/// Statements the broker's connection keeps prepared.
const STATEMENT_CACHE: usize = 64;

/// SQL true for a `vcons` row whose uuid still waits in (or is claimed from) a list other than a
/// dead-letter list: such a vCon does not expire, for reads and for purges alike. A macro so
/// both statements stay `&'static str` built by `concat!`.
macro_rules! still_waiting {
    () => {
        "EXISTS (SELECT 1 FROM list_items li \
         WHERE li.uuid = vcons.uuid AND li.list NOT LIKE 'DLQ:%')"
    };
}

/// The embedded SQLite broker.
#[derive(Debug)]
pub struct SqliteBroker {
    path: PathBuf,
    /// Shared with the checkpoint thread, which holds it to finish a checkpoint with no commit
    /// in between.
    conn: Arc<Mutex<Connection>>,
    /// Large documents, in segment files beside the database.
    documents: Arc<Documents>,
    /// Checkpoints the WAL off the request path while `run` holds the broker; stopped first
    /// when the handle is dropped ([`Drop for SqliteBroker`](SqliteBroker)).
    checkpointer: Option<Checkpointer>,
    /// Held by `vcon-host run` so two hosts never recover each other's claims.
    run_lock: Option<std::fs::File>,
    /// Prefixes this handle's claim owners, so [`Broker::requeue_abandoned`] can tell this
    /// run's claims (alive) from earlier runs' (abandoned: the run lock says they are gone).
    run_id: String,
    /// Lists an idle worker's claim found empty, so its next polls take no transaction.
    empty_lists: EmptyLists,
    /// Set while the checkpoint thread works ([`Broker::background_work`]).
    background: BackgroundWork,
}

/// Opens the broker's file through `sqlite-wal-vfs`, which hands each commit's WAL frames to the
/// kernel in one write instead of two per page (a `POST /vcon` commit changes about twenty
/// pages).
pub(crate) fn connect(path: &Path) -> Result<Connection, BrokerError> {
    sqlite_wal_vfs::open(path).map_err(|source| BrokerError::Sqlite {
        path: path.display().to_string(),
        source,
    })
}

fn expiry(ttl: Option<Duration>) -> Option<i64> {
    ttl.map(|ttl| now_us().saturating_add(i64::try_from(ttl.as_micros()).unwrap_or(i64::MAX)))
}

impl SqliteBroker {
    /// Opens (creating if needed) the broker at `path` for a client: `ingest`, `get`, the API.
    pub fn open(path: &Path) -> Result<Self, BrokerError> {
        Self::open_with_lock(path, false)
    }

    /// Opens the broker for `vcon-host run`, taking its exclusive run lock: a second host on
    /// the same file would recover (steal) the first one's in-flight claims.
    pub fn open_for_run(path: &Path) -> Result<Self, BrokerError> {
        Self::open_with_lock(path, true)
    }

    fn open_with_lock(path: &Path, run: bool) -> Result<Self, BrokerError> {
        let io = |source| BrokerError::Io {
            path: path.display().to_string(),
            source,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let run_lock = if run {
            let lock_path = path.with_extension("run.lock");
            let file = std::fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&lock_path)
                .map_err(io)?;
            match file.try_lock() {
                Ok(()) => Some(file),
                Err(std::fs::TryLockError::WouldBlock) => {
                    return Err(BrokerError::InUse {
                        path: path.display().to_string(),
                        lock: lock_path.display().to_string(),
                    })
                }
                Err(std::fs::TryLockError::Error(err)) => return Err(io(err)),
            }
        } else {
            None
        };
        let sql = |source| BrokerError::Sqlite {
            path: path.display().to_string(),
            source,
        };
        let conn = connect(path)?;
        conn.busy_timeout(Duration::from_secs(10)).map_err(sql)?;
        // Room for every statement this broker caches (rusqlite keeps 16 by default, fewer than
        // the API's and the workers' together, so they would evict and re-prepare each other).
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        // Only a new, empty file takes it; an existing one keeps its own.
        conn.pragma_update(None, "page_size", PAGE_SIZE)
            .map_err(sql)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(sql)?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(sql)?;
        conn.execute_batch(SCHEMA).map_err(sql)?;
        migrate(&conn).map_err(sql)?;
        conn.execute_batch(DOCUMENT_FILE_INDEX).map_err(sql)?;
        // Without a checkpoint thread to fsync documents in rounds, each is fsynced before its
        // commit.
        let documents = Arc::new(Documents::new(path, !run));
        if run {
            sweep_documents(&conn, &documents);
            // The checkpoint thread does it instead of the committing request (checkpoint.rs).
            conn.pragma_update(None, "wal_autocheckpoint", 0)
                .map_err(sql)?;
        }
        let conn = Arc::new(Mutex::new(conn));
        let background = BackgroundWork::default();
        let checkpointer = if run {
            Some(Checkpointer::start(
                path,
                Arc::clone(&conn),
                Arc::clone(&documents),
                background.clone(),
            )?)
        } else {
            None
        };
        Ok(Self {
            path: path.to_owned(),
            conn,
            documents,
            checkpointer,
            run_lock,
            run_id: format!("{:016x}", rand::random::<u64>()),
            empty_lists: EmptyLists::default(),
            background,
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn conn(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock cannot leave a transaction half-applied (rusqlite rolls
        // back on drop), so the connection is safe to reuse.
        self.conn
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn err(&self, source: rusqlite::Error) -> BrokerError {
        BrokerError::Sqlite {
            path: self.path.display().to_string(),
            source,
        }
    }

    /// Runs `body` in an IMMEDIATE transaction (takes the write lock up front, so two writers
    /// never deadlock upgrading a read lock). `BEGIN` and `COMMIT` are cached statements rather
    /// than rusqlite's `Transaction`, which parses both anew each time (about 3 % of the API's
    /// samples in a `perf record` of `cargo xtask bench api`).
    fn write<T>(
        &self,
        body: impl FnOnce(&Connection) -> rusqlite::Result<T>,
    ) -> Result<T, BrokerError> {
        let conn = self.conn();
        let value = Self::transaction(&conn, body).map_err(|e| self.err(e))?;
        // Any commit may have pushed to a list: counted before the connection is let go.
        self.empty_lists.wrote();
        Ok(value)
    }

    /// `body` in an IMMEDIATE transaction on `conn`, committed if it succeeds.
    fn transaction<T>(
        conn: &Connection,
        body: impl FnOnce(&Connection) -> rusqlite::Result<T>,
    ) -> rusqlite::Result<T> {
        let transaction = OpenTransaction::begin(conn)?;
        let value = body(conn)?;
        transaction.commit()?;
        Ok(value)
    }

    /// The rows of `uuids` that have not expired at `now` (or are still waiting on a list),
    /// with the file each names, read while holding the connection.
    fn select_vcons(&self, uuids: &[&str], now: i64) -> Result<Vec<Option<VconRow>>, BrokerError> {
        let conn = self.conn();
        let mut select = conn
            .prepare_cached(concat!(
                "SELECT uuid, json, created_at_us, created_at_offset_s, updated_at_us, subject,
                    document_file, document_len, document_crc32, document_offset
                 FROM vcons WHERE uuid = ?1
                 AND (expires_at_us IS NULL OR expires_at_us > ?2 OR ",
                still_waiting!(),
                ")"
            ))
            .map_err(|e| self.err(e))?;
        uuids
            .iter()
            .map(|uuid| {
                select
                    .query_row(params![uuid, now], row_to_vcon)
                    .optional()
                    .map_err(|e| self.err(e))
            })
            .collect()
    }

    /// The vCon of `row` with its document read from the segment the row names, if it names
    /// one. The connection is not held, so a writer (of this process or another) may replace or
    /// delete the vCon meanwhile, and its segment be removed: a segment that is missing or not
    /// what the row recorded is only lost if the row, read again, still names it; otherwise the
    /// row read again is what is answered.
    fn with_document(
        &self,
        uuid: &str,
        mut row: Option<VconRow>,
        now: i64,
    ) -> Result<Option<HotVcon>, BrokerError> {
        // A vCon replaced at every look is given up after a few.
        for _ in 0..4 {
            let Some((vcon, file)) = row else {
                return Ok(None);
            };
            let Some(file) = file else {
                return Ok(Some(vcon));
            };
            let why = match self.documents.read(&file) {
                Ok(json) => {
                    return Ok(Some(HotVcon {
                        json: json.into(),
                        ..vcon
                    }))
                }
                Err(ReadError::Missing) => "its document's file is missing".to_owned(),
                Err(ReadError::Lost(why)) => why,
            };
            row = self.select_vcons(&[uuid], now)?.pop().flatten();
            if row.as_ref().and_then(|(_, again)| again.as_ref()) == Some(&file) {
                self.documents.report_lost(uuid, &why);
                return Ok(None);
            }
        }
        self.documents
            .report_lost(uuid, "it was replaced each time its document file was read");
        Ok(None)
    }

    /// Where each large document among `vcons` is, before the transaction that will record it
    /// (and outside the connection's lock): where [`Broker::stage_document`] wrote it, else
    /// where it is written now; `None` for a document kept in its row. On an error, the
    /// documents written here are given up and the staged ones given back.
    fn write_documents<'v>(
        &self,
        vcons: impl IntoIterator<Item = &'v HotVcon>,
    ) -> Result<Vec<Option<DocumentOf<'v>>>, BrokerError> {
        let mut files = Vec::new();
        for v in vcons {
            if v.json.len() < LARGE_DOCUMENT_BYTES {
                files.push(None);
                continue;
            }
            if let Some(staged) = v.staged.as_deref() {
                if let Some(file) = staged.take(&self.documents, v.json.len()) {
                    files.push(Some(DocumentOf::Staged(staged, file)));
                    continue;
                }
            }
            match self.write_document(&v.json) {
                Ok(file) => files.push(Some(DocumentOf::Written(file))),
                Err(err) => {
                    self.undo(&files);
                    return Err(err);
                }
            }
        }
        Ok(files)
    }

    /// Appends one large document to this handle's segment.
    fn write_document(&self, json: &[u8]) -> Result<WrittenDocument, BrokerError> {
        self.documents
            .write(json)
            .map_err(|source| BrokerError::Document {
                dir: self.documents.dir().display().to_string(),
                bytes: json.len(),
                source,
            })
    }

    /// Gives up the documents [`Self::write_documents`] wrote, and gives back the staged ones
    /// it took (their owners give them up when dropped).
    fn undo(&self, files: &[Option<DocumentOf<'_>>]) {
        let mut written = Vec::new();
        for file in files.iter().flatten() {
            match file {
                DocumentOf::Staged(staged, _) => staged.give_back(),
                DocumentOf::Written(written_now) => written.push(written_now.file.name.clone()),
            }
        }
        self.documents.remove(written);
    }

    /// [`Self::write`] for a transaction that records the documents `files` (undone if it
    /// fails) and may drop others: the body adds the segments its rows no longer name, which
    /// are given up once it is committed.
    fn write_with_documents<T>(
        &self,
        files: &[Option<DocumentOf<'_>>],
        body: impl FnOnce(&Connection, &mut Vec<String>) -> rusqlite::Result<T>,
    ) -> Result<T, BrokerError> {
        let mut unnamed = Vec::new();
        let written = match self.write(|tx| body(tx, &mut unnamed)) {
            Ok(value) => {
                self.documents.remove(unnamed);
                Ok(value)
            }
            Err(err) => {
                self.undo(files);
                Err(err)
            }
        };
        if self.checkpointer.is_none() {
            self.reclaim_documents();
        }
        written
    }

    /// Removes the segments given up that are no longer used. The checkpoint thread does it
    /// each round while `run` holds the broker; a handle without one (`ingest`, the CLI) after
    /// each write that gave one up, and when it is dropped.
    fn reclaim_documents(&self) {
        if self.documents.has_given_up() {
            let conn = self.conn();
            self.documents
                .reclaim(|name| names_document_file(&conn, name));
        }
    }
}

impl Drop for SqliteBroker {
    /// Stops appending to this handle's segment and removes it if no row names it (every
    /// document in it replaced or deleted, or none committed), so a handle leaves no segment
    /// for the next start's sweep. The checkpoint thread goes first: its last round fsyncs
    /// what is left, and until then it holds the segments it fsyncs.
    fn drop(&mut self) {
        self.documents.close();
        drop(self.checkpointer.take());
        if let Err(err) = self.documents.sync() {
            tracing::warn!(
                "fsyncing the broker documents in {}: {err}",
                self.documents.dir().display()
            );
        }
        self.reclaim_documents();
    }
}

/// Where a large document of an ingest is: staged before it, or written by it (and kept from
/// removal until the commit that names it, [`WrittenDocument`]).
enum DocumentOf<'v> {
    Staged(&'v StagedDocument, &'v DocumentFile),
    Written(WrittenDocument),
}

impl DocumentOf<'_> {
    fn file(&self) -> &DocumentFile {
        match self {
            Self::Staged(_, file) => file,
            Self::Written(written) => &written.file,
        }
    }
}

/// Brings a file made by an earlier version to the current [`SCHEMA`], one [`MIGRATIONS`] step
/// at a time, each in its own `IMMEDIATE` transaction so two processes opening an old file
/// apply it once.
fn migrate(conn: &Connection) -> rusqlite::Result<()> {
    let has_column = |table: &str, column: &str| {
        conn.query_row(
            "SELECT count(*) FROM pragma_table_info(?1) WHERE name = ?2",
            [table, column],
            |row| row.get::<_, i64>(0),
        )
        .map(|n| n > 0)
    };
    for (table, column, statements) in MIGRATIONS {
        if has_column(table, column)? {
            continue;
        }
        let transaction = OpenTransaction::begin(conn)?;
        // Another process may have migrated the file since the look above.
        if !has_column(table, column)? {
            conn.execute_batch(statements)?;
        }
        transaction.commit()?;
    }
    Ok(())
}

/// Whether a `vcons` row names the document file `name`: a segment is only removed once none
/// does.
pub(crate) fn names_document_file(conn: &Connection, name: &str) -> rusqlite::Result<bool> {
    conn.prepare_cached("SELECT EXISTS (SELECT 1 FROM vcons WHERE document_file = ?1)")?
        .query_row([name], |row| row.get(0))
}

/// Removes the document files a process left that died between writing a document and the
/// commit naming it, or that gave up a segment and stopped before removing it. At the start of
/// `run` only, and never fatal: a file left is only disk space.
fn sweep_documents(conn: &Connection, documents: &Documents) {
    match documents.sweep(|name| names_document_file(conn, name)) {
        Ok(0) => {}
        Ok(n) => tracing::info!(
            "removed {n} broker document files no vCon names (ingests that never committed, or \
             segments given up by a process that stopped) in {}",
            documents.dir().display()
        ),
        Err(err) => tracing::warn!(
            "sweeping the broker documents in {}: {err}",
            documents.dir().display()
        ),
    }
}

/// A transaction begun and not yet committed: rolled back when dropped before its commit (an
/// error or a panic in its body), so the connection is never left inside it.
struct OpenTransaction<'a> {
    conn: &'a Connection,
    committed: bool,
}

impl<'a> OpenTransaction<'a> {
    fn begin(conn: &'a Connection) -> rusqlite::Result<Self> {
        conn.prepare_cached("BEGIN IMMEDIATE")?.execute([])?;
        Ok(Self {
            conn,
            committed: false,
        })
    }

    fn commit(mut self) -> rusqlite::Result<()> {
        self.conn.prepare_cached("COMMIT")?.execute([])?;
        self.committed = true;
        Ok(())
    }
}

impl Drop for OpenTransaction<'_> {
    fn drop(&mut self) {
        if self.committed {
            return;
        }
        if let Err(err) = self.conn.execute_batch("ROLLBACK") {
            tracing::warn!("rolling back a broker transaction: {err}");
        }
    }
}

fn push_items(
    tx: &Connection,
    items: impl IntoIterator<Item = (impl AsRef<str>, impl AsRef<str>, Option<String>)>,
) -> rusqlite::Result<()> {
    let now = now_us();
    let mut insert = tx.prepare_cached(
        "INSERT INTO list_items (list, uuid, note, added_at_us) VALUES (?1, ?2, ?3, ?4)",
    )?;
    for (list, uuid, note) in items {
        insert.execute(params![list.as_ref(), uuid.as_ref(), note, now])?;
    }
    Ok(())
}

/// A `vcons` row: the vCon, with its document when the row keeps it, else the file it names.
type VconRow = (HotVcon, Option<DocumentFile>);

/// A `vcons` row as [`Broker::get_vcons`] selects it: the vCon, and the file its document is in
/// when it is not in the row.
fn row_to_vcon(row: &rusqlite::Row<'_>) -> rusqlite::Result<VconRow> {
    let file = match (row.get::<_, Option<String>>(6)?, row.get(7)?, row.get(8)?) {
        (Some(name), Some(len), Some(crc32)) => Some(DocumentFile {
            name,
            offset: row.get(9)?,
            len,
            crc32,
        }),
        _ => None,
    };
    let vcon = HotVcon {
        uuid: row.get(0)?,
        json: row.get::<_, Vec<u8>>(1)?.into(),
        created_at_us: row.get(2)?,
        created_at_offset_s: row.get(3)?,
        updated_at_us: row.get(4)?,
        subject: row.get(5)?,
        search_keys: Vec::new(),
        staged: None,
    };
    Ok((vcon, file))
}

/// What a write does to a `vcons` row's time to live.
#[derive(Clone, Copy)]
enum Expiry {
    /// Sets it (`None`: never expires).
    Set(Option<i64>),
    /// Leaves it as it is (a link's change to a vCon already stored).
    Keep,
}

/// Inserts or replaces a `vcons` row: its document inline, or the name of the file it was
/// written to. The file a replaced row named is added to `replaced`, to remove once the
/// transaction is in.
fn upsert_vcon(
    tx: &Connection,
    v: &HotVcon,
    file: Option<&DocumentFile>,
    expiry: Expiry,
    replaced: &mut Vec<String>,
) -> rusqlite::Result<()> {
    let old_file = tx
        .prepare_cached(
            "SELECT document_file FROM vcons WHERE uuid = ?1 AND document_file IS NOT NULL",
        )?
        .query_row([&v.uuid], |row| row.get::<_, String>(0))
        .optional()?;
    replaced.extend(old_file.filter(|old| file.is_none_or(|new| new.name != *old)));
    let json: &[u8] = if file.is_some() { &[] } else { &v.json };
    let name = file.map(|f| f.name.as_str());
    let len = file.map(|f| f.len);
    let crc32 = file.map(|f| f.crc32);
    let offset = file.and_then(|f| f.offset);
    let (expires, set_expiry) = match expiry {
        Expiry::Set(expires) => (expires, true),
        Expiry::Keep => (None, false),
    };
    tx.prepare_cached(
        "INSERT INTO vcons (uuid, json, created_at_us, created_at_offset_s, updated_at_us,
            subject, expires_at_us, document_file, document_len, document_crc32, document_offset)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?12)
         ON CONFLICT(uuid) DO UPDATE SET json = excluded.json,
            created_at_us = excluded.created_at_us,
            created_at_offset_s = excluded.created_at_offset_s,
            updated_at_us = excluded.updated_at_us, subject = excluded.subject,
            expires_at_us = CASE WHEN ?11 THEN excluded.expires_at_us ELSE vcons.expires_at_us END,
            document_file = excluded.document_file, document_len = excluded.document_len,
            document_crc32 = excluded.document_crc32,
            document_offset = excluded.document_offset",
    )?
    .execute(params![
        v.uuid,
        json,
        v.created_at_us,
        v.created_at_offset_s,
        v.updated_at_us,
        v.subject,
        expires,
        name,
        len,
        crc32,
        set_expiry,
        offset
    ])?;
    Ok(())
}

/// Runs a `DELETE ... RETURNING document_file`, adding the files the deleted rows named to
/// `removed` (given up once the transaction is in); answers how many rows went.
fn delete_vcon_rows(
    tx: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
    removed: &mut Vec<String>,
) -> rusqlite::Result<u64> {
    let mut statement = tx.prepare_cached(sql)?;
    let mut rows = statement.query(params)?;
    let mut count = 0;
    while let Some(row) = rows.next()? {
        count += 1;
        removed.extend(row.get::<_, Option<String>>(0)?);
    }
    Ok(count)
}

/// Records a vCon in the listing and replaces its search terms. A vCon not listed before has
/// no terms to replace (both are written and forgotten together), which spares a fresh vCon,
/// the common case, the look-up of old ones.
fn index(tx: &Connection, v: &HotVcon) -> rusqlite::Result<()> {
    let terms = serde_json::to_string(&v.search_keys)
        .map_err(|err| rusqlite::Error::ToSqlConversionFailure(Box::new(err)))?;
    let listed_before = tx
        .prepare_cached(
            "INSERT OR IGNORE INTO listing (uuid, created_at_us, terms) VALUES (?1, ?2, ?3)",
        )?
        .execute(params![v.uuid, v.created_at_us, terms])?
        == 0;
    if listed_before {
        tx.prepare_cached(DELETE_LISTED_TERMS)?.execute([&v.uuid])?;
        tx.prepare_cached("UPDATE listing SET created_at_us = ?2, terms = ?3 WHERE uuid = ?1")?
            .execute(params![v.uuid, v.created_at_us, terms])?;
    }
    for terms in v.search_keys.chunks(TERMS_PER_INSERT) {
        let mut insert = tx.prepare_cached(insert_terms_sql(terms.len()))?;
        for (i, term) in terms.iter().enumerate() {
            insert.raw_bind_parameter(i + 2, term)?;
        }
        insert.raw_bind_parameter(1, &v.uuid)?;
        insert.raw_execute()?;
    }
    Ok(())
}

/// Search terms written by one statement at most: a vCon's terms (two to four per party) go in
/// one or two statements instead of one each, with few distinct statements to cache.
const TERMS_PER_INSERT: usize = 8;

/// `INSERT OR IGNORE` of `count` terms (`?2`...) for one uuid (`?1`), for `1..=TERMS_PER_INSERT`;
/// built once, so the statement cache sees the same text each time.
fn insert_terms_sql(count: usize) -> &'static str {
    static SQL: OnceLock<Vec<String>> = OnceLock::new();
    let all = SQL.get_or_init(|| {
        (1..=TERMS_PER_INSERT)
            .map(|n| {
                let rows: Vec<String> = (2..n + 2).map(|p| format!("(?{p}, ?1)")).collect();
                format!(
                    "INSERT OR IGNORE INTO search_terms (term, uuid) VALUES {}",
                    rows.join(", ")
                )
            })
            .collect()
    });
    &all[count.clamp(1, TERMS_PER_INSERT) - 1]
}

/// Stores vCons (`files[i]`: where the `i`th one's document was written, if not inline),
/// indexes them and queues each on every list, inside `tx`.
fn ingest_in(
    tx: &Connection,
    vcons: &[HotVcon],
    files: &[Option<DocumentOf<'_>>],
    lists: &[String],
    expires: Option<i64>,
    replaced: &mut Vec<String>,
) -> rusqlite::Result<()> {
    for (v, file) in vcons.iter().zip(files) {
        upsert_vcon(
            tx,
            v,
            file.as_ref().map(DocumentOf::file),
            Expiry::Set(expires),
            replaced,
        )?;
        index(tx, v)?;
    }
    push_items(
        tx,
        lists
            .iter()
            .flat_map(|list| vcons.iter().map(move |v| (list, &v.uuid, None))),
    )
}

fn row_id(id: &ItemId) -> Option<i64> {
    match id.0 {
        ItemKey::Row(row) => Some(row),
        ItemKey::InList { .. } => None,
    }
}

impl Broker for SqliteBroker {
    fn ingest(
        &self,
        vcons: &[HotVcon],
        lists: &[String],
        ttl: Option<Duration>,
    ) -> Result<(), BrokerError> {
        self.ingest_batches(&[IngestBatch { vcons, lists, ttl }])
    }

    fn ingest_batches(&self, batches: &[IngestBatch<'_>]) -> Result<(), BrokerError> {
        let files = self.write_documents(batches.iter().flat_map(|b| b.vcons))?;
        self.write_with_documents(&files, |tx, replaced| {
            let mut files = files.as_slice();
            for b in batches {
                let (these, rest) = files.split_at(b.vcons.len());
                files = rest;
                ingest_in(tx, b.vcons, these, b.lists, expiry(b.ttl), replaced)?;
            }
            Ok(())
        })
    }

    fn is_local(&self) -> bool {
        true
    }

    fn background_work(&self) -> BackgroundWork {
        self.background.clone()
    }

    fn stage_document(&self, json: &[u8]) -> Result<Option<StagedDocument>, BrokerError> {
        if json.len() < LARGE_DOCUMENT_BYTES {
            return Ok(None);
        }
        let written = self.write_document(json)?;
        Ok(Some(StagedDocument::new(
            written,
            Arc::clone(&self.documents),
        )))
    }

    fn put_vcon(&self, v: &HotVcon) -> Result<(), BrokerError> {
        let files = self.write_documents([v])?;
        self.write_with_documents(&files, |tx, replaced| {
            upsert_vcon(
                tx,
                v,
                files[0].as_ref().map(DocumentOf::file),
                Expiry::Keep,
                replaced,
            )?;
            if v.search_keys.is_empty() {
                // Read back without its keys: keep the index as it is.
                return Ok(());
            }
            index(tx, v)
        })
    }

    fn get_vcons(&self, uuids: &[&str]) -> Result<Vec<Option<HotVcon>>, BrokerError> {
        let now = now_us();
        let rows = self.select_vcons(uuids, now)?;
        // The document files are read after the connection is let go: a file read from the
        // disk (its pages are dropped once it is synced, see `documents.rs`) takes a
        // millisecond or more, which every commit of this process would wait for.
        uuids
            .iter()
            .zip(rows)
            .map(|(uuid, row)| self.with_document(uuid, row, now))
            .collect()
    }

    fn delete_vcon(&self, uuid: &str) -> Result<bool, BrokerError> {
        self.write_with_documents(&[], |tx, removed| {
            Ok(delete_vcon_rows(tx, DELETE_VCON, [uuid], removed)? > 0)
        })
    }

    fn forget(&self, uuid: &str) -> Result<bool, BrokerError> {
        self.write_with_documents(&[], |tx, removed| {
            tx.execute(DELETE_LISTED_TERMS, [uuid])?;
            tx.execute("DELETE FROM listing WHERE uuid = ?1", [uuid])?;
            Ok(delete_vcon_rows(tx, DELETE_VCON, [uuid], removed)? > 0)
        })
    }

    fn list_uuids(&self, page: &ListingPage) -> Result<Vec<String>, BrokerError> {
        let conn = self.conn();
        let mut select = conn
            .prepare_cached(
                "SELECT uuid FROM listing WHERE created_at_us >= ?1 AND created_at_us <= ?2
                 ORDER BY created_at_us DESC, uuid DESC LIMIT ?3 OFFSET ?4",
            )
            .map_err(|e| self.err(e))?;
        let rows = select
            .query_map(
                params![
                    page.since_us.unwrap_or(i64::MIN),
                    page.until_us.unwrap_or(i64::MAX),
                    i64::try_from(page.limit).unwrap_or(i64::MAX),
                    i64::try_from(page.offset).unwrap_or(i64::MAX)
                ],
                |row| row.get(0),
            )
            .and_then(|rows| rows.collect::<rusqlite::Result<Vec<String>>>())
            .map_err(|e| self.err(e))?;
        Ok(rows)
    }

    fn search(&self, keys: &[String]) -> Result<Vec<String>, BrokerError> {
        let Some((first, rest)) = keys.split_first() else {
            return Ok(Vec::new());
        };
        let conn = self.conn();
        let mut members = conn
            .prepare_cached("SELECT uuid FROM search_terms WHERE term = ?1 ORDER BY uuid")
            .map_err(|e| self.err(e))?;
        let mut set = |term: &str| {
            members
                .query_map([term], |row| row.get::<_, String>(0))
                .and_then(|rows| rows.collect::<rusqlite::Result<Vec<String>>>())
                .map_err(|e| self.err(e))
        };
        let mut found = set(first)?;
        for term in rest {
            let other: std::collections::HashSet<String> = set(term)?.into_iter().collect();
            found.retain(|uuid| other.contains(uuid));
        }
        Ok(found)
    }

    fn expire_vcon(&self, uuid: &str, ttl: Option<Duration>) -> Result<bool, BrokerError> {
        let expires = expiry(ttl);
        self.write(|tx| {
            tx.execute(
                "UPDATE vcons SET expires_at_us = ?2 WHERE uuid = ?1",
                params![uuid, expires],
            )
            .map(|n| n > 0)
        })
    }

    fn push(&self, list: &str, uuids: &[&str]) -> Result<(), BrokerError> {
        self.write(|tx| push_items(tx, uuids.iter().map(|u| (list, *u, None))))
    }

    fn claim(
        &self,
        lists: &[String],
        owner: &str,
        max: usize,
    ) -> Result<Option<Claim>, BrokerError> {
        if self.empty_lists.still_empty(lists) {
            return Ok(None);
        }
        let max = i64::try_from(max.max(1)).unwrap_or(i64::MAX);
        let owner = format!("{}/{owner}", self.run_id);
        // Not through `write`: taking items pushes none, so it leaves the count of commits
        // as it is.
        let conn = self.conn();
        let writes = self.empty_lists.writes();
        let claimed = Self::transaction(&conn, |tx| {
            let mut claim = tx.prepare_cached(
                "UPDATE list_items SET owner = ?1
                 WHERE id IN (SELECT id FROM list_items WHERE list = ?2 AND owner IS NULL
                              ORDER BY id LIMIT ?3)
                 RETURNING id, uuid",
            )?;
            for list in lists {
                let mut items: Vec<ClaimedItem> = claim
                    .query_map(params![owner, list, max], |row| {
                        Ok(ClaimedItem {
                            id: ItemId(ItemKey::Row(row.get(0)?)),
                            uuid: row.get(1)?,
                        })
                    })?
                    .collect::<rusqlite::Result<_>>()?;
                if !items.is_empty() {
                    // RETURNING gives no order guarantee; process oldest first.
                    items.sort_by(|a, b| a.id.cmp(&b.id));
                    return Ok(Some(Claim {
                        list: list.clone(),
                        items,
                    }));
                }
            }
            Ok(None)
        })
        .map_err(|e| self.err(e))?;
        if claimed.is_none() {
            self.empty_lists.found_empty(lists, writes);
        }
        Ok(claimed)
    }

    fn finish(&self, items: &[ItemId], finish: &Finish) -> Result<(), BrokerError> {
        self.write(|tx| {
            let mut delete = tx.prepare_cached("DELETE FROM list_items WHERE id = ?1")?;
            for id in items.iter().filter_map(row_id) {
                delete.execute([id])?;
            }
            push_items(
                tx,
                finish
                    .pushes
                    .iter()
                    .map(|(list, uuid)| (list, uuid, None))
                    .chain(
                        finish
                            .dead_letters
                            .iter()
                            .map(|d| (&d.list, &d.uuid, Some(d.note.clone()))),
                    ),
            )
        })
    }

    fn requeue_abandoned(&self) -> Result<u64, BrokerError> {
        if self.run_lock.is_none() {
            // A client cannot know whether the running host's claims are alive.
            return Ok(0);
        }
        // Released items keep their ids, so they are claimed again before newer ones: the
        // front of the list, as the Redis broker puts them.
        let mine = format!("{}/%", self.run_id);
        self.write(|tx| {
            tx.execute(
                "UPDATE list_items SET owner = NULL WHERE owner IS NOT NULL AND owner NOT LIKE ?1",
                [mine],
            )
            .map(|n| n as u64)
        })
    }

    fn pop_back(&self, list: &str, count: usize) -> Result<Vec<String>, BrokerError> {
        let count = i64::try_from(count).unwrap_or(i64::MAX);
        self.write(|tx| {
            let mut pop = tx.prepare_cached(
                "DELETE FROM list_items WHERE id IN (SELECT id FROM list_items
                   WHERE list = ?1 AND owner IS NULL ORDER BY id DESC LIMIT ?2)
                 RETURNING id, uuid",
            )?;
            let mut popped: Vec<(i64, String)> = pop
                .query_map(params![list, count], |row| Ok((row.get(0)?, row.get(1)?)))?
                .collect::<rusqlite::Result<_>>()?;
            popped.sort_by_key(|(id, _)| std::cmp::Reverse(*id));
            Ok(popped.into_iter().map(|(_, uuid)| uuid).collect())
        })
    }

    fn len(&self, list: &str) -> Result<u64, BrokerError> {
        self.conn()
            .prepare_cached("SELECT count(*) FROM list_items WHERE list = ?1")
            .and_then(|mut s| s.query_row([list], |row| row.get::<_, i64>(0)))
            .map(|n| n as u64)
            .map_err(|e| self.err(e))
    }

    fn entries(&self, list: &str, limit: usize) -> Result<Vec<ListEntry>, BrokerError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let conn = self.conn();
        let mut select = conn
            .prepare_cached(
                "SELECT id, uuid, note, added_at_us FROM list_items WHERE list = ?1
                 ORDER BY id LIMIT ?2",
            )
            .map_err(|e| self.err(e))?;
        let rows = select
            .query_map(params![list, limit], |row| {
                Ok(ListEntry {
                    id: ItemId(ItemKey::Row(row.get(0)?)),
                    uuid: row.get(1)?,
                    note: row.get(2)?,
                    added_at_us: row.get(3)?,
                })
            })
            .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
            .map_err(|e| self.err(e))?;
        Ok(rows)
    }

    fn remove_entry(&self, id: &ItemId) -> Result<bool, BrokerError> {
        let Some(id) = row_id(id) else {
            return Ok(false);
        };
        self.write(|tx| {
            tx.execute("DELETE FROM list_items WHERE id = ?1", [id])
                .map(|n| n > 0)
        })
    }

    fn lists(&self) -> Result<Vec<(String, u64)>, BrokerError> {
        let conn = self.conn();
        let mut select = conn
            .prepare_cached("SELECT list, count(*) FROM list_items GROUP BY list ORDER BY list")
            .map_err(|e| self.err(e))?;
        let rows = select
            .query_map([], |row| Ok((row.get(0)?, row.get::<_, i64>(1)? as u64)))
            .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
            .map_err(|e| self.err(e))?;
        Ok(rows)
    }

    fn purge_expired(&self) -> Result<u64, BrokerError> {
        let now = now_us();
        self.write_with_documents(&[], |tx, removed| {
            delete_vcon_rows(
                tx,
                // A vCon still waiting in (or claimed from) a list other than a dead-letter
                // list is kept past its time to live: the Python server loses a backlog that
                // outlives VCON_REDIS_EXPIRY; here the time to live only counts once nothing
                // waits on the vCon.
                concat!(
                    "DELETE FROM vcons WHERE expires_at_us IS NOT NULL AND expires_at_us <= ?1 \
                     AND NOT ",
                    still_waiting!(),
                    " RETURNING document_file"
                ),
                [now],
                removed,
            )
        })
    }
}
