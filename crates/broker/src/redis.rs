//! The Redis broker: several `vcon-host run` processes, on several machines, share one queue,
//! and a Python vCon Server API can share the same Redis.
//!
//! # Key layout
//!
//! Where the Python server has a key, this broker uses it the same way:
//!
//! | key | type | what |
//! |---|---|---|
//! | `vcon:{uuid}` | string (JSON) | the hot copy. With the RedisJSON module loaded (detected once with `MODULE LIST`) a RedisJSON document written with `JSON.SET … $`, as the Python server does |
//! | `vcons` | sorted set | the listing: member `vcon:{uuid}`, score `created_at` in whole epoch seconds (Python's form). Bare `{uuid}` members, which Python's storage fallback writes, are read too and deduplicated |
//! | `tel:{tel}`, `mailto:{addr}`, `name:{name}` | set of uuids | the search index, without Python's one-day expiry |
//! | `{list}` | list of uuids | ingress, egress and tag-route lists: `RPUSH` appends, claims take from the head |
//! | `DLQ:{ingress_list}`, `DLQ:storage:{storage}` | list of uuids | dead letters, plain uuids as Python's `/dlq/reprocess` expects |
//!
//! and keeps its own bookkeeping under `vcon-host:`:
//!
//! | key | type | what |
//! |---|---|---|
//! | `vcon-host:created-us` | hash uuid → µs | the exact date of each listed vCon (the listing's scores are whole seconds); dates a document without `created_at` when read back |
//! | `vcon-host:terms:{uuid}` | set | the search sets a vCon is in, so [`Broker::forget`] and re-indexing can leave them |
//! | `vcon-host:waiting` | hash uuid → count | in how many places (lists other than dead-letter lists, claims included) this broker put the uuid |
//! | `vcon-host:pending-ttl` | hash uuid → epoch ms | the expiry a waiting vCon will get once it waits nowhere |
//! | `vcon-host:dlq-notes:{list}` | hash uuid → note | why each dead letter of `{list}` is there |
//! | `vcon-host:lists` | set | the lists this broker pushed to or claimed from, for [`Broker::lists`] (no `KEYS`/`SCAN` over the keyspace) |
//! | `vcon-host:heartbeat:{host_id}` | string, expiring | a running host is alive: refreshed every [`RedisBroker::HEARTBEAT_EVERY`], lapses after [`RedisBroker::HEARTBEAT_EXPIRY`] |
//! | `vcon-host:processing:{host_id}:{owner}:{list}` | list | the items one worker of one host claimed from `{list}` |
//! | `vcon-host:processing` | hash key → `{host_id}:{list}` | every processing list, its host and its source list |
//!
//! Every write of more than one key is one Lua script, so it is atomic (a script runs whole,
//! and nothing else runs meanwhile) and one round trip; the one exception is the idle claim, a
//! pipeline that registers the processing list before its `BLMOVE` (a script cannot block). Scripts rather than `MULTI`/`EXEC`
//! because most must read before they write: a vCon's old search terms, a pending time to live,
//! a dead host's heartbeat. The RedisJSON code path is written (`JSON.SET`/`JSON.MGET`, the time
//! to live kept across a root `JSON.SET` by hand) and its scripts are checked to compile, but no
//! server with the module was at hand to run it against.
//!
//! # At-least-once across processes
//!
//! The Python server `BLPOP`s: a worker that dies mid-chain loses the vCon. Here a claim moves
//! uuids (atomically, in a Lua script, or with `BLMOVE` when idle) from the source list into the
//! worker's processing list, registered with its host and source list *before* anything moves.
//! [`Broker::finish`] removes them from there, atomically with the egress pushes and dead
//! letters. A host that dies stops refreshing its heartbeat; once the heartbeat has expired any
//! other host's [`Broker::requeue_abandoned`] (the host runs it at start and every 10 s) moves the
//! dead host's processing lists back to the front of their source lists, in order, checking the
//! heartbeat in the same script that moves them. So a vCon is lost only if Redis loses it.
//! Duplicates are possible (a host that hangs for longer than the heartbeat expiry, a reply lost
//! in a connection failure): saves are idempotent. A host that stops cleanly gives back what it
//! still holds and withdraws its heartbeat at once. A claim whose reply was lost on the wire may
//! have moved uuids nobody heard of into a live host's processing list: the same worker's next
//! claim puts them back first.
//!
//! # Time to live
//!
//! A vCon that waits in a list (other than a dead-letter list) or is claimed from one keeps its
//! hot copy: its time to live is kept in `vcon-host:pending-ttl` as a deadline and applied
//! (`PEXPIREAT`) when it waits nowhere any more, counted by `vcon-host:waiting`. The Python server
//! `EXPIRE`s at ingress and loses a backlog older than `VCON_REDIS_EXPIRY`. A uuid that another
//! program pushed (the Python API's `RPUSH`) is not counted: its hot copy keeps the expiry that
//! program gave it. Redis expires keys by itself, so [`Broker::purge_expired`] has nothing to do.
//!
//! # Connections
//!
//! Every operation takes a connection from an r2d2 pool (connections have read and write
//! timeouts, so a vanished server fails an operation instead of hanging it). An operation that
//! fails returns a [`BrokerError`]; the host's workers retry with back-off. After a connection
//! error every pooled connection opened before it is dropped on its next use, so a restarted
//! Redis costs one failed operation, not one per idle connection.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use redis::{RedisError, Script, Value};

use crate::{
    now_us, Broker, BrokerError, Claim, ClaimedItem, Finish, HotVcon, ItemId, ItemKey, ListEntry,
    ListingPage,
};

/// Connections per broker handle: one per worker (an idle one blocks in `BLMOVE`), plus the
/// heartbeat, the janitor and the API. Opened lazily.
const POOL_SIZE: u32 = 64;
/// How long an operation waits for a pooled connection, and a new connection for the server:
/// while Redis is down, this is how long each operation takes to fail.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a command may take on the wire before its connection is given up.
const IO_TIMEOUT: Duration = Duration::from_secs(10);
/// Items moved per `RPUSH`/`LPUSH` inside the scripts (Lua's `unpack` has a stack limit).
const LUA_CHUNK: usize = 1000;

const VCON_PREFIX: &str = "vcon:";
const LISTING: &str = "vcons";
const CREATED: &str = "vcon-host:created-us";
const TERMS_PREFIX: &str = "vcon-host:terms:";
const WAITING: &str = "vcon-host:waiting";
const PENDING_TTL: &str = "vcon-host:pending-ttl";
const NOTES_PREFIX: &str = "vcon-host:dlq-notes:";
const LISTS: &str = "vcon-host:lists";
const HEARTBEAT_PREFIX: &str = "vcon-host:heartbeat:";
const PROCESSING: &str = "vcon-host:processing";
const PROCESSING_PREFIX: &str = "vcon-host:processing:";

/// Shared Lua helpers, prefixed to every script. `{json}` becomes `true` when RedisJSON is used.
const LUA_PRELUDE: &str = r"
local JSON = {json}
local K_CREATED = '{created}'
local K_TERMS = '{terms}'
local K_WAITING = '{waiting}'
local K_PENDING = '{pending}'
local K_NOTES = '{notes}'
local K_LISTS = '{lists}'
local K_HEARTBEAT = '{heartbeat}'
local K_PROC = '{proc}'
local K_PROC_PREFIX = '{proc_prefix}'
local K_LISTING = '{listing}'
local CHUNK = {chunk}

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local function is_dlq(list)
  return string.sub(list, 1, 4) == 'DLQ:'
