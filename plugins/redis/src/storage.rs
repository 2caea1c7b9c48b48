//! [`RedisStorage`]: the pool, the key layout, and every operation of the storage contract.

use std::collections::{BTreeSet, HashSet};
use std::time::Instant;

use plugin_sdk::{
    BatchResult, Capabilities, ListPage, ListRequest, OpenContext, Storage, StorageError,
    StoragePlugin, VconRecord,
};

use crate::error::Error;
use crate::keys::{is_uuid, KeyLayout};
use crate::options::{
    Options, Settings, UrlSource, DEFAULT_COMMAND_TIMEOUT_S, DEFAULT_CONNECT_TIMEOUT_S,
    DEFAULT_EXPIRES_S, DEFAULT_POOL_SIZE, DEFAULT_PREFIX,
};
use crate::pool::Pool;

/// The page size of `list` when the request gives no limit.
pub const DEFAULT_PAGE_SIZE: u32 = 100;

/// The largest page `list` answers; a larger limit is lowered to it.
pub const MAX_PAGE_SIZE: u32 = 10_000;

/// The most document bytes sent in one round trip of a `save_many`. A batch is one pipelined
/// round trip up to this size; a larger one (a thousand 270 KB recordings) is sent in parts, so
/// that neither side buffers hundreds of megabytes at once.
pub const MAX_ROUND_TRIP_BYTES: usize = 64 * 1024 * 1024;

/// How many keys one `SCAN` step asks Redis to look at (a hint to Redis, not a limit).
pub const SCAN_COUNT: u32 = 1_000;

/// A storage on the keys `{prefix}:*` of one Redis database.
pub struct RedisStorage {
    pool: Pool,
    layout: KeyLayout,
    prefix: String,
    /// `EX` of every `SET`; `None` for no expiry.
    expires: Option<u64>,
    /// The server, password hidden.
    target: String,
    /// The database number, for `status`.
    db: i64,
    /// The password, only to blank it out of any message that might quote it.
    password: Option<String>,
}

impl std::fmt::Debug for RedisStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStorage")
            .field("target", &self.target)
            .field("prefix", &self.prefix)
            .field("expires", &self.expires)
            .field("pool", &self.pool)
            .finish_non_exhaustive()
    }
}

impl RedisStorage {
    /// Checks the options, builds the pool and connects once, so that a wrong address, password
    /// or database number is reported at start-up, with its reason, rather than at the first
    /// vCon. Redis being down at open is `Unavailable`, like any later outage.
    pub fn open_with(options: Options) -> Result<Self, StorageError> {
        let settings: Settings = options.check().map_err(Error::Options)?;
        if settings.python_default_ignored {
            tracing::warn!(
                "redis_url is the Python module's default `redis://:localhost:6379`, which is \
                 malformed and which the Python module ignored; using {} instead, as it did",
                settings.url_source.describe()
            );
        }
        let storage = Self {
            pool: Pool::new(&settings)?,
            layout: KeyLayout::new(&settings.prefix),
            prefix: settings.prefix.clone(),
            expires: settings.expires,
            target: settings.target.clone(),
            db: settings.connection.redis.db,
            password: settings.password().map(str::to_owned),
        };
        storage.pool.probe().map_err(|err| {
            let err = storage.error(err);
            match settings.url_source {
                UrlSource::Option => err,
                // Say where the address came from when the options did not give it.
                other => err.context(format!("no redis_url option, so {}", other.describe())),
            }
        })?;
        tracing::info!(
            target = %settings.target,
            prefix = %settings.prefix,
            expires = ?settings.expires,
            pool_size = settings.pool_size,
            "opened the Redis storage"
        );
        Ok(storage)
    }

    /// The error the host sees: kind and hint chosen by [`Error`], the password (if the URL has
    /// one) blanked out of the message whatever produced it.
    fn error(&self, err: Error) -> StorageError {
        let error = StorageError::from(err);
        match self.password.as_deref() {
            Some(password) if error.message().contains(password) => {
                let mut clean =
                    StorageError::new(error.kind(), error.message().replace(password, "***"));
                if let Some(after) = error.retry_after() {
                    clean = clean.with_retry_after(after);
                }
                clean
            }
            _ => error,
        }
    }

    /// Runs `body`, converting its error for the host.
    fn run<T>(&self, body: impl FnOnce() -> Result<T, Error>) -> Result<T, StorageError> {
        body().map_err(|err| self.error(err))
    }

