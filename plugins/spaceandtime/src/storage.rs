//! [`SxtStorage`]: the operations, each one or a few SQL statements sent with the biscuit that
//! grants them (reads with the read biscuit, writes with the write biscuit).
//!
//! Space and Time has no upsert statement, so `save` is an `UPDATE` of the row, then an
//! `INSERT` when no row was updated; if a concurrent save inserted the row in between, the
//! `INSERT` fails with the engine's duplicate-key error and the `UPDATE` runs again.
//! `save_many` inserts a whole batch with one multi-row `INSERT` (the common case: new vCons);
//! if any of them already exists, the statement is refused and each record is then saved on
//! its own, with its own result.

use plugin_sdk::{
    BatchResult, Capabilities, ListPage, ListRequest, OpenContext, ProvisionRequest, Storage,
    StorageError, StoragePlugin, VconRecord,
};
use serde_json::{json, Value};

use crate::biscuits::mint_all;
use crate::client::{column, number, rows, updated, Client, Grant};
use crate::error::Error;
use crate::options::{Options, Resolved, DEFAULT_API_URL, DEFAULT_AUTH_URL, DEFAULT_ORIGIN_APP};
use crate::sql::{self, check_uuid, Row, TableName};

/// Rows per multi-row `INSERT` (the SDK advises batches under 1,000 rows).
const BATCH_ROWS: usize = 500;
/// Statement text per multi-row `INSERT`, in bytes: Space and Time documents no request-size
/// limit, so batches of large vCons are kept to a few megabytes.
const BATCH_BYTES: usize = 4 * 1024 * 1024;
/// Uuids per `SELECT ... IN (...)` of `get_many`.
const READ_CHUNK: usize = 200;
/// The page size of `list` when the request gives none, and the largest page.
const DEFAULT_PAGE: usize = 100;
const MAX_PAGE: usize = 1000;
/// How many times `save` re-runs its `UPDATE`/`INSERT` pair when concurrent writers race it.
const UPSERT_ATTEMPTS: usize = 3;

/// Everything but `PROVISION`, for a storage that cannot create its table (no private key).
const WITHOUT_PROVISION: Capabilities = Capabilities::GET
    .union(Capabilities::DELETE)
    .union(Capabilities::EXISTS)
    .union(Capabilities::BATCH)
    .union(Capabilities::LIST)
    .union(Capabilities::COUNT)
    .union(Capabilities::CLEAR);

/// A storage in one Space and Time table.
#[derive(Debug)]
pub struct SxtStorage {
    client: Client,
    table: TableName,
    read: Grant,
    write: Grant,
    /// The DDL biscuit and the table's public key, when the private key was given.
    ddl: Option<(Grant, String)>,
    access_type: String,
}

impl SxtStorage {
    /// Opens a storage from options already resolved against the environment.
    fn open_resolved(options: Resolved) -> Result<Self, Error> {
        let minted = options
            .private_key
            .as_ref()
            .map(|key| mint_all(key, &options.table.resource()))
            .transpose()?;
        let write = options
            .write_biscuit
            .clone()
            .or_else(|| minted.as_ref().map(|m| m.write.clone()));
        let read = options
            .read_biscuit
            .clone()
            .or_else(|| minted.as_ref().map(|m| m.read.clone()))
            .or_else(|| write.clone());
        if write.is_none() {
            tracing::warn!(
                table = %options.table.sql(),
                "no write biscuit (write_biscuit, SXT_VCON_TABLE_WRITE_BISCUIT or \
                 biscuit_private_key): writes succeed only on a public_write table"
            );
        }
        let client = Client::new(&options)?;
        if options.authenticate {
            match client.authenticate() {
                Ok(()) => {}
                // The service being down at start-up is not the operator's mistake: the first
                // operation authenticates again.
                Err(err) if err.kind() == plugin_sdk::ErrorKind::Unavailable => {
                    tracing::warn!("cannot authenticate to Space and Time yet: {err}");
                }
                Err(err) => return Err(err),
            }
        }
        Ok(Self {
            client,
            table: options.table,
            read: Grant {
                biscuit: read,
                which: "read",
            },
            write: Grant {
                biscuit: write,
                which: "write",
            },
            ddl: minted.map(|m| {
                (
                    Grant {
                        biscuit: Some(m.ddl),
                        which: "DDL",
                    },
                    m.public_hex,
                )
            }),
            access_type: options.access_type,
        })
    }

    /// When the cached access token expires (`None` before the first login).
    pub fn token_expires_at(&self) -> Option<std::time::SystemTime> {
        self.client.token_expires_at()
    }

    fn upsert(&self, row: &Row) -> Result<(), Error> {
        let update = sql::update(&self.table, row)?;
        for _ in 0..UPSERT_ATTEMPTS {
            if updated(&self.client.sql(&update, "dml_update", &self.write)?)? > 0 {
                return Ok(());
            }
            match self
                .client
                .sql(&sql::insert(&self.table, &[row]), "dml_insert", &self.write)
            {
                Ok(_) => return Ok(()),
                // Inserted by a concurrent save since our UPDATE: update it now.
                Err(err) if err.is_duplicate_key() => continue,
                Err(err) => return Err(err),
            }
        }
        Err(Error::Http(StorageError::conflict(format!(
            "vCon {} kept changing under concurrent saves; try again",
            row.uuid
        ))))
    }