end

-- '{host}:{list}' -> host, list (host ids hold no ':')
local function split_owner(value)
  local i = string.find(value, ':', 1, true)
  return string.sub(value, 1, i - 1), string.sub(value, i + 1)
end

-- The list a key stands for: a processing list's source list, else the key itself.
local function source_of(key)
  if string.sub(key, 1, #K_PROC_PREFIX) == K_PROC_PREFIX then
    local v = redis.call('HGET', K_PROC, key)
    if v then
      local _, src = split_owner(v)
      return src
    end
  end
  return key
end

local function push_all(cmd, key, items)
  for i = 1, #items, CHUNK do
    redis.call(cmd, key, unpack(items, i, math.min(i + CHUNK - 1, #items)))
  end
end

-- The uuid waits in one more place: hold its hot copy (a running expiry becomes pending).
local function hold(uuid)
  redis.call('HINCRBY', K_WAITING, uuid, 1)
  local key = 'vcon:' .. uuid
  local pttl = redis.call('PTTL', key)
  if pttl > 0 then
    redis.call('HSET', K_PENDING, uuid, now_ms() + pttl)
    redis.call('PERSIST', key)
  end
end

-- It left one place: once it waits nowhere, its pending expiry starts (or has passed).
local function release(uuid)
  local n = redis.call('HINCRBY', K_WAITING, uuid, -1)
  if n <= 0 then
    redis.call('HDEL', K_WAITING, uuid)
    local deadline = redis.call('HGET', K_PENDING, uuid)
    if deadline then
      redis.call('PEXPIREAT', 'vcon:' .. uuid, deadline)
      redis.call('HDEL', K_PENDING, uuid)
    end
  end
end

local function waits(uuid)
  return tonumber(redis.call('HGET', K_WAITING, uuid) or '0') > 0
end

-- Stores a document; keep_ttl keeps the key's expiry, else it is cleared.
local function store(key, json, keep_ttl)
  if JSON then
    local pttl = -1
    if keep_ttl then pttl = redis.call('PTTL', key) end
    redis.call('JSON.SET', key, '$', json)
    if pttl > 0 then redis.call('PEXPIRE', key, pttl) else redis.call('PERSIST', key) end
  elseif keep_ttl then
    redis.call('SET', key, json, 'KEEPTTL')
  else
    redis.call('SET', key, json)
  end
end

-- Listing entry, exact date, and (when terms is not nil) the search sets.
local function index(uuid, created_s, created_us, terms)
  redis.call('ZADD', K_LISTING, created_s, 'vcon:' .. uuid)
  redis.call('ZREM', K_LISTING, uuid)
  redis.call('HSET', K_CREATED, uuid, created_us)
  if terms == nil then return end
  local rev = K_TERMS .. uuid
  for _, term in ipairs(redis.call('SMEMBERS', rev)) do
    redis.call('SREM', term, uuid)
  end
  redis.call('DEL', rev)
  for _, term in ipairs(terms) do
    redis.call('SADD', term, uuid)
    redis.call('SADD', rev, term)
  end
end

-- One occurrence of uuid left key (a list or a processing list).
local function removed(key, uuid)
  local src = source_of(key)
  if is_dlq(src) then
    if not redis.call('LPOS', key, uuid) then
      redis.call('HDEL', K_NOTES .. src, uuid)
    end
  else
    release(uuid)
  end
end
";

/// `ingest`: ARGV = ttl_ms (0: none), nlists, lists…, nvcons, then per vCon: uuid, json,
/// created_s, created_us, nterms, terms….
const LUA_INGEST: &str = r"
local i = 1
local ttl = tonumber(ARGV[i]); i = i + 1
local nlists = tonumber(ARGV[i]); i = i + 1
local lists = {}
local queued = false
for j = 1, nlists do
  lists[j] = ARGV[i]; i = i + 1
  if not is_dlq(lists[j]) then queued = true end
end
local n = tonumber(ARGV[i]); i = i + 1
local uuids = {}
local now = now_ms()
for v = 1, n do
  local uuid = ARGV[i]
  local key = 'vcon:' .. uuid
  store(key, ARGV[i + 1], false)
  redis.call('HDEL', K_PENDING, uuid)
  if ttl > 0 then
    if queued or waits(uuid) then
      redis.call('HSET', K_PENDING, uuid, now + ttl)
    else
      redis.call('PEXPIRE', key, ttl)
    end
  end
  local nterms = tonumber(ARGV[i + 4])
  local terms = {}
  for t = 1, nterms do terms[t] = ARGV[i + 4 + t] end
  index(uuid, ARGV[i + 2], ARGV[i + 3], terms)
  uuids[v] = uuid
  i = i + 5 + nterms
end
for _, list in ipairs(lists) do
  push_all('RPUSH', list, uuids)
  redis.call('SADD', K_LISTS, list)
  if not is_dlq(list) then
    for _, uuid in ipairs(uuids) do redis.call('HINCRBY', K_WAITING, uuid, 1) end
  end
end
return n
";

/// `put_vcon`: ARGV = uuid, json, created_s, created_us, reindex (0/1), terms….
const LUA_PUT: &str = r"
local uuid = ARGV[1]
store('vcon:' .. uuid, ARGV[2], true)
local terms = nil
if ARGV[5] == '1' then
  terms = {}
  for t = 6, #ARGV do terms[#terms + 1] = ARGV[t] end
end
index(uuid, ARGV[3], ARGV[4], terms)
return 1
";

/// `forget`: ARGV = uuid. Answers whether the hot copy was there.
const LUA_FORGET: &str = r"
local uuid = ARGV[1]
local existed = redis.call('DEL', 'vcon:' .. uuid)
redis.call('ZREM', K_LISTING, 'vcon:' .. uuid, uuid)
local rev = K_TERMS .. uuid
for _, term in ipairs(redis.call('SMEMBERS', rev)) do
  redis.call('SREM', term, uuid)
end
redis.call('DEL', rev)
redis.call('HDEL', K_CREATED, uuid)
redis.call('HDEL', K_PENDING, uuid)
return existed
";

/// `delete_vcon`: ARGV = uuid.
const LUA_DELETE: &str = r"
local existed = redis.call('DEL', 'vcon:' .. ARGV[1])
redis.call('HDEL', K_PENDING, ARGV[1])
return existed
";

/// `expire_vcon`: ARGV = uuid, ttl_ms (empty: persist).
const LUA_EXPIRE: &str = r"
local uuid = ARGV[1]
local key = 'vcon:' .. uuid
if redis.call('EXISTS', key) == 0 then
  redis.call('HDEL', K_PENDING, uuid)
  return 0
end
if ARGV[2] == '' then
  redis.call('PERSIST', key)
  redis.call('HDEL', K_PENDING, uuid)
elseif waits(uuid) then
  redis.call('HSET', K_PENDING, uuid, now_ms() + tonumber(ARGV[2]))
  redis.call('PERSIST', key)
else
  redis.call('PEXPIRE', key, ARGV[2])
end
return 1
";

/// `push`: ARGV = list, uuids….
const LUA_PUSH: &str = r"
local list = ARGV[1]
local uuids = {}
for i = 2, #ARGV do uuids[#uuids + 1] = ARGV[i] end
push_all('RPUSH', list, uuids)
redis.call('SADD', K_LISTS, list)
if not is_dlq(list) then
  for _, uuid in ipairs(uuids) do hold(uuid) end
end
return #uuids
";

/// The non-blocking claim: ARGV = host, owner, max, lists…. Moves up to max uuids from the head
/// of the first non-empty list to the tail of the worker's processing list, registered first.
/// Answers {list, {uuids}} or nil.
const LUA_CLAIM: &str = r"
local host, owner, max = ARGV[1], ARGV[2], tonumber(ARGV[3])
for a = 4, #ARGV do
  local list = ARGV[a]
  local items = redis.call('LRANGE', list, 0, max - 1)
  if #items > 0 then
    local pkey = K_PROC_PREFIX .. host .. ':' .. owner .. ':' .. list
    redis.call('HSETNX', K_PROC, pkey, host .. ':' .. list)
    redis.call('SADD', K_LISTS, list)
    redis.call('LTRIM', list, #items, -1)
    push_all('RPUSH', pkey, items)
    return {list, items}
  end
end
return false
";

/// `finish` and `remove_entry`: ARGV = nitems, (key, uuid)…, npushes, (list, uuid)…, ndead,
/// (list, uuid, note)…. Pushes come first, so a vCon moving on from one list to the next never
/// looks as if it waited nowhere. Answers how many items were removed.
const LUA_FINISH: &str = r"
local i = 1
local nitems = tonumber(ARGV[i]); i = i + 1
local items_at = i
i = i + 2 * nitems
local npushes = tonumber(ARGV[i]); i = i + 1
local seen = {}
for p = 1, npushes do
  local list, uuid = ARGV[i], ARGV[i + 1]; i = i + 2
  redis.call('RPUSH', list, uuid)
  if not seen[list] then redis.call('SADD', K_LISTS, list); seen[list] = true end
  if not is_dlq(list) then hold(uuid) end
end
local ndead = tonumber(ARGV[i]); i = i + 1
for d = 1, ndead do
  local list, uuid, note = ARGV[i], ARGV[i + 1], ARGV[i + 2]; i = i + 3
  redis.call('RPUSH', list, uuid)
  redis.call('HSET', K_NOTES .. list, uuid, note)
  if not seen[list] then redis.call('SADD', K_LISTS, list); seen[list] = true end
  if not is_dlq(list) then hold(uuid) end
end
local done = 0
for t = 0, nitems - 1 do
  local key, uuid = ARGV[items_at + 2 * t], ARGV[items_at + 2 * t + 1]
  if redis.call('LREM', key, 1, uuid) > 0 then
    done = done + 1
    removed(key, uuid)
  end
end
return done
";

/// Puts a processing list back at the front of its source list, in order, and unregisters it:
/// ARGV = key, force (1: whatever its host's heartbeat says). Answers how many moved, or -1 when
/// its host is alive.
const LUA_REQUEUE: &str = r"
local pkey = ARGV[1]
local v = redis.call('HGET', K_PROC, pkey)
if not v then return 0 end
local host, src = split_owner(v)
if ARGV[2] ~= '1' and redis.call('EXISTS', K_HEARTBEAT .. host) == 1 then return -1 end
local n = 0
while redis.call('LMOVE', pkey, src, 'RIGHT', 'LEFT') do n = n + 1 end
redis.call('HDEL', K_PROC, pkey)
return n
";

/// `pop_back`: ARGV = list, count.
const LUA_POP_BACK: &str = r"
local list = ARGV[1]
local items = redis.call('RPOP', list, tonumber(ARGV[2]))
if not items then return {} end
for _, uuid in ipairs(items) do removed(list, uuid) end
return items
";

/// `len`: ARGV = list. The list plus its claimed items.
const LUA_LEN: &str = r"
local list = ARGV[1]
local n = redis.call('LLEN', list)
local reg = redis.call('HGETALL', K_PROC)
for r = 1, #reg, 2 do
  local _, src = split_owner(reg[r + 1])
  if src == list then n = n + redis.call('LLEN', reg[r]) end
end
return n
";

/// `lists`: every registered list with its length, claimed items included, as a flat
/// {name, count, …}.
const LUA_LISTS: &str = r"
local counts = {}
for _, list in ipairs(redis.call('SMEMBERS', K_LISTS)) do
  counts[list] = redis.call('LLEN', list)
end
local reg = redis.call('HGETALL', K_PROC)
for r = 1, #reg, 2 do
  local _, src = split_owner(reg[r + 1])
  counts[src] = (counts[src] or redis.call('LLEN', src)) + redis.call('LLEN', reg[r])
end
local out = {}
for list, n in pairs(counts) do
  if n > 0 then out[#out + 1] = list; out[#out + 1] = n end
end
return out
";

/// `list_uuids`: ARGV = max score, min score, offset, limit. Walks the listing newest first,
/// reading `vcon:{uuid}` and bare `{uuid}` members as one uuid, each once.
const LUA_LIST_UUIDS: &str = r"
local offset, limit = tonumber(ARGV[3]), tonumber(ARGV[4])
local out, seen, skipped, pos = {}, {}, 0, 0
if limit <= 0 then return out end
while true do
  local members = redis.call('ZREVRANGEBYSCORE', K_LISTING, ARGV[1], ARGV[2], 'LIMIT', pos, 500)
  pos = pos + #members
  for _, m in ipairs(members) do
    local uuid = m
    if string.sub(m, 1, 5) == 'vcon:' then uuid = string.sub(m, 6) end
    if not seen[uuid] then
      seen[uuid] = true
      if skipped < offset then
        skipped = skipped + 1
      else
        out[#out + 1] = uuid
        if #out >= limit then return out end
      end
    end
  end
  if #members < 500 then return out end
end
";

/// The broker's Lua scripts, with the key names (and the RedisJSON choice) compiled in.
struct Scripts {
    ingest: Script,
    put: Script,
    forget: Script,
    delete: Script,
    expire: Script,
    push: Script,
    claim: Script,
    finish: Script,
    requeue: Script,
    pop_back: Script,
    len: Script,
    lists: Script,
    list_uuids: Script,
}

impl Scripts {
    fn new(json: bool) -> Self {
        let prelude = LUA_PRELUDE
            .replace("{json}", if json { "true" } else { "false" })
            .replace("{created}", CREATED)
            .replace("{terms}", TERMS_PREFIX)
            .replace("{waiting}", WAITING)
            .replace("{pending}", PENDING_TTL)
            .replace("{notes}", NOTES_PREFIX)
            .replace("{lists}", LISTS)
            .replace("{heartbeat}", HEARTBEAT_PREFIX)
            .replace("{proc_prefix}", PROCESSING_PREFIX)
            .replace("{proc}", PROCESSING)
            .replace("{listing}", LISTING)
            .replace("{chunk}", &LUA_CHUNK.to_string());
        let script = |body: &str| Script::new(&format!("{prelude}\n{body}"));
        Self {
            ingest: script(LUA_INGEST),
            put: script(LUA_PUT),
            forget: script(LUA_FORGET),
            delete: script(LUA_DELETE),
            expire: script(LUA_EXPIRE),
            push: script(LUA_PUSH),
            claim: script(LUA_CLAIM),
            finish: script(LUA_FINISH),
            requeue: script(LUA_REQUEUE),
            pop_back: script(LUA_POP_BACK),
            len: script(LUA_LEN),
            lists: script(LUA_LISTS),
            list_uuids: script(LUA_LIST_UUIDS),
        }
    }
}

/// A pooled connection, with what the pool needs to know to drop it.
struct Conn {
    con: redis::Connection,
    /// The pool's generation when it was opened: a connection error anywhere ends a generation.
    generation: u64,
    /// It failed on the wire (its replies may be out of step): never reuse it.
    broken: bool,
}

/// Opens connections with timeouts, and drops the ones a connection error made suspect.
struct Manager {
    client: redis::Client,
    generation: Arc<AtomicU64>,
}

impl r2d2::ManageConnection for Manager {
    type Connection = Conn;
    type Error = RedisError;

    fn connect(&self) -> Result<Conn, RedisError> {
        let generation = self.generation.load(Ordering::Acquire);
        let con = self.client.get_connection_with_timeout(CONNECT_TIMEOUT)?;
        con.set_read_timeout(Some(IO_TIMEOUT))?;
        con.set_write_timeout(Some(IO_TIMEOUT))?;
        Ok(Conn {
            con,
            generation,
            broken: false,
        })
    }

    fn is_valid(&self, conn: &mut Conn) -> Result<(), RedisError> {
        redis::cmd("PING").query::<()>(&mut conn.con)
    }

    fn has_broken(&self, conn: &mut Conn) -> bool {
        conn.broken
            || conn.generation != self.generation.load(Ordering::Acquire)
            || !redis::ConnectionLike::is_open(&conn.con)
    }
}

/// Sends the pool's own connection failures to tracing (r2d2 logs through `log` otherwise).
#[derive(Debug)]
struct PoolErrors;

impl r2d2::HandleError<RedisError> for PoolErrors {
    fn handle_error(&self, error: RedisError) {
        tracing::debug!("Redis broker: opening a connection: {error}");
    }
}

/// The running host's heartbeat thread.
struct Heartbeat {
    /// Dropping it stops the thread.
    stop: mpsc::Sender<()>,
    thread: JoinHandle<()>,
}

/// The Redis broker. See the module documentation for the key layout and the delivery
/// guarantees.
pub struct RedisBroker {
    /// The server, without credentials, for errors and logs.
    url: String,
    pool: r2d2::Pool<Manager>,
    generation: Arc<AtomicU64>,
    scripts: Scripts,
    /// Whether the RedisJSON module stores the hot copies.
    json: bool,
    /// Names this handle's claims (random per process), and its heartbeat.
    host_id: String,
    /// Whether this handle belongs to a running host (it then takes back dead hosts' claims).
    run: bool,
    heartbeat: Mutex<Option<Heartbeat>>,
    /// Processing lists a failed claim may have moved items into without the worker hearing of
    /// it: put back before that worker's next claim.
    in_doubt: Mutex<HashSet<String>>,
}

impl std::fmt::Debug for RedisBroker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisBroker")
            .field("url", &self.url)
            .field("host_id", &self.host_id)
            .field("run", &self.run)
            .field("redis_json", &self.json)
            .finish_non_exhaustive()
    }
}

/// How the server is named in errors and logs: the address and database of the parsed URL,
/// so no credential can ever appear (nothing of the URL's user info is kept).
fn server_name(client: &redis::Client) -> String {
    let info = client.get_connection_info();
    format!("redis://{}/{}", info.addr, info.redis.db)
}

/// Whether an error leaves the connection unusable (or its replies out of step).
fn connection_failed(err: &RedisError) -> bool {
    err.is_io_error()
        || err.is_timeout()
        || err.is_connection_dropped()
        || err.is_unrecoverable_error()
}

/// The largest time to live passed to Redis (about 300 years): Lua computes deadlines in
/// doubles, exact only below 2^53, and Redis refuses expiries that overflow.
const MAX_TTL_MS: u64 = 10_000_000_000_000;

/// The most items one claim or pop moves: Lua numbers are doubles, and Redis wants integers.
const MAX_COUNT: usize = i32::MAX as usize;

fn ttl_ms(ttl: Duration) -> u64 {
    u64::try_from(ttl.as_millis())
        .unwrap_or(u64::MAX)
        .clamp(1, MAX_TTL_MS)
}

fn score_seconds(us: i64) -> i64 {
    us.div_euclid(1_000_000)
}

fn item(key: String, uuid: String) -> ItemId {
    ItemId(ItemKey::InList { key, uuid })
}

impl RedisBroker {
    /// How often a running host refreshes its heartbeat. Six refreshes fit in one
    /// [`RedisBroker::HEARTBEAT_EXPIRY`], so a slow Redis or a short network hiccup does not
    /// make a live host look dead.
    pub const HEARTBEAT_EVERY: Duration = Duration::from_secs(5);

    /// How long a heartbeat lives without being refreshed. Other hosts take a host's claims back
    /// once it has lapsed, so this (plus their 10 s requeue interval) is how long a crashed host's
    /// in-flight vCons wait; shorter would risk taking work from a host that is merely slow.
    pub const HEARTBEAT_EXPIRY: Duration = Duration::from_secs(30);

    /// How long an idle claim blocks in Redis (`BLMOVE` on the first list) before answering that
    /// there is nothing: idle workers wait in Redis instead of polling, and still come back four
    /// times a second to notice a stop request, a reload, or work on a lower-priority list.
    pub const IDLE_BLOCK: Duration = Duration::from_millis(200);

    /// Opens the broker for a client (`vcon-host ingest`, the API, the DLQ commands): no
    /// heartbeat, and [`Broker::requeue_abandoned`] releases nothing, since a client cannot
    /// tell whether the hosts' claims are alive. Fails if Redis cannot be reached, so a wrong
    /// URL is reported at start.
    pub fn open(url: &str) -> Result<Self, BrokerError> {
        Self::connect(url, false)
    }

    /// Opens the broker for `vcon-host run`: starts this host's heartbeat (refreshed every
    /// [`RedisBroker::HEARTBEAT_EVERY`], expiring after [`RedisBroker::HEARTBEAT_EXPIRY`]), the
    /// sign other hosts read before taking back its claims.
    pub fn open_for_run(url: &str) -> Result<Self, BrokerError> {
        Self::open_for_run_with_heartbeat(url, Self::HEARTBEAT_EVERY, Self::HEARTBEAT_EXPIRY)
    }

    /// [`RedisBroker::open_for_run`] with other heartbeat timings: tests use short ones to play
    /// a crashed host, and an operator may trade faster failover against the risk of taking
    /// work from a host that is only slow. `every` should be well under `expiry`.
    pub fn open_for_run_with_heartbeat(
        url: &str,
        every: Duration,
        expiry: Duration,
    ) -> Result<Self, BrokerError> {
        let broker = Self::connect(url, true)?;
        broker.beat(expiry)?;
        let (stop, stopped) = mpsc::channel::<()>();
        let key = broker.heartbeat_key();
        let pool = broker.pool.clone();
        let generation = Arc::clone(&broker.generation);
        let shown = broker.url.clone();
        let value = heartbeat_value();
        let thread = std::thread::Builder::new()
            .name("vcon-redis-heartbeat".into())
            .spawn(move || loop {
                match stopped.recv_timeout(every) {
                    Err(RecvTimeoutError::Timeout) => {}
                    Ok(()) | Err(RecvTimeoutError::Disconnected) => return,
                }
                match beat_once(&pool, &generation, &key, &value, expiry) {
                    Ok(true) => {}
                    Ok(false) => tracing::warn!(
                        "Redis broker {shown}: this host's heartbeat had lapsed; other hosts may \
                         have taken back (and will redo) the vCons it was working on"
                    ),
                    Err(err) => tracing::warn!(
                        "Redis broker {shown}: cannot refresh this host's heartbeat (retrying in \
                         {every:?}): {err}"
                    ),
                }
            })
            .map_err(|source| BrokerError::RedisData {
                url: broker.url.clone(),
                key: broker.heartbeat_key(),
                problem: format!("cannot start the heartbeat thread: {source}"),
            })?;
        *broker.heartbeat_guard() = Some(Heartbeat { stop, thread });
        Ok(broker)
    }

    fn connect(url: &str, run: bool) -> Result<Self, BrokerError> {
        let client = redis::Client::open(url).map_err(|source| BrokerError::Redis {
            // Unparsed, so nothing of it is shown but the scheme.
            url: format!("{}://…", url.split("://").next().unwrap_or("redis")),
            source,
        })?;
        let shown = server_name(&client);
        let generation = Arc::new(AtomicU64::new(0));
        let pool = r2d2::Pool::builder()
            .max_size(POOL_SIZE)
            .min_idle(Some(1))
            .connection_timeout(CONNECT_TIMEOUT)
            // A PING per checkout would double the round trips; connection errors retire
            // connections instead (see `Manager::has_broken`).
            .test_on_check_out(false)
            .error_handler(Box::new(PoolErrors))
            .build(Manager {
                client,
                generation: Arc::clone(&generation),
            })
            .map_err(|source| BrokerError::RedisPool {
                url: shown.clone(),
                source,
            })?;
        let mut broker = Self {
            url: shown,
            pool,
            generation,
            scripts: Scripts::new(false),
            json: false,
            host_id: format!("{:016x}", rand::random::<u64>()),
            run,
            heartbeat: Mutex::new(None),
            in_doubt: Mutex::new(HashSet::new()),
        };
        broker.json = broker.detect_redis_json()?;
        if broker.json {
            broker.scripts = Scripts::new(true);
            tracing::info!(
                "Redis broker {}: RedisJSON is loaded: hot copies are JSON documents, as the \
                 Python server writes them",
                broker.url
            );
        }
        Ok(broker)
    }

    /// Whether the RedisJSON module is loaded (`MODULE LIST`). A server that refuses the command
    /// (an ACL, a managed service) is taken to have none.
    fn detect_redis_json(&self) -> Result<bool, BrokerError> {
        let modules =
            self.with_conn(
                |con| match redis::cmd("MODULE").arg("LIST").query::<Value>(con) {
                    Err(err) if !connection_failed(&err) => Ok(Value::Nil),
                    answer => answer,
                },
            )?;
        fn names_json(value: &Value) -> bool {
            match value {
                Value::BulkString(bytes) => bytes.eq_ignore_ascii_case(b"rejson"),
                Value::SimpleString(text) => text.eq_ignore_ascii_case("rejson"),
                Value::Array(items) | Value::Set(items) => items.iter().any(names_json),
                Value::Map(pairs) => pairs.iter().any(|(k, v)| names_json(k) || names_json(v)),
                _ => false,
            }
        }
        Ok(names_json(&modules))
    }

    /// This handle's host id: the name of its heartbeat and of its processing lists.
    pub fn host_id(&self) -> &str {
        &self.host_id
    }

    /// Whether hot copies are RedisJSON documents (the module is loaded) rather than strings.
    pub fn uses_redis_json(&self) -> bool {
        self.json
    }

    /// Stops refreshing this host's heartbeat without giving anything back: once it lapses,
    /// other hosts take back this handle's claims, as they would a crashed host's, and dropping
    /// the handle afterwards releases nothing. Tests use it to play a host that died.
    pub fn stop_heartbeat(&self) {
        let heartbeat = self.heartbeat_guard().take();
        if let Some(Heartbeat { stop, thread }) = heartbeat {
            drop(stop);
            let _ = thread.join();
        }
    }

    fn heartbeat_key(&self) -> String {
        format!("{HEARTBEAT_PREFIX}{}", self.host_id)
    }

    fn heartbeat_guard(&self) -> MutexGuard<'_, Option<Heartbeat>> {
        self.heartbeat
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn in_doubt_guard(&self) -> MutexGuard<'_, HashSet<String>> {
        self.in_doubt
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn beat(&self, expiry: Duration) -> Result<(), BrokerError> {
        self.with_conn(|con| {
            redis::cmd("SET")
                .arg(self.heartbeat_key())
                .arg(heartbeat_value())
                .arg("PX")
                .arg(ttl_ms(expiry))
                .query::<()>(con)
        })
    }

    fn err(&self, source: RedisError) -> BrokerError {
        BrokerError::Redis {
            url: self.url.clone(),
            source,
        }
    }

    fn data_err(&self, key: &str, problem: impl Into<String>) -> BrokerError {
        BrokerError::RedisData {
            url: self.url.clone(),
            key: key.to_owned(),
            problem: problem.into(),
        }
    }

    /// Runs `op` on a pooled connection; a connection error retires that connection and every
    /// one opened before it.
    fn with_conn<T>(
        &self,
        op: impl FnOnce(&mut redis::Connection) -> redis::RedisResult<T>,
    ) -> Result<T, BrokerError> {
        with_pooled(&self.pool, &self.generation, op).map_err(|err| match err {
            PoolOrRedis::Pool(source) => BrokerError::RedisPool {
                url: self.url.clone(),
                source,
            },
            PoolOrRedis::Redis(source) => self.err(source),
        })
    }

    fn processing_key(&self, owner: &str, list: &str) -> String {
        format!("{PROCESSING_PREFIX}{}:{owner}:{list}", self.host_id)
    }

    /// Moves a processing list back to the front of its source list (`force`: whatever its
    /// host's heartbeat says). `None` when its host is alive.
    fn requeue_key(&self, key: &str, force: bool) -> Result<Option<u64>, BrokerError> {
        let moved: i64 = self.with_conn(|con| {
            self.scripts
                .requeue
                .arg(key)
                .arg(if force { "1" } else { "0" })
                .invoke(con)
        })?;
        Ok(u64::try_from(moved).ok())
    }

    /// The processing lists of the registry, with their hosts and source lists.
    fn registry(&self) -> Result<Vec<(String, String, String)>, BrokerError> {
        let entries: Vec<(String, String)> =
            self.with_conn(|con| redis::cmd("HGETALL").arg(PROCESSING).query(con))?;
        entries
            .into_iter()
            .map(|(key, value)| match value.split_once(':') {
                Some((host, list)) => Ok((key, host.to_owned(), list.to_owned())),
                None => Err(self.data_err(
                    PROCESSING,
                    format!("field {key} is {value:?}, not `host_id:list`"),
                )),
            })
            .collect()
    }

    /// Puts back the processing lists a failed claim of this owner may have filled.
    fn settle_doubts(&self, owner: &str, lists: &[String]) -> Result<(), BrokerError> {
        let doubtful: Vec<String> = {
            let in_doubt = self.in_doubt_guard();
            if in_doubt.is_empty() {
                return Ok(());
            }
            lists
                .iter()
                .map(|list| self.processing_key(owner, list))
                .filter(|key| in_doubt.contains(key))
                .collect()
        };
        for key in doubtful {
            if let Some(moved @ 1..) = self.requeue_key(&key, true)? {
                tracing::warn!(
                    "Redis broker {}: put back {moved} uuids a claim that failed on the wire had \
                     taken",
                    self.url
                );
            }
            self.in_doubt_guard().remove(&key);
        }
        Ok(())
    }

    fn mark_in_doubt(&self, keys: impl IntoIterator<Item = String>) {
        self.in_doubt_guard().extend(keys);
    }

    /// The non-blocking claim over `lists`.
    fn claim_now(
        &self,
        lists: &[String],
        owner: &str,
        max: usize,
    ) -> Result<Option<(String, Vec<String>)>, BrokerError> {
        self.with_conn(|con| {
            let mut call = self.scripts.claim.prepare_invoke();
            call.arg(&self.host_id).arg(owner).arg(max);
            for list in lists {
                call.arg(list);
            }
            call.invoke(con)
        })
    }

    /// Blocks up to [`RedisBroker::IDLE_BLOCK`] for one uuid on `list`.
    fn claim_blocking(&self, list: &str, owner: &str) -> Result<Option<String>, BrokerError> {
        let key = self.processing_key(owner, list);
        let (moved,): (Option<String>,) = self.with_conn(|con| {
            redis::pipe()
                // HSETNX and SADD change nothing when already there, so an idle worker's
                // blocking claims write nothing to the AOF or the replicas.
                .cmd("HSETNX")
                .arg(PROCESSING)
                .arg(&key)
                .arg(format!("{}:{list}", self.host_id))
                .ignore()
                .cmd("SADD")
                .arg(LISTS)
                .arg(list)
                .ignore()
                .cmd("BLMOVE")
                .arg(list)
                .arg(&key)
                .arg("LEFT")
                .arg("RIGHT")
                .arg(Self::IDLE_BLOCK.as_secs_f64())
                .query(con)
        })?;
        Ok(moved)
    }

    fn claim_inner(
        &self,
        lists: &[String],
        owner: &str,
        max: usize,
    ) -> Result<Option<Claim>, BrokerError> {
        let claim = |list: String, uuids: Vec<String>| {
            let key = self.processing_key(owner, &list);
            Claim {
                items: uuids
                    .into_iter()
                    .map(|uuid| ClaimedItem {
                        id: item(key.clone(), uuid.clone()),
                        uuid,
                    })
                    .collect(),
                list,
            }
        };
        if let Some((list, uuids)) = self.claim_now(lists, owner, max)? {
            return Ok(Some(claim(list, uuids)));
        }
        let Some(first) = lists.first() else {
            return Ok(None);
        };
        let Some(head) = self.claim_blocking(first, owner)? else {
            return Ok(None);
        };
        let mut uuids = vec![head];
        if max > 1 {
            if let Some((_, more)) = self.claim_now(std::slice::from_ref(first), owner, max - 1)? {
                uuids.extend(more);
            }
        }
        Ok(Some(claim(first.clone(), uuids)))
    }

    fn finish_inner(&self, items: &[(&str, &str)], finish: &Finish) -> Result<u64, BrokerError> {
        self.with_conn(|con| {
            let mut call = self.scripts.finish.prepare_invoke();
            call.arg(items.len());
            for (key, uuid) in items {
                call.arg(*key).arg(*uuid);
            }
            call.arg(finish.pushes.len());
            for (list, uuid) in &finish.pushes {
                call.arg(list).arg(uuid);
            }
            call.arg(finish.dead_letters.len());
            for dead in &finish.dead_letters {
                call.arg(&dead.list).arg(&dead.uuid).arg(&dead.note);
            }
            call.invoke(con)
        })
    }

    /// Gives back what this host still holds and withdraws its heartbeat, so other hosts (or the
    /// next start) need not wait for it to lapse.
    fn release_own(&self) -> Result<u64, BrokerError> {
        let mut moved = 0;
        for (key, host, _) in self.registry()? {
            if host == self.host_id {
                moved += self.requeue_key(&key, true)?.unwrap_or(0);
            }
        }
        self.with_conn(|con| redis::cmd("DEL").arg(self.heartbeat_key()).query::<()>(con))?;
        Ok(moved)
    }
}

impl Drop for RedisBroker {
    fn drop(&mut self) {
        let heartbeat = self.heartbeat_guard().take();
        let Some(Heartbeat { stop, thread }) = heartbeat else {
            return;
        };
        drop(stop);
        let _ = thread.join();
        match self.release_own() {
            Ok(0) => {}
            Ok(n) => tracing::warn!(
                "Redis broker {}: put back {n} uuids this host had claimed and not finished",
                self.url
            ),
            Err(err) => tracing::warn!(
                "Redis broker {}: cannot give back this host's claims on stopping (other hosts \
                 take them once its heartbeat lapses): {err}",
                self.url
            ),
        }
    }
}

/// Why a pooled operation failed.
enum PoolOrRedis {
    Pool(r2d2::Error),
    Redis(RedisError),
}

fn with_pooled<T>(
    pool: &r2d2::Pool<Manager>,
    generation: &AtomicU64,
    op: impl FnOnce(&mut redis::Connection) -> redis::RedisResult<T>,
) -> Result<T, PoolOrRedis> {
    let mut conn = loop {
        let mut conn = pool.get().map_err(PoolOrRedis::Pool)?;
        if conn.generation == generation.load(Ordering::Acquire) {
            break conn;
        }
        // Opened before a connection error: likely to a server that has since restarted.
        // Dropping it (marked) makes the pool close it and open a fresh one.
        conn.broken = true;
    };
    op(&mut conn.con).map_err(|err| {
        if connection_failed(&err) {
            conn.broken = true;
            generation.fetch_add(1, Ordering::AcqRel);
        }
        PoolOrRedis::Redis(err)
    })
}

fn heartbeat_value() -> String {
    let host = std::env::var("HOSTNAME").unwrap_or_default();
    format!("vcon-host pid {} {host}", std::process::id())
        .trim_end()
        .to_owned()
}

/// Refreshes a heartbeat; answers whether it was still there (not lapsed).
fn beat_once(
    pool: &r2d2::Pool<Manager>,
    generation: &AtomicU64,
    key: &str,
    value: &str,
    expiry: Duration,
) -> Result<bool, String> {
    with_pooled(pool, generation, |con| {
        redis::cmd("SET")
            .arg(key)
            .arg(value)
            .arg("PX")
            .arg(ttl_ms(expiry))
            .arg("GET")
            .query::<Option<String>>(con)
    })
    .map(|previous| previous.is_some())
    .map_err(|err| match err {
        PoolOrRedis::Pool(err) => err.to_string(),
        PoolOrRedis::Redis(err) => err.to_string(),
    })
}

impl Broker for RedisBroker {
    fn ingest(
        &self,
        vcons: &[HotVcon],
        lists: &[String],
        ttl: Option<Duration>,
    ) -> Result<(), BrokerError> {
        if vcons.is_empty() {
            return Ok(());
        }
        self.with_conn(|con| {
            let mut call = self.scripts.ingest.prepare_invoke();
            call.arg(ttl.map_or(0, ttl_ms)).arg(lists.len());
            for list in lists {
                call.arg(list);
            }
            call.arg(vcons.len());
            for v in vcons {
                call.arg(&v.uuid)
                    .arg(&*v.json)
                    .arg(score_seconds(v.created_at_us))
                    .arg(v.created_at_us)
                    .arg(v.search_keys.len());
                for key in &v.search_keys {
                    call.arg(key);
                }
            }
            call.invoke::<i64>(con).map(drop)
        })
    }

    /// Keeps the key's time to live (`SET … KEEPTTL`: the Python server's link writes clear it,
    /// and processed vCons then live forever). A vCon read back without its search keys keeps
    /// its index entries.
    fn put_vcon(&self, v: &HotVcon) -> Result<(), BrokerError> {
        self.with_conn(|con| {
            let mut call = self.scripts.put.prepare_invoke();
            call.arg(&v.uuid)
                .arg(&*v.json)
                .arg(score_seconds(v.created_at_us))
                .arg(v.created_at_us)
                .arg(if v.search_keys.is_empty() { "0" } else { "1" });
            for key in &v.search_keys {
                call.arg(key);
            }
            call.invoke::<i64>(con).map(drop)
        })
    }

    /// One round trip (`MGET`, or `JSON.MGET` with RedisJSON, plus the dates). A document that
    /// no longer parses as a vCon of that uuid (another program wrote the key) is answered as
    /// absent, with a warning: the worker then reads the vCon back from the storages or
    /// dead-letters it, instead of failing its whole batch on every retry.
    fn get_vcons(&self, uuids: &[&str]) -> Result<Vec<Option<HotVcon>>, BrokerError> {
        if uuids.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<String> = uuids.iter().map(|u| format!("{VCON_PREFIX}{u}")).collect();
        #[allow(clippy::type_complexity)]
        let (docs, dates, scores): (
            Vec<Option<Vec<u8>>>,
            Vec<Option<i64>>,
            Vec<Option<f64>>,
        ) = self.with_conn(|con| {
            let mut pipe = redis::pipe();
            if self.json {
                pipe.cmd("JSON.MGET").arg(&keys).arg(".");
            } else {
                pipe.cmd("MGET").arg(&keys);
            }
            pipe.cmd("HMGET").arg(CREATED).arg(uuids);
            pipe.cmd("ZMSCORE").arg(LISTING).arg(&keys);
            pipe.query(con)
        })?;
        if docs.len() != uuids.len() || dates.len() != uuids.len() || scores.len() != uuids.len() {
            return Err(self.data_err(
                VCON_PREFIX,
                format!(
                    "asked about {} vCons, Redis answered {} documents, {} dates, {} scores",
                    uuids.len(),
                    docs.len(),
                    dates.len(),
                    scores.len()
                ),
            ));
        }
        let now = now_us();
        Ok(uuids
            .iter()
            .zip(docs)
            .zip(dates.into_iter().zip(scores))
            .map(|((uuid, doc), (date, score))| {
                let doc = doc?;
                // Written by this broker: the exact date; by Python: its listing score.
                let first_stored = date
                    .or_else(|| score.map(|s| (s * 1e6) as i64))
                    .unwrap_or(now);
                match HotVcon::from_json(doc.into(), first_stored) {
                    Ok(vcon) if vcon.uuid == *uuid => Some(vcon),
                    Ok(other) => {
                        tracing::warn!(
                            "Redis broker {}: {VCON_PREFIX}{uuid} holds vCon {}; taken as absent",
                            self.url,
                            other.uuid
                        );
                        None
                    }
                    Err(err) => {
                        tracing::warn!(
                            "Redis broker {}: {VCON_PREFIX}{uuid} is not a valid vCon; taken as \
                             absent: {err}",
                            self.url
                        );
                        None
                    }
                }
            })
            .collect())
    }

    fn delete_vcon(&self, uuid: &str) -> Result<bool, BrokerError> {
        self.with_conn(|con| self.scripts.delete.arg(uuid).invoke::<i64>(con))
            .map(|n| n > 0)
    }

    /// Removes the hot copy, both listing member forms (`vcon:{uuid}` and Python's bare
    /// `{uuid}`), every search set entry and the bookkeeping, in one script.
    fn forget(&self, uuid: &str) -> Result<bool, BrokerError> {
        self.with_conn(|con| self.scripts.forget.arg(uuid).invoke::<i64>(con))
            .map(|n| n > 0)
    }

    /// The listing's scores are whole seconds (the Python server's), so the bounds are too: a
    /// bound inside a second includes that whole second.
    fn list_uuids(&self, page: &ListingPage) -> Result<Vec<String>, BrokerError> {
        let max = page
            .until_us
            .map_or_else(|| "+inf".to_owned(), |us| score_seconds(us).to_string());
        let min = page
            .since_us
            .map_or_else(|| "-inf".to_owned(), |us| score_seconds(us).to_string());
        self.with_conn(|con| {
            self.scripts
                .list_uuids
                .arg(max)
                .arg(min)
                .arg(page.offset)
                .arg(page.limit.min(i64::MAX as u64))
                .invoke(con)
        })
    }

    /// `SINTER` of the term sets, sorted.
    fn search(&self, keys: &[String]) -> Result<Vec<String>, BrokerError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let mut found: Vec<String> =
            self.with_conn(|con| redis::cmd("SINTER").arg(keys).query(con))?;
        found.sort();
        Ok(found)
    }

    /// `PEXPIRE`/`PERSIST`; while the vCon waits in a list the new time to live is pending, and
    /// starts when it waits nowhere.
    fn expire_vcon(&self, uuid: &str, ttl: Option<Duration>) -> Result<bool, BrokerError> {
        let ttl = ttl.map_or_else(String::new, |t| ttl_ms(t).to_string());
        self.with_conn(|con| self.scripts.expire.arg(uuid).arg(ttl).invoke::<i64>(con))
            .map(|n| n > 0)
    }

    fn push(&self, list: &str, uuids: &[&str]) -> Result<(), BrokerError> {
        if uuids.is_empty() {
            return Ok(());
        }
        self.with_conn(|con| {
            self.scripts
                .push
                .arg(list)
                .arg(uuids)
                .invoke::<i64>(con)
                .map(drop)
        })
    }

    /// One script moves up to `max` uuids from the head of the first non-empty list into this
    /// worker's processing list. When every list is empty it blocks in Redis (`BLMOVE` on the
    /// first list, for [`RedisBroker::IDLE_BLOCK`]) and tops the batch up once one arrives. A
    /// claim that failed on the wire may have moved items nobody heard of: the same owner's next
    /// claim puts them back first (an owner is one worker holding one claim at a time, as the
    /// host's are).
    fn claim(
        &self,
        lists: &[String],
        owner: &str,
        max: usize,
    ) -> Result<Option<Claim>, BrokerError> {
        let max = max.clamp(1, MAX_COUNT);
        self.settle_doubts(owner, lists)?;
        match self.claim_inner(lists, owner, max) {
            Ok(claim) => Ok(claim),
            Err(err) => {
                if matches!(err, BrokerError::Redis { .. }) {
                    self.mark_in_doubt(lists.iter().map(|l| self.processing_key(owner, l)));
                }
                Err(err)
            }
        }
    }

    /// One script: the pushes and dead letters (with their notes), then the items' removal
    /// (`LREM key 1 uuid`), and the pending time to live of every vCon that now waits nowhere.
    fn finish(&self, items: &[ItemId], finish: &Finish) -> Result<(), BrokerError> {
        let items: Vec<(&str, &str)> = items
            .iter()
            .filter_map(|id| match &id.0 {
                ItemKey::InList { key, uuid } => Some((key.as_str(), uuid.as_str())),
                ItemKey::Row(_) => None,
            })
            .collect();
        if items.is_empty() && finish.pushes.is_empty() && finish.dead_letters.is_empty() {
            return Ok(());
        }
        self.finish_inner(&items, finish).map(drop)
    }

    /// Takes back the processing lists of hosts whose heartbeat has lapsed (checked in the same
    /// script that moves each list, so a host that comes back in between keeps its work).
    fn requeue_abandoned(&self) -> Result<u64, BrokerError> {
        if !self.run {
            return Ok(0);
        }
        let candidates: Vec<(String, String)> = self
            .registry()?
            .into_iter()
            .filter(|(_, host, _)| *host != self.host_id)
            .map(|(key, host, _)| (key, host))
            .collect();
        if candidates.is_empty() {
            return Ok(0);
        }
        let hosts: Vec<&str> = candidates
            .iter()
            .map(|(_, host)| host.as_str())
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        let alive: Vec<bool> = self.with_conn(|con| {
            let mut pipe = redis::pipe();
            for host in &hosts {
                pipe.cmd("EXISTS").arg(format!("{HEARTBEAT_PREFIX}{host}"));
            }
            pipe.query(con)
        })?;
        let alive: HashMap<&str, bool> = hosts.iter().copied().zip(alive).collect();
        let mut moved = 0;
        for (key, host) in &candidates {
            if alive.get(host.as_str()).copied().unwrap_or(true) {
                continue;
            }
            moved += self.requeue_key(key, false)?.unwrap_or(0);
        }
        Ok(moved)
    }

    fn pop_back(&self, list: &str, count: usize) -> Result<Vec<String>, BrokerError> {
        if count == 0 {
            return Ok(Vec::new());
        }
        let count = count.min(MAX_COUNT);
        self.with_conn(|con| self.scripts.pop_back.arg(list).arg(count).invoke(con))
    }

    /// The list plus the items claimed from it (in processing lists).
    fn len(&self, list: &str) -> Result<u64, BrokerError> {
        self.with_conn(|con| self.scripts.len.arg(list).invoke(con))
    }

    /// The claimed items first (they were taken from the head), then the list. Redis lists keep
    /// no times: `added_at_us` is 0.
    fn entries(&self, list: &str, limit: usize) -> Result<Vec<ListEntry>, BrokerError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let claimed: Vec<String> = self
            .registry()?
            .into_iter()
            .filter(|(_, _, source)| source == list)
            .map(|(key, _, _)| key)
            .collect();
        let stop = i64::try_from(limit).map_or(-1, |l| l - 1);
        let ranges: Vec<Vec<String>> = self.with_conn(|con| {
            let mut pipe = redis::pipe();
            for key in &claimed {
                pipe.cmd("LRANGE").arg(key).arg(0).arg(stop);
            }
            pipe.cmd("LRANGE").arg(list).arg(0).arg(stop);
            pipe.query(con)
        })?;
        let mut entries: Vec<ListEntry> = claimed
            .iter()
            .chain(std::iter::once(&list.to_owned()))
            .zip(ranges)
            .flat_map(|(key, uuids)| {
                uuids.into_iter().map(move |uuid| ListEntry {
                    id: item(key.clone(), uuid.clone()),
                    uuid,
                    note: None,
                    added_at_us: 0,
                })
            })
            .take(limit)
            .collect();
        if list.starts_with("DLQ:") && !entries.is_empty() {
            let uuids: Vec<&str> = entries.iter().map(|e| e.uuid.as_str()).collect();
            let notes: Vec<Option<String>> = self.with_conn(|con| {
                redis::cmd("HMGET")
                    .arg(format!("{NOTES_PREFIX}{list}"))
                    .arg(&uuids)
                    .query(con)
            })?;
            for (entry, note) in entries.iter_mut().zip(notes) {
                entry.note = note;
            }
        }
        Ok(entries)
    }

    fn remove_entry(&self, id: &ItemId) -> Result<bool, BrokerError> {
        let ItemKey::InList { key, uuid } = &id.0 else {
            return Ok(false);
        };
        self.finish_inner(&[(key, uuid)], &Finish::default())
            .map(|n| n > 0)
    }

    /// The lists this broker has pushed to or claimed from (`vcon-host:lists`), non-empty ones
    /// only, claimed items included. A list only another program writes is not among them
    /// (`len` and `entries` still read it by name).
    fn lists(&self) -> Result<Vec<(String, u64)>, BrokerError> {
        let flat: Vec<Value> = self.with_conn(|con| self.scripts.lists.invoke(con))?;
        let mut lists = BTreeMap::new();
        for pair in flat.chunks(2) {
            let [name, count] = pair else {
                return Err(self.data_err(LISTS, "odd answer from the lists script"));
            };
            let name: String = redis::from_redis_value(name).map_err(|e| self.err(e))?;
            let count: u64 = redis::from_redis_value(count).map_err(|e| self.err(e))?;
            lists.insert(name, count);
        }
        Ok(lists.into_iter().collect())
    }

    /// Nothing to do: Redis expires keys by itself, and a waiting vCon's expiry is only set
    /// once it waits nowhere. Answers 0.
    fn purge_expired(&self) -> Result<u64, BrokerError> {
        Ok(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_server_name_never_shows_credentials() {
        let client = redis::Client::open("redis://user:secret@host:6390/2").unwrap();
        assert_eq!(server_name(&client), "redis://host:6390/2");
    }

    /// Every script compiles, in both storage modes (RedisJSON is not installed here, so its
    /// mode is otherwise untested). `SCRIPT LOAD` compiles without running or touching data.
    #[test]
    fn every_script_compiles_in_both_modes() {
        let connected = redis::Client::open("redis://127.0.0.1:6379/12")
            .and_then(|c| c.get_connection_with_timeout(Duration::from_secs(2)));
        let mut con = match connected {
            Ok(con) => con,
            Err(err) => {
                assert!(
                    std::env::var("VCON_REQUIRE_SERVICES").as_deref() != Ok("1"),
                    "no Redis on 127.0.0.1:6379: {err}"
                );
                eprintln!("\n*** SKIPPED: no Redis on 127.0.0.1:6379 ({err}) ***\n");
                return;
            }
        };
        for json in [false, true] {
            let s = Scripts::new(json);
            for script in [
                &s.ingest,
                &s.put,
                &s.forget,
                &s.delete,
                &s.expire,
                &s.push,
                &s.claim,
                &s.finish,
                &s.requeue,
                &s.pop_back,
                &s.len,
                &s.lists,
                &s.list_uuids,
            ] {
                if let Err(err) = script.load(&mut con) {
                    panic!("a script (json: {json}) does not compile: {err}");
                }
            }
        }
    }
}