    /// The key of `uuid`, refused unless it is a UUID.
    fn key(&self, uuid: &str) -> Result<String, Error> {
        if is_uuid(uuid) {
            Ok(self.layout.key(uuid))
        } else {
            Err(Error::BadUuid {
                uuid: uuid.to_owned(),
            })
        }
    }

    /// `SET key json [EX expires]`: the Python module's write, an upsert that also resets the
    /// time to live (or, with `expires: 0`, removes it).
    fn set_command(&self, key: &str, json: &[u8]) -> redis::Cmd {
        let mut cmd = redis::cmd("SET");
        cmd.arg(key).arg(json);
        if let Some(seconds) = self.expires {
            cmd.arg("EX").arg(seconds);
        }
        cmd
    }

    /// Saves `records[i]` for every `i` of `part` in one pipelined round trip, writing each
    /// record's answer into `results`.
    fn save_part(
        &self,
        records: &[VconRecord<'_>],
        part: &[usize],
        results: &mut [Result<(), StorageError>],
    ) {
        let mut packed = Vec::with_capacity(
            part.iter()
                .map(|&i| records[i].json.len() + 128)
                .sum::<usize>(),
        );
        for &i in part {
            let key = self.layout.key(records[i].uuid);
            packed.extend_from_slice(&self.set_command(&key, records[i].json).get_packed_command());
        }
        let answers = self.pool.run(
            || format!("saving a batch of {} vCons", part.len()),
            |conn| redis::ConnectionLike::req_packed_commands(conn, &packed, 0, part.len()),
        );
        match answers {
            Ok(answers) if answers.len() == part.len() => {
                for (&i, answer) in part.iter().zip(answers) {
                    if let redis::Value::ServerError(err) = answer {
                        results[i] = Err(self.error(Error::command(
                            format!("saving vCon {}", records[i].uuid),
                            &self.target,
                            err.into(),
                        )));
                    }
                }
            }
            Ok(answers) => {
                let err = self.error(Error::Unexpected {
                    action: format!("saving a batch of {} vCons", part.len()),
                    target: self.target.clone(),
                    detail: format!("{} answers", answers.len()),
                });
                for &i in part {
                    results[i] = Err(err.clone());
                }
            }
            Err(err) => {
                let err = self.error(err);
                for &i in part {
                    results[i] = Err(err.clone());
                }
            }
        }
    }

    /// One `SCAN` step over the keys under the prefix: the next cursor and the keys found.
    fn scan_step(
        &self,
        conn: &mut redis::Connection,
        cursor: u64,
    ) -> redis::RedisResult<(u64, Vec<Vec<u8>>)> {
        redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(self.layout.pattern())
            .arg("COUNT")
            .arg(SCAN_COUNT)
            .query(conn)
    }

    /// Visits every key `SCAN` finds under the prefix (some possibly twice: `SCAN` may repeat a
    /// key while Redis resizes its table, so visitors must not count on uniqueness). One round
    /// trip per [`SCAN_COUNT`] keys of the database; never `KEYS`, which blocks the server.
    fn scan(&self, action: &str, mut visit: impl FnMut(&str)) -> Result<(), Error> {
        self.pool.run(
            || action.to_owned(),
            |conn| {
                let mut cursor: u64 = 0;
                loop {
                    let (next, keys) = self.scan_step(conn, cursor)?;
                    for key in &keys {
                        if let Some(uuid) = self.layout.uuid_of(key) {
                            visit(uuid);
                        }
                    }
                    if next == 0 {
                        return Ok(());
                    }
                    cursor = next;
                }
            },
        )
    }
}

impl Storage for RedisStorage {
    fn save(&self, record: &VconRecord<'_>) -> Result<(), StorageError> {
        self.run(|| {
            let key = self.key(record.uuid)?;
            let cmd = self.set_command(&key, record.json);
            self.pool.run(
                || format!("saving vCon {}", record.uuid),
                |conn| cmd.query::<()>(conn),
            )
        })
    }

    fn get(&self, uuid: &str) -> Result<Option<Vec<u8>>, StorageError> {
        self.run(|| {
            let key = self.key(uuid)?;
            self.pool.run(
                || format!("reading vCon {uuid}"),
                |conn| redis::cmd("GET").arg(&key).query::<Option<Vec<u8>>>(conn),
            )
        })
    }