    fn read_json(&self, uuid: &str) -> Result<Option<Vec<u8>>, Error> {
        let answer = self.client.sql(
            &sql::select_json(&self.table, uuid)?,
            "dql_select",
            &self.read,
        )?;
        match rows(&answer)?.first() {
            None => Ok(None),
            Some(row) => json_of(row).map(Some),
        }
    }

    fn read_many(&self, uuids: &[&str]) -> Result<Vec<Option<Vec<u8>>>, Error> {
        let wanted = uuids
            .iter()
            .map(|u| check_uuid(u))
            .collect::<Result<Vec<_>, _>>()?;
        let mut found = std::collections::HashMap::new();
        for chunk in wanted.chunks(READ_CHUNK) {
            let answer = self.client.sql(
                &sql::select_many(&self.table, chunk)?,
                "dql_select",
                &self.read,
            )?;
            for row in rows(&answer)? {
                let uuid = column(row, "UUID")
                    .and_then(Value::as_str)
                    .ok_or_else(|| Error::Unexpected("a row without UUID".to_owned()))?
                    .to_ascii_lowercase();
                found.insert(uuid, json_of(row)?);
            }
        }
        Ok(wanted.iter().map(|u| found.get(u).cloned()).collect())
    }

    fn remove(&self, uuid: &str) -> Result<bool, Error> {
        let answer =
            self.client
                .sql(&sql::delete(&self.table, uuid)?, "dml_delete", &self.write)?;
        Ok(updated(&answer)? > 0)
    }

    /// Saves valid rows in multi-row `INSERT`s, falling back to one upsert per row when some
    /// already exist. Answers one result per row.
    fn insert_batch(&self, rows: &[&Row]) -> Vec<Result<(), StorageError>> {
        let mut results = Vec::with_capacity(rows.len());
        let mut start = 0;
        while start < rows.len() {
            let mut end = start;
            let mut bytes = 0;
            while end < rows.len()
                && end - start < BATCH_ROWS
                && (end == start || bytes + rows[end].len() <= BATCH_BYTES)
            {
                bytes += rows[end].len();
                end += 1;
            }
            let chunk = &rows[start..end];
            match self
                .client
                .sql(&sql::insert(&self.table, chunk), "dml_insert", &self.write)
            {
                Ok(_) => results.extend(chunk.iter().map(|_| Ok(()))),
                Err(err) if err.is_duplicate_key() => results.extend(
                    chunk
                        .iter()
                        .map(|row| self.upsert(row).map_err(StorageError::from)),
                ),
                Err(err) => {
                    let err = StorageError::from(err);
                    results.extend(chunk.iter().map(|_| Err(err.clone())));
                }
            }
            start = end;
        }
        results
    }

