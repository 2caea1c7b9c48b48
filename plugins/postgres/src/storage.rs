//! [`PostgresStorage`]: the pool, what is known about the table, and every operation of the
//! storage contract.
//!
//! Calls arrive on the host's blocking threads and block on the plugin's own small runtime
//! (`plugin_sdk::runtime`), where the connections' I/O tasks live. Because those tasks keep
//! reading their sockets, a connection the server closed (a restart) is known dead before it is
//! handed out again, at no cost (`RecyclingMethod::Fast`).

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, PoolError, RecyclingMethod, Runtime};
use plugin_sdk::{
    BatchResult, Capabilities, ErrorKind, ListPage, ListRequest, OpenContext, PartyQuery,
    ProvisionRequest, Storage, StorageError, StoragePlugin, VconRecord,
};
use uuid::Uuid;

use crate::error::Error;
use crate::options::{Options, Settings};
use crate::schema::{self, Statements, TableInfo};
use crate::values::{Document, Jsonb, Micros};

/// The page size of `list` when the request gives no limit.
pub const DEFAULT_PAGE_SIZE: u32 = 100;

/// The largest page `list` answers; a larger limit is lowered to it.
pub const MAX_PAGE_SIZE: u32 = 10_000;

/// The most document bytes sent in one statement of a `save_many`: a batch of large documents
/// (1,000 recorded calls of 270 KB) is split so that neither side holds hundreds of megabytes
/// of parameters at once. Each part is one statement, atomic on its own.
pub const MAX_STATEMENT_BYTES: usize = 32 * 1024 * 1024;

/// The most rows in one statement of a `save_many`.
pub const MAX_STATEMENT_ROWS: usize = 10_000;

/// A storage on one table of one PostgreSQL database.
pub struct PostgresStorage {
    pool: Pool,
    settings: Settings,
    /// `host:port/database as user`, for messages.
    target: String,
    /// The table's statements, once it is known to exist. Reset when the server says
    /// it is gone, so the next call looks again.
    statements: RwLock<Option<Arc<Statements>>>,
}

impl std::fmt::Debug for PostgresStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStorage")
            .field("target", &self.target)
            .field("table", &self.settings.table)
            .field("pool", &self.pool.status())
            .finish_non_exhaustive()
    }
}

/// A record checked and converted to the row's values, before any SQL runs.
#[derive(Debug, Clone, Copy)]
struct Row<'a> {
    uuid: &'a str,
    id: Uuid,
    created_at: Micros,
    subject: Option<&'a str>,
    json: &'a str,
}

impl<'a> Row<'a> {
    fn new(record: &VconRecord<'a>) -> Result<Self, Error> {
        let bad = |reason: String| Error::BadRecord {
            uuid: record.uuid.to_owned(),
            reason,
        };
        let id = Uuid::parse_str(record.uuid).map_err(|err| {
            bad(format!(
                "the uuid is not a UUID ({err}); the table's id column is of type uuid, as in \
                 the Python server's table"
            ))
        })?;
        let created_at = Micros::checked(record.created_at_us).ok_or_else(|| {
            bad(format!(
                "created_at ({} microseconds since 1970) is out of range",
                record.created_at_us
            ))
        })?;
        let json = std::str::from_utf8(record.json).map_err(|err| {
            bad(format!(
                "the document is not UTF-8 ({err}), so it cannot be JSON"
            ))
        })?;
        Ok(Self {
            uuid: record.uuid,
            id,
            created_at,
            subject: record.subject,
            json,
        })
    }
}

/// A uuid as asked for by `get`/`delete`/`exists`: one that is not a UUID cannot be stored, so
/// it is simply not there.
fn parse_uuid(uuid: &str) -> Option<Uuid> {
    Uuid::parse_str(uuid).ok()
}

/// The list cursor: the last row's `created_at` (microseconds) and id.
fn encode_cursor(created_at: Micros, id: Uuid) -> String {
    format!("{}_{id}", created_at.0)
}