    fn delete(&self, uuid: &str) -> Result<bool, StorageError> {
        self.run(|| {
            let key = self.key(uuid)?;
            let removed = self.pool.run(
                || format!("deleting vCon {uuid}"),
                |conn| redis::cmd("DEL").arg(&key).query::<u64>(conn),
            )?;
            Ok(removed > 0)
        })
    }

    fn exists(&self, uuid: &str) -> Result<bool, StorageError> {
        self.run(|| {
            let key = self.key(uuid)?;
            let found = self.pool.run(
                || format!("looking for vCon {uuid}"),
                |conn| redis::cmd("EXISTS").arg(&key).query::<u64>(conn),
            )?;
            Ok(found > 0)
        })
    }

    fn save_many(&self, records: &[VconRecord<'_>]) -> BatchResult {
        let mut results: Vec<Result<(), StorageError>> = vec![Ok(()); records.len()];
        let mut part: Vec<usize> = Vec::new();
        let mut part_bytes = 0;
        for (i, record) in records.iter().enumerate() {
            if !is_uuid(record.uuid) {
                results[i] = Err(self.error(Error::BadUuid {
                    uuid: record.uuid.to_owned(),
                }));
                continue;
            }
            if !part.is_empty() && part_bytes + record.json.len() > MAX_ROUND_TRIP_BYTES {
                self.save_part(records, &part, &mut results);
                part.clear();
                part_bytes = 0;
            }
            part.push(i);
            part_bytes += record.json.len();
        }
        if !part.is_empty() {
            self.save_part(records, &part, &mut results);
        }
        Ok(results)
    }

    fn get_many(&self, uuids: &[&str]) -> Result<Vec<Option<Vec<u8>>>, StorageError> {
        self.run(|| {
            if uuids.is_empty() {
                return Ok(Vec::new());
            }
            let keys = uuids
                .iter()
                .map(|uuid| self.key(uuid))
                .collect::<Result<Vec<_>, _>>()?;
            let docs = self.pool.run(
                || format!("reading a batch of {} vCons", uuids.len()),
                |conn| {
                    redis::cmd("MGET")
                        .arg(&keys)
                        .query::<Vec<Option<Vec<u8>>>>(conn)
                },
            )?;
            if docs.len() == uuids.len() {
                Ok(docs)
            } else {
                Err(Error::Unexpected {
                    action: format!("reading a batch of {} vCons", uuids.len()),
                    target: self.target.clone(),
                    detail: format!("{} answers", docs.len()),
                })
            }
        })
    }

    fn delete_many(&self, uuids: &[&str]) -> Result<Vec<bool>, StorageError> {
        self.run(|| {
            if uuids.is_empty() {
                return Ok(Vec::new());
            }
            let mut pipe = redis::pipe();
            for uuid in uuids {
                // One DEL per uuid (not one DEL of all), for an answer per uuid: a uuid twice
                // in the batch is removed by the first and answers false the second time.
                pipe.cmd("DEL").arg(self.key(uuid)?);
            }
            let removed = self.pool.run(
                || format!("deleting a batch of {} vCons", uuids.len()),
                |conn| pipe.query::<Vec<u64>>(conn),
            )?;
            if removed.len() == uuids.len() {
                Ok(removed.into_iter().map(|n| n > 0).collect())
            } else {
                Err(Error::Unexpected {
                    action: format!("deleting a batch of {} vCons", uuids.len()),
                    target: self.target.clone(),
                    detail: format!("{} answers", removed.len()),
                })
            }
        })
    }

    /// Pages in uuid order; the cursor is the last uuid of the page. Each page is one full
    /// `SCAN` of the database (Redis has no ordered index of these keys), keeping only the
    /// `limit` smallest uuids after the cursor, so memory stays bounded by the page and a key
    /// `SCAN` repeats is never answered twice.
    fn list(&self, request: &ListRequest) -> Result<ListPage, StorageError> {
        self.run(|| {
            let limit = match request.limit {
                0 => DEFAULT_PAGE_SIZE,
                n => n.min(MAX_PAGE_SIZE),
            } as usize;
            let after = match request.after.as_deref() {
                Some(after) if is_uuid(after) => Some(after),
                Some(bad) => return Err(Error::BadCursor(bad.to_owned())),
                None => None,
            };
            let mut page: BTreeSet<String> = BTreeSet::new();
            let mut more = false;
            self.scan("listing vCons", |uuid| {
                if after.is_some_and(|after| uuid <= after) {
                    return;
                }
                if page.insert(uuid.to_owned()) && page.len() > limit {
                    page.pop_last();
                    more = true;
                }
            })?;
            let uuids: Vec<String> = page.into_iter().collect();
            let next = if more { uuids.last().cloned() } else { None };
            Ok(ListPage { uuids, next })
        })
    }

    /// One full `SCAN` under the prefix, counting each uuid once.
    fn count(&self) -> Result<u64, StorageError> {
        self.run(|| {
            let mut seen: HashSet<String> = HashSet::new();
            self.scan("counting vCons", |uuid| {
                if !seen.contains(uuid) {
                    seen.insert(uuid.to_owned());
                }
            })?;
            Ok(seen.len() as u64)
        })
    }

    fn status(&self) -> Result<serde_json::Value, StorageError> {
        self.run(|| {
            let started = Instant::now();
            self.pool.run(
                || "checking the server".to_owned(),
                |conn| redis::cmd("PING").query::<()>(conn),
            )?;
            let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
            // INFO may be refused (renamed, or not granted by an ACL): the status then says less.
            let info = self
                .pool
                .run(
                    || "reading INFO server".to_owned(),
                    |conn| redis::cmd("INFO").arg("server").query::<String>(conn),
                )
                .ok();
            let field = |name: &str| {
                info.as_deref().and_then(|info| {
                    info.lines()
                        .find_map(|line| line.strip_prefix(name)?.strip_prefix(':'))
                        .map(|value| value.trim().to_owned())
                })
            };
            let pool = self.pool.state();
            Ok(serde_json::json!({
                "target": self.target,
                "database": self.db,
                "prefix": self.prefix,
                "key_pattern": self.layout.pattern(),
                "expires": self.expires.unwrap_or(0),
                "reachable": true,
                "latency_ms": latency_ms,
                "redis_version": field("redis_version"),
                "redis_mode": field("redis_mode"),
                "pool": {
                    "max_size": pool.max_size,
                    "connections": pool.connections,
                    "idle": pool.idle,
                },
            }))
        })
    }

    /// Removes every vCon key under the prefix (`{prefix}:{uuid}`, nothing else), one `SCAN`
    /// step and one `DEL` at a time, so Redis is never blocked for long.
    fn clear(&self) -> Result<u64, StorageError> {
        self.run(|| {
            let mut removed: u64 = 0;
            self.pool.run(
                || "clearing vCons".to_owned(),
                |conn| {
                    let mut cursor: u64 = 0;
                    loop {
                        let (next, keys) = self.scan_step(conn, cursor)?;
                        let mut del = redis::cmd("DEL");
                        let mut any = false;
                        for key in keys.iter().filter(|key| self.layout.uuid_of(key).is_some()) {
                            del.arg(key.as_slice());
                            any = true;
                        }
                        if any {
                            removed += del.query::<u64>(conn)?;
                        }
                        if next == 0 {
                            return Ok(());
                        }
                        cursor = next;
                    }
                },
            )?;
            Ok(removed)
        })
    }
}

impl StoragePlugin for RedisStorage {
    type Options = Options;
    const NAME: &'static str = "redis";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const DESCRIPTION: &'static str =
        "vCons as JSON strings in Redis under {prefix}:{uuid} with a time to live, the keys of \
         the Python server's storage.redis_storage";
    const CAPABILITIES: Capabilities = Capabilities::GET
        .union(Capabilities::DELETE)
        .union(Capabilities::EXISTS)
        .union(Capabilities::BATCH)
        .union(Capabilities::LIST)
        .union(Capabilities::COUNT)
        .union(Capabilities::STATUS)
        .union(Capabilities::CLEAR);

    fn option_defaults() -> serde_json::Value {
        serde_json::json!({
            // The REDIS_URL environment variable, else redis://127.0.0.1:6379.
            "redis_url": null,
            "prefix": DEFAULT_PREFIX,
            "expires": DEFAULT_EXPIRES_S,
            "pool_size": DEFAULT_POOL_SIZE,
            "connect_timeout": DEFAULT_CONNECT_TIMEOUT_S,
            "command_timeout": DEFAULT_COMMAND_TIMEOUT_S,
        })
    }

    fn open(options: Options, _: &OpenContext) -> Result<Self, StorageError> {
        Self::open_with(options)
    }
}