    fn do_list(&self, request: &ListRequest) -> Result<ListPage, Error> {
        let limit = match usize::try_from(request.limit).unwrap_or(MAX_PAGE) {
            0 => DEFAULT_PAGE,
            n => n.min(MAX_PAGE),
        };
        let after = request
            .after
            .as_deref()
            .map(|cursor| {
                check_uuid(cursor).map_err(|_| {
                    Error::Options(format!(
                        "invalid list cursor {cursor:?}: pass the `next` value of the previous page"
                    ))
                })
            })
            .transpose()?;
        let answer = self.client.sql(
            &sql::list(&self.table, after.as_deref(), limit + 1)?,
            "dql_select",
            &self.read,
        )?;
        let mut uuids = rows(&answer)?
            .iter()
            .map(|row| {
                column(row, "UUID")
                    .and_then(Value::as_str)
                    .map(str::to_owned)
                    .ok_or_else(|| Error::Unexpected("a row without UUID".to_owned()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let next = if uuids.len() > limit {
            uuids.truncate(limit);
            uuids.last().cloned()
        } else {
            None
        };
        Ok(ListPage { uuids, next })
    }

    fn do_provision(&self, request: &ProvisionRequest) -> Result<Value, Error> {
        let Some((ddl, public_hex)) = &self.ddl else {
            // Not declared without the private key (see `instance_capabilities`), so answer
            // what every undeclared operation answers.
            return Err(Error::Http(StorageError::unsupported("provision").context(
                "provision needs biscuit_private_key (the table's private key) to sign the \
                 CREATE TABLE; without it, create the table by hand \
                 (docs/plugins/spaceandtime.md)",
            )));
        };
        let mut report = serde_json::Map::new();
        report.insert("table".into(), json!(self.table.sql()));
        report.insert("public_key".into(), json!(public_hex));
        match self
            .client
            .sql(&sql::create_schema(&self.table), "ddl_create", ddl)
        {
            Ok(_) => {
                report.insert("schema_created".into(), json!(true));
            }
            Err(err) if err.is_already_exists() => {
                report.insert("schema_created".into(), json!(false));
            }
            Err(err) => return Err(err),
        }
        if request.recreate {
            match self
                .client
                .sql(&sql::drop_table(&self.table), "ddl_drop", ddl)
            {
                Ok(_) => {
                    report.insert("dropped".into(), json!(true));
                }
                Err(Error::NoTable(_)) => {
                    report.insert("dropped".into(), json!(false));
                }
                Err(err) => return Err(err),
            }
        }
        let create = sql::create_table(&self.table, public_hex, &self.access_type)?;
        match self.client.sql(&create, "ddl_create", ddl) {
            Ok(_) => {
                report.insert("created".into(), json!(true));
            }
            Err(err) if err.is_already_exists() => {
                report.insert("created".into(), json!(false));
            }
            Err(err) => return Err(err),
        }
        Ok(Value::Object(report))
    }
}

/// The stored document of a row.
fn json_of(row: &Value) -> Result<Vec<u8>, Error> {
    column(row, "VCON_JSON")
        .and_then(Value::as_str)
        .map(|text| text.as_bytes().to_vec())
        .ok_or_else(|| Error::Unexpected("a row without a VCON_JSON text".to_owned()))
}

impl Storage for SxtStorage {
    fn save(&self, record: &VconRecord<'_>) -> Result<(), StorageError> {
        let row = Row::new(record)?;
        Ok(self.upsert(&row)?)
    }

    fn get(&self, uuid: &str) -> Result<Option<Vec<u8>>, StorageError> {
        Ok(self.read_json(uuid)?)
    }

    fn delete(&self, uuid: &str) -> Result<bool, StorageError> {
        Ok(self.remove(uuid)?)
    }

    fn exists(&self, uuid: &str) -> Result<bool, StorageError> {
        let answer = self.client.sql(
            &sql::select_uuid(&self.table, uuid)?,
            "dql_select",
            &self.read,
        )?;
        Ok(!rows(&answer)?.is_empty())
    }

    fn save_many(&self, records: &[VconRecord<'_>]) -> BatchResult {
        let rows: Vec<Result<Row, StorageError>> = records
            .iter()
            .map(|record| Row::new(record).map_err(StorageError::from))
            .collect();
        let valid: Vec<&Row> = rows.iter().filter_map(|r| r.as_ref().ok()).collect();
        let mut saved = self.insert_batch(&valid).into_iter();
        Ok(rows
            .iter()
            .map(|row| match row {
                Ok(_) => saved
                    .next()
                    .unwrap_or_else(|| Err(StorageError::internal("batch result missing"))),
                Err(err) => Err(err.clone()),
            })
            .collect())
    }

    fn get_many(&self, uuids: &[&str]) -> Result<Vec<Option<Vec<u8>>>, StorageError> {
        Ok(self.read_many(uuids)?)
    }

    fn delete_many(&self, uuids: &[&str]) -> Result<Vec<bool>, StorageError> {
        uuids
            .iter()
            .map(|uuid| self.remove(uuid).map_err(StorageError::from))
            .collect()
    }

    fn list(&self, request: &ListRequest) -> Result<ListPage, StorageError> {
        Ok(self.do_list(request)?)
    }

    fn count(&self) -> Result<u64, StorageError> {
        let answer = self
            .client
            .sql(&sql::count(&self.table), "dql_select", &self.read)?;
        let n = rows(&answer)?
            .first()
            .and_then(|row| column(row, "N"))
            .and_then(number)
            .ok_or_else(|| Error::Unexpected("COUNT(*) answered no number".to_owned()))?;
        Ok(n)
    }

    fn provision(&self, request: &ProvisionRequest) -> Result<Value, StorageError> {
        Ok(self.do_provision(request)?)
    }

    fn clear(&self) -> Result<u64, StorageError> {
        let answer = self
            .client
            .sql(&sql::delete_all(&self.table), "dml_delete", &self.write)?;
        Ok(updated(&answer)?)
    }

    fn instance_capabilities(&self) -> Option<Capabilities> {
        self.ddl.is_none().then_some(WITHOUT_PROVISION)
    }
}

impl StoragePlugin for SxtStorage {
    type Options = Options;
    const NAME: &'static str = "spaceandtime";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const DESCRIPTION: &'static str =
        "a Space and Time table over its network API (SQL with biscuits), as the Python server's storage.spaceandtime";
    const CAPABILITIES: Capabilities = WITHOUT_PROVISION.union(Capabilities::PROVISION);

    fn option_defaults() -> Value {
        json!({
            "api_key": "",
            "table_name": "",
            "write_biscuit": "",
            "read_biscuit": "",
            "biscuit_private_key": "",
            "authenticate": true,
            "auto_reconnect": true,
            "api_url": DEFAULT_API_URL,
            "auth_url": DEFAULT_AUTH_URL,
            "origin_app": DEFAULT_ORIGIN_APP,
            "access_type": "permissioned",
            "timeout": 30,
            "retries": 3,
        })
    }

    fn open(options: Options, _: &OpenContext) -> Result<Self, StorageError> {
        let resolved = options.resolve(|name| std::env::var(name).ok())?;
        Ok(Self::open_resolved(resolved)?)
    }
}