fn decode_cursor(cursor: &str) -> Result<(Micros, Uuid), Error> {
    cursor
        .split_once('_')
        .and_then(|(micros, id)| Some((Micros(micros.parse().ok()?), Uuid::parse_str(id).ok()?)))
        .ok_or_else(|| Error::BadCursor(cursor.to_owned()))
}

/// The columns of a batch, as arrays for one `UNNEST` statement.
#[derive(Default)]
struct Columns<'a> {
    ids: Vec<Uuid>,
    created_at: Vec<Micros>,
    docs: Vec<Jsonb<'a>>,
    subjects: Vec<Option<&'a str>>,
}

impl PostgresStorage {
    /// Connects, looks at the table, and (with `create`) creates or adopts it.
    fn open_with(options: Options) -> Result<Self, StorageError> {
        let settings = options.check().map_err(Error::Options)?;
        let tls = crate::tls::connector(settings.sslmode, settings.sslrootcert.as_deref())
            .map_err(Error::Options)?;
        let manager = Manager::from_config(
            settings.pg.clone(),
            tls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let timeout = settings.connect_timeout;
        let pool = Pool::builder(manager)
            .max_size(settings.pool_size)
            .wait_timeout(Some(timeout))
            // The driver's own connect_timeout fires first with the real reason; this is the
            // backstop for a server that accepts the connection and then stalls.
            .create_timeout(Some(timeout + Duration::from_secs(1)))
            .recycle_timeout(Some(timeout))
            .runtime(Runtime::Tokio1)
            .build()
            .map_err(|err| Error::Internal(format!("cannot build the connection pool: {err}")))?;
        let storage = Self {
            target: settings.target(),
            pool,
            settings,
            statements: RwLock::new(None),
        };
        storage.run(storage.prepare_table())?;
        Ok(storage)
    }

    /// At open: connect once (so a wrong host, password or database is reported now, with its
    /// reason), then make the table usable as the options say.
    async fn prepare_table(&self) -> Result<(), Error> {
        let mut client = self.client().await?;
        let table = &self.settings.table;
        let found = schema::inspect(&**client, table).await?;
        let latest = schema::latest_version();
        let info = match found {
            Some(info) if info.version >= latest => {
                if info.version > latest {
                    tracing::warn!(
                        table = %table,
                        version = info.version,
                        latest,
                        "the table was migrated by a newer version of this plugin; using it as is"
                    );
                }
                Some(info)
            }
            Some(info) if self.settings.create => {
                // Not recorded (the Python server's table) or an older schema: record or
                // migrate it. A role without the rights to do so can still use the table.
                match schema::provision(&mut client, table, false).await {
                    Ok(done) => {
                        tracing::info!(
                            table = %table,
                            adopted = done.adopted_now,
                            applied = ?done.applied,
                            layout = done.info.layout.describe(),
                            "provisioned the vCon table at open"
                        );
                        Some(done.info)
                    }
                    Err(err) if err.kind() == ErrorKind::Unauthorized => {
                        tracing::warn!(
                            table = %table,
                            "cannot record the table in {}: {err}; using it as it is",
                            schema::MIGRATIONS_TABLE
                        );
                        Some(info)
                    }
                    Err(err) => return Err(err),
                }
            }
            Some(info) => {
                tracing::info!(
                    table = %table,
                    layout = info.layout.describe(),
                    version = info.version,
                    "using the table as it is (create: false)"
                );
                Some(info)
            }
            None if self.settings.create => {
                let done = schema::provision(&mut client, table, false).await?;
                tracing::info!(table = %table, applied = ?done.applied, "created the vCon table");
                Some(done.info)
            }
            None => {
                tracing::warn!(
                    table = %table,
                    "the table does not exist (create: false): run provision before storing"
                );
                None
            }
        };
        self.remember(info);
        Ok(())
    }

    /// Runs `future` on the plugin's runtime and converts its error; a missing table makes the
    /// storage forget what it knew, so the next call looks again.
    fn run<T>(&self, future: impl Future<Output = Result<T, Error>>) -> Result<T, StorageError> {
        plugin_sdk::runtime::block_on(future)?.map_err(|err| {
            if err.is_missing_table() {
                self.remember(None);
            }
            StorageError::from(err)
        })
    }

    fn remember(&self, info: Option<TableInfo>) {
        let statements =
            info.map(|info| Arc::new(Statements::new(&self.settings.table, info.layout)));
        *self
            .statements
            .write()
            .unwrap_or_else(PoisonError::into_inner) = statements;
    }

    /// A connection from the pool.
    async fn client(&self) -> Result<deadpool_postgres::Object, Error> {
        self.pool.get().await.map_err(|err| match err {
            PoolError::Timeout(_) => Error::PoolTimeout {
                target: self.target.clone(),
                waited: self.settings.connect_timeout,
            },
            PoolError::Backend(source) => Error::Connect {
                target: self.target.clone(),
                source,
            },
            PoolError::Closed => Error::Closed,
            other => Error::Internal(format!("the connection pool failed: {other}")),
        })
    }

    /// The table's statements, looking at the table first when it was not known to exist.
    async fn statements(
        &self,
        client: &deadpool_postgres::Object,
    ) -> Result<Arc<Statements>, Error> {
        if let Some(sql) = self
            .statements
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
        {
            return Ok(Arc::clone(sql));
        }
        match schema::inspect(&***client, &self.settings.table).await? {
            Some(info) => {
                let sql = Arc::new(Statements::new(&self.settings.table, info.layout));
                *self
                    .statements
                    .write()
                    .unwrap_or_else(PoisonError::into_inner) = Some(Arc::clone(&sql));
                Ok(sql)
            }
            None => Err(Error::NotProvisioned {
                table: self.settings.table.to_string(),
            }),
        }
    }

    /// A connection and the table's statements, for every operation on the table.
    async fn session(&self) -> Result<(deadpool_postgres::Object, Arc<Statements>), Error> {
        let client = self.client().await?;
        let sql = self.statements(&client).await?;
        Ok((client, sql))
    }

    async fn prepare(
        client: &deadpool_postgres::Object,
        sql: &str,
    ) -> Result<tokio_postgres::Statement, Error> {
        client
            .prepare_cached(sql)
            .await
            .map_err(|e| Error::sql("preparing a statement", e))
    }

    async fn save_one(&self, row: Row<'_>) -> Result<(), Error> {
        let (client, sql) = self.session().await?;
        Self::upsert_row(&client, &sql, row).await
    }

    async fn upsert_row(
        client: &deadpool_postgres::Object,
        sql: &Statements,
        row: Row<'_>,
    ) -> Result<(), Error> {
        let statement = Self::prepare(client, &sql.upsert_one).await?;
        client
            .execute(
                &statement,
                &[&row.id, &row.created_at, &Jsonb(row.json), &row.subject],
            )
            .await
            .map_err(|e| Error::sql(format!("saving vCon {}", row.uuid), e))?;
        Ok(())
    }

    /// A batch: each record is checked before any SQL runs; a uuid given twice is written once
    /// (its last version, as saving in order would leave it); the rest goes in as few
    /// `INSERT ... SELECT FROM UNNEST(arrays) ON CONFLICT DO UPDATE` statements as the size
    /// limits allow. When a statement is refused for its data (a document PostgreSQL cannot
    /// hold), its records are saved one by one so only the bad ones fail. A lost connection
    /// fails the whole batch; the host retries it (every write is an upsert).
    async fn save_batch(
        &self,
        records: &[VconRecord<'_>],
    ) -> Result<Vec<Result<(), StorageError>>, Error> {
        let mut results: Vec<Option<Result<(), StorageError>>> = vec![None; records.len()];
        let mut rows: Vec<(usize, Row<'_>)> = Vec::with_capacity(records.len());
        let mut last_of: HashMap<Uuid, usize> = HashMap::with_capacity(records.len());
        for (index, record) in records.iter().enumerate() {
            match Row::new(record) {
                Ok(row) => {
                    last_of.insert(row.id, index);
                    rows.push((index, row));
                }
                Err(err) => results[index] = Some(Err(err.into())),
            }
        }
        // Earlier copies of a uuid are answered by its last one.
        let (unique, repeated): (Vec<_>, Vec<_>) = rows
            .into_iter()
            .partition(|(index, row)| last_of.get(&row.id) == Some(index));

        if !unique.is_empty() {
            let (client, sql) = self.session().await?;
            let statement = Self::prepare(&client, &sql.upsert_many).await?;
            for part in split(&unique) {
                let mut columns = Columns::default();
                for (_, row) in part {
                    columns.ids.push(row.id);
                    columns.created_at.push(row.created_at);
                    columns.docs.push(Jsonb(row.json));
                    columns.subjects.push(row.subject);
                }
                let written = client
                    .execute(
                        &statement,
                        &[
                            &columns.ids,
                            &columns.created_at,
                            &columns.docs,
                            &columns.subjects,
                        ],
                    )
                    .await
                    .map_err(|e| Error::sql(format!("saving a batch of {} vCons", part.len()), e));
                match written {
                    Ok(_) => {
                        for (index, _) in part {
                            results[*index] = Some(Ok(()));
                        }
                    }
                    Err(err)
                        if matches!(err.kind(), ErrorKind::InvalidInput | ErrorKind::Conflict) =>
                    {
                        tracing::debug!("a batch statement was refused ({err}); saving one by one");
                        for (index, row) in part {
                            match Self::upsert_row(&client, &sql, *row).await {
                                Ok(()) => results[*index] = Some(Ok(())),
                                Err(err)
                                    if matches!(
                                        err.kind(),
                                        ErrorKind::InvalidInput | ErrorKind::Conflict
                                    ) =>
                                {
                                    results[*index] = Some(Err(err.into()));
                                }
                                Err(err) => return Err(err),
                            }
                        }
                    }
                    Err(err) => return Err(err),
                }
            }
        }
        for (index, row) in repeated {
            let answer = last_of
                .get(&row.id)
                .and_then(|last| results[*last].clone())
                .unwrap_or(Ok(()));
            results[index] = Some(answer);
        }
        Ok(results
            .into_iter()
            .map(|r| r.unwrap_or_else(|| Err(StorageError::internal("a batch record was lost"))))
            .collect())
    }

    async fn get_one(&self, uuid: &str) -> Result<Option<Vec<u8>>, Error> {
        let Some(id) = parse_uuid(uuid) else {
            return Ok(None);
        };
        let (client, sql) = self.session().await?;
        let statement = Self::prepare(&client, &sql.get).await?;
        let row = client
            .query_opt(&statement, &[&id])
            .await
            .map_err(|e| Error::sql(format!("reading vCon {uuid}"), e))?;
        match row {
            None => Ok(None),
            Some(row) => Ok(row
                .try_get::<_, Option<Document>>(0)
                .map_err(|e| Error::sql(format!("reading vCon {uuid}"), e))?
                .map(|doc| doc.0)),
        }
    }

    async fn get_batch(&self, uuids: &[&str]) -> Result<Vec<Option<Vec<u8>>>, Error> {
        let ids: Vec<Option<Uuid>> = uuids.iter().map(|u| parse_uuid(u)).collect();
        let wanted: Vec<Uuid> = ids
            .iter()
            .flatten()
            .copied()
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        if wanted.is_empty() {
            return Ok(vec![None; uuids.len()]);
        }
        let (client, sql) = self.session().await?;
        let statement = Self::prepare(&client, &sql.get_many).await?;
        let rows = client
            .query(&statement, &[&wanted])
            .await
            .map_err(|e| Error::sql(format!("reading {} vCons", wanted.len()), e))?;
        let mut found: HashMap<Uuid, Vec<u8>> = HashMap::with_capacity(rows.len());
        for row in rows {
            let id: Uuid = row
                .try_get(0)
                .map_err(|e| Error::sql("reading a batch", e))?;
            if let Some(doc) = row
                .try_get::<_, Option<Document>>(1)
                .map_err(|e| Error::sql("reading a batch", e))?
            {
                found.insert(id, doc.0);
            }
        }
        Ok(ids
            .iter()
            .map(|id| id.and_then(|id| found.get(&id).cloned()))
            .collect())
    }

    async fn delete_one(&self, uuid: &str) -> Result<bool, Error> {
        let Some(id) = parse_uuid(uuid) else {
            return Ok(false);
        };
        let (client, sql) = self.session().await?;
        let statement = Self::prepare(&client, &sql.delete).await?;
        let removed = client
            .execute(&statement, &[&id])
            .await
            .map_err(|e| Error::sql(format!("deleting vCon {uuid}"), e))?;
        Ok(removed > 0)
    }

    /// One statement; a uuid given twice answers `true` once, as deleting in order would.
    async fn delete_batch(&self, uuids: &[&str]) -> Result<Vec<bool>, Error> {
        let ids: Vec<Option<Uuid>> = uuids.iter().map(|u| parse_uuid(u)).collect();
        let wanted: Vec<Uuid> = ids.iter().flatten().copied().collect();
        if wanted.is_empty() {
            return Ok(vec![false; uuids.len()]);
        }
        let (client, sql) = self.session().await?;
        let statement = Self::prepare(&client, &sql.delete_many).await?;
        let rows = client
            .query(&statement, &[&wanted])
            .await
            .map_err(|e| Error::sql(format!("deleting {} vCons", wanted.len()), e))?;
        let mut removed: HashSet<Uuid> = HashSet::with_capacity(rows.len());
        for row in rows {
            removed.insert(
                row.try_get(0)
                    .map_err(|e| Error::sql("deleting a batch", e))?,
            );
        }
        Ok(ids
            .iter()
            .map(|id| id.is_some_and(|id| removed.remove(&id)))
            .collect())
    }

    async fn exists_one(&self, uuid: &str) -> Result<bool, Error> {
        let Some(id) = parse_uuid(uuid) else {
            return Ok(false);
        };
        let (client, sql) = self.session().await?;
        let statement = Self::prepare(&client, &sql.exists).await?;
        client
            .query_one(&statement, &[&id])
            .await
            .and_then(|row| row.try_get(0))
            .map_err(|e| Error::sql(format!("looking up vCon {uuid}"), e))
    }

    async fn list_page(&self, request: &ListRequest) -> Result<ListPage, Error> {
        let limit = match request.limit {
            0 => DEFAULT_PAGE_SIZE,
            n => n.min(MAX_PAGE_SIZE),
        };
        let after = request.after.as_deref().map(decode_cursor).transpose()?;
        let (client, sql) = self.session().await?;
        // One row more than the page, to know whether there is a next page.
        let fetch = i64::from(limit) + 1;
        let rows = match after {
            None => {
                let statement = Self::prepare(&client, &sql.list_first).await?;
                client.query(&statement, &[&fetch]).await
            }
            Some((created_at, id)) => {
                let statement = Self::prepare(&client, &sql.list_after).await?;
                client.query(&statement, &[&created_at, &id, &fetch]).await
            }
        }
        .map_err(|e| Error::sql("listing vCons", e))?;
        let mut page: Vec<(Uuid, Micros)> = rows
            .iter()
            .map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
            .collect::<Result<_, tokio_postgres::Error>>()
            .map_err(|e| Error::sql("listing vCons", e))?;
        let more = page.len() > limit as usize;
        page.truncate(limit as usize);
        let next = if more {
            page.last()
                .map(|(id, created_at)| encode_cursor(*created_at, *id))
        } else {
            None
        };
        Ok(ListPage {
            uuids: page.into_iter().map(|(id, _)| id.to_string()).collect(),
            next,
        })
    }

    /// vCons with a party holding every given field: JSON containment on the `parties` array,
    /// with the wanted party as a bound `jsonb` parameter.
    async fn query_parties(&self, query: &PartyQuery) -> Result<Vec<String>, Error> {
        let mut party = serde_json::Map::new();
        for (key, value) in [
            ("tel", &query.tel),
            ("mailto", &query.mailto),
            ("name", &query.name),
        ] {
            if let Some(value) = value {
                party.insert(key.to_owned(), serde_json::Value::String(value.clone()));
            }
        }
        if party.is_empty() {
            return Err(Error::BadQuery(
                "give at least one of tel, mailto and name".to_owned(),
            ));
        }
        let wanted = serde_json::Value::Array(vec![serde_json::Value::Object(party)]).to_string();
        let limit = (query.limit > 0).then(|| i64::from(query.limit));
        let (client, sql) = self.session().await?;
        let statement = Self::prepare(&client, &sql.query).await?;
        let rows = client
            .query(&statement, &[&Jsonb(&wanted), &limit])
            .await
            .map_err(|e| Error::sql("searching vCons by party", e))?;
        rows.iter()
            .map(|row| row.try_get::<_, Uuid>(0).map(|id| id.to_string()))
            .collect::<Result<_, _>>()
            .map_err(|e| Error::sql("searching vCons by party", e))
    }

    async fn count_rows(&self) -> Result<u64, Error> {
        let (client, sql) = self.session().await?;
        let statement = Self::prepare(&client, &sql.count).await?;
        let n: i64 = client
            .query_one(&statement, &[])
            .await
            .and_then(|row| row.try_get(0))
            .map_err(|e| Error::sql("counting vCons", e))?;
        Ok(u64::try_from(n).unwrap_or_default())
    }

    async fn clear_table(&self) -> Result<u64, Error> {
        let (client, sql) = self.session().await?;
        let statement = Self::prepare(&client, &sql.clear).await?;
        client
            .execute(&statement, &[])
            .await
            .map_err(|e| Error::sql("clearing the table", e))
    }

    async fn status_report(&self) -> Result<serde_json::Value, Error> {
        let client = self.client().await?;
        let server: String = client
            .query_one(
                "SELECT current_setting('server_version') || ' / ' || version()",
                &[],
            )
            .await
            .and_then(|row| row.try_get(0))
            .map_err(|e| Error::sql("reading the server version", e))?;
        let (server_version, server) = server.split_once(" / ").unwrap_or(("", &server));
        let tls: Option<bool> = client
            .query_opt(
                "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
                &[],
            )
            .await
            .map_err(|e| Error::sql("reading the connection's TLS state", e))?
            .and_then(|row| row.try_get(0).ok());
        let info = schema::inspect(&**client, &self.settings.table).await?;
        drop(client);
        let rows = match info {
            Some(_) => serde_json::Value::from(self.count_rows().await?),
            None => serde_json::Value::Null,
        };
        let pool = self.pool.status();
        Ok(serde_json::json!({
            "target": self.target,
            "table": self.settings.table.as_str(),
            "rows": rows,
            "provisioned": info.is_some(),
            "layout": info.map(|i| i.layout.describe()),
            "schema_version": info.map(|i| i.version),
            "latest_schema_version": schema::latest_version(),
            "adopted": info.map(|i| i.adopted),
            "server_version": server_version,
            "server": server,
            "sslmode": self.settings.sslmode.as_str(),
            "tls": tls,
            "pool": {
                "max_size": pool.max_size,
                "size": pool.size,
                "available": pool.available,
                "waiting": pool.waiting,
            },
            "connect_timeout_s": self.settings.connect_timeout.as_secs(),
            "statement_timeout_ms": self.settings.statement_timeout_ms,
        }))
    }

    async fn provision_table(&self, recreate: bool) -> Result<serde_json::Value, Error> {
        let mut client = self.client().await?;
        let done = schema::provision(&mut client, &self.settings.table, recreate).await?;
        self.remember(Some(done.info));
        tracing::info!(
            table = %self.settings.table,
            recreated = done.recreated,
            adopted = done.adopted_now,
            applied = ?done.applied,
            "provisioned"
        );
        Ok(serde_json::json!({
            "table": self.settings.table.as_str(),
            "migrations_table": schema::MIGRATIONS_TABLE,
            "recreated": done.recreated,
            "adopted": done.info.adopted,
            "adopted_now": done.adopted_now,
            "applied": done.applied,
            "version": done.info.version,
            "latest_version": schema::latest_version(),
            "layout": done.info.layout.describe(),
        }))
    }
}

/// Consecutive parts of `rows` within the per-statement limits (at least one row each).
fn split<'r, 'a>(rows: &'r [(usize, Row<'a>)]) -> Vec<&'r [(usize, Row<'a>)]> {
    let mut parts = Vec::new();
    let mut start = 0;
    let mut bytes = 0;
    for (i, (_, row)) in rows.iter().enumerate() {
        let size = row.json.len();
        if i > start && (bytes + size > MAX_STATEMENT_BYTES || i - start >= MAX_STATEMENT_ROWS) {
            parts.push(&rows[start..i]);
            start = i;
            bytes = 0;
        }
        bytes += size;
    }
    if start < rows.len() {
        parts.push(&rows[start..]);
    }
    parts
}

impl Storage for PostgresStorage {
    fn save(&self, record: &VconRecord<'_>) -> Result<(), StorageError> {
        let row = Row::new(record)?;
        self.run(self.save_one(row))
    }

    fn get(&self, uuid: &str) -> Result<Option<Vec<u8>>, StorageError> {
        self.run(self.get_one(uuid))
    }

    fn delete(&self, uuid: &str) -> Result<bool, StorageError> {
        self.run(self.delete_one(uuid))
    }

    fn exists(&self, uuid: &str) -> Result<bool, StorageError> {
        self.run(self.exists_one(uuid))
    }

    fn save_many(&self, records: &[VconRecord<'_>]) -> BatchResult {
        self.run(self.save_batch(records))
    }

    fn get_many(&self, uuids: &[&str]) -> Result<Vec<Option<Vec<u8>>>, StorageError> {
        self.run(self.get_batch(uuids))
    }

    fn delete_many(&self, uuids: &[&str]) -> Result<Vec<bool>, StorageError> {
        self.run(self.delete_batch(uuids))
    }

    fn list(&self, request: &ListRequest) -> Result<ListPage, StorageError> {
        self.run(self.list_page(request))
    }

    fn query(&self, query: &PartyQuery) -> Result<Vec<String>, StorageError> {
        self.run(self.query_parties(query))
    }

    fn count(&self) -> Result<u64, StorageError> {
        self.run(self.count_rows())
    }

    fn status(&self) -> Result<serde_json::Value, StorageError> {
        self.run(self.status_report())
    }

    fn provision(&self, request: &ProvisionRequest) -> Result<serde_json::Value, StorageError> {
        self.run(self.provision_table(request.recreate))
    }

    fn clear(&self) -> Result<u64, StorageError> {
        self.run(self.clear_table())
    }

    /// Closes the pool: idle connections are dropped now, busy ones when their call ends.
    fn close(&self) -> Result<(), StorageError> {
        self.pool.close();
        Ok(())
    }
}

impl StoragePlugin for PostgresStorage {
    type Options = Options;
    const NAME: &'static str = "postgres";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const DESCRIPTION: &'static str =
        "one row per vCon in a PostgreSQL table (jsonb), the table of the Python server's postgres module";
    const CAPABILITIES: Capabilities = Capabilities::GET
        .union(Capabilities::DELETE)
        .union(Capabilities::EXISTS)
        .union(Capabilities::BATCH)
        .union(Capabilities::LIST)
        .union(Capabilities::QUERY)
        .union(Capabilities::COUNT)
        .union(Capabilities::STATUS)
        .union(Capabilities::PROVISION)
        .union(Capabilities::CLEAR);

    fn option_defaults() -> serde_json::Value {
        use crate::options as o;
        serde_json::json!({
            "host": o::DEFAULT_HOST,
            "port": o::DEFAULT_PORT,
            "database": o::DEFAULT_DATABASE,
            "user": o::DEFAULT_USER,
            "password": "",
            "table_name": o::DEFAULT_TABLE,
            "sslmode": "prefer",
            "pool_size": o::DEFAULT_POOL_SIZE,
            "connect_timeout": o::DEFAULT_CONNECT_TIMEOUT_S,
            "statement_timeout": o::DEFAULT_STATEMENT_TIMEOUT_MS,
            "create": true,
        })
    }

    fn open(options: Options, _: &OpenContext) -> Result<Self, StorageError> {
        Self::open_with(options)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_are_checked_before_sql() {
        let good = VconRecord::for_test("018f2b9c-6a4e-7c1d-9f00-0123456789ab", b"{}");
        assert!(Row::new(&good).is_ok());
        for (uuid, json) in [
            ("'; DROP TABLE vcons; --", &b"{}"[..]),
            (
                "018f2b9c-6a4e-7c1d-9f00-0123456789ab",
                &b"{\"x\":\"\xff\"}"[..],
            ),
        ] {
            let record = VconRecord::for_test(uuid, json);
            let err = StorageError::from(Row::new(&record).err().unwrap());
            assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
        }
        let mut early = good;
        early.created_at_us = i64::MIN;
        assert!(Row::new(&early).is_err());
    }

    #[test]
    fn cursors_round_trip_and_refuse_junk() {
        let id = Uuid::parse_str("018f2b9c-6a4e-7c1d-9f00-0123456789ab").unwrap();
        let cursor = encode_cursor(Micros(-5), id);
        assert_eq!(decode_cursor(&cursor).unwrap(), (Micros(-5), id));
        for junk in [
            "",
            "x",
            "1_",
            "_u",
            "1_not-a-uuid",
            "a_018f2b9c-6a4e-7c1d-9f00-0123456789ab",
        ] {
            assert!(decode_cursor(junk).is_err(), "{junk}");
        }
    }

    #[test]
    fn batches_split_by_bytes_and_rows() {
        let big = "x".repeat(MAX_STATEMENT_BYTES / 2 + 1);
        let record = VconRecord::for_test("018f2b9c-6a4e-7c1d-9f00-0123456789ab", big.as_bytes());
        let row = Row::new(&record).unwrap();
        let rows: Vec<(usize, Row<'_>)> = (0..5).map(|i| (i, row)).collect();
        let parts = split(&rows);
        assert_eq!(
            parts.iter().map(|p| p.len()).collect::<Vec<_>>(),
            [1, 1, 1, 1, 1]
        );
        let small = VconRecord::for_test("018f2b9c-6a4e-7c1d-9f00-0123456789ab", b"{}");
        let row = Row::new(&small).unwrap();
        let rows: Vec<(usize, Row<'_>)> = (0..MAX_STATEMENT_ROWS + 1).map(|i| (i, row)).collect();
        let parts = split(&rows);
        assert_eq!(
            parts.iter().map(|p| p.len()).collect::<Vec<_>>(),
            [MAX_STATEMENT_ROWS, 1]
        );
        assert!(split(&[]).is_empty());
    }
}
