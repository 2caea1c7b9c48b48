//! [`ObjectStorage`]: the storage operations on an object_store client, run on the plugin's own
//! runtime.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Instant;

use futures_util::stream::{self, BoxStream, StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{Attribute, Attributes, ObjectStore, ObjectStoreExt, PutOptions, PutPayload};
use plugin_sdk::runtime::block_on;
use plugin_sdk::{
    BatchResult, Capabilities, ListPage, ListRequest, OpenContext, ProvisionRequest, Storage,
    StorageError, StoragePlugin, VconRecord,
};

use crate::client::{self, StoreKind};
use crate::codec;
use crate::error::{is_missing_bucket, Error};
use crate::layout::{CanonicalUuid, DateFolder, Entry, Layout};
use crate::options::{self, Compression, Options};

/// The page size of `list` when the request does not give one.
const DEFAULT_PAGE: usize = 100;
/// The largest page `list` answers.
const MAX_PAGE: usize = 10_000;
/// The uuid `status` probes for: never a vCon's (the nil uuid), so the answer is "not found"
/// from a healthy store.
const PROBE_UUID: &str = "00000000-0000-0000-0000-000000000000";

/// An object-store storage: one client, one prefix, the Python `storage.s3` key layout.
#[derive(Debug)]
pub struct ObjectStorage {
    store: Arc<dyn ObjectStore>,
    kind: StoreKind,
    layout: Layout,
    location: String,
    compression: Compression,
    max_concurrency: usize,
}

/// What an object holds, for its headers.
#[derive(Debug, Clone, Copy)]
enum Content {
    Document,
    Pointer,
}

/// Whether an error means "this object is not there" (and not "the bucket is not there").
fn absent(err: &object_store::Error) -> bool {
    matches!(err, object_store::Error::NotFound { .. }) && !is_missing_bucket(err)
}

impl ObjectStorage {
    /// The storage on a built client.
    fn new(client: client::Client, options: &Options) -> Self {
        Self {
            store: client.store,
            kind: client.kind,
            layout: client.layout,
            location: client.location,
            compression: options.compression,
            max_concurrency: options.max_concurrency,
        }
    }

    /// The headers of an object, where the store keeps headers: `Content-Type` always (the
    /// Python module sets none, leaving S3's `binary/octet-stream`), `Content-Encoding: gzip`
    /// for a compressed document.
    fn put_options(&self, content: Content) -> PutOptions {
        let mut attributes = Attributes::new();
        if self.kind.keeps_headers() {
            match content {
                Content::Document => {
                    attributes.insert(Attribute::ContentType, "application/json".into());
                    if self.compression == Compression::Gzip {
                        attributes.insert(Attribute::ContentEncoding, "gzip".into());
                    }
                }
                Content::Pointer => {
                    attributes.insert(Attribute::ContentType, "text/plain".into());
                }
            }
        }
        PutOptions::from(attributes)
    }

    /// Writes the document, then its pointer: a pointer never names an object not yet written.
    async fn save_one(&self, record: &VconRecord<'_>) -> Result<(), Error> {
        let uuid = CanonicalUuid::parse(record.uuid)?;
        let date = DateFolder::from_created_at(record.created_at())?;
        let object = self.layout.object(uuid, date);
        let body =
            codec::encode(record.json, self.compression).map_err(|source| Error::Corrupt {
                path: object.to_string(),
                source,
            })?;
        self.store
            .put_opts(
                &object,
                PutPayload::from(body),
                self.put_options(Content::Document),
            )
            .await
            .map_err(|err| Error::store("writing", &object, err))?;
        let pointer = self.layout.pointer(uuid);
        self.store
            .put_opts(
                &pointer,
                PutPayload::from(date.to_string().into_bytes()),
                self.put_options(Content::Pointer),
            )
            .await
            .map_err(|err| Error::store("writing the lookup pointer", &pointer, err))?;
        Ok(())
    }

    /// The date folder a uuid's pointer names, `None` without a pointer.
    async fn read_pointer(&self, uuid: CanonicalUuid<'_>) -> Result<Option<DateFolder>, Error> {
        let pointer = self.layout.pointer(uuid);
        let body = match self.store.get(&pointer).await {
            Ok(result) => result
                .bytes()
                .await
                .map_err(|err| Error::store("reading the lookup pointer", &pointer, err))?,
            Err(err) if absent(&err) => return Ok(None),
            Err(err) => return Err(Error::store("reading the lookup pointer", &pointer, err)),
        };
        let text = String::from_utf8_lossy(&body);
        DateFolder::parse(&text)
            .map(Some)
            .ok_or_else(|| Error::BadPointer {
                path: pointer.to_string(),
                body: text.chars().take(64).collect(),
            })
    }

    /// Where a uuid's document is: the dated key its pointer names, else the flat key the
    /// Python module's `get` used before pointers. `None` for the pointer means there was none.
    async fn locate(&self, uuid: CanonicalUuid<'_>) -> Result<(Path, Option<DateFolder>), Error> {
        Ok(match self.read_pointer(uuid).await? {
            Some(date) => (self.layout.object(uuid, date), Some(date)),
            None => (self.layout.flat(uuid), None),
        })
    }

    /// Reads the pointer, then the document. A pointer whose document is gone (a delete
    /// interrupted between the two) reads as not stored.
    async fn get_one(&self, uuid: &str) -> Result<Option<Vec<u8>>, Error> {
        let uuid = CanonicalUuid::parse(uuid)?;
        let (object, _) = self.locate(uuid).await?;
        let stored = match self.store.get(&object).await {
            Ok(result) => result
                .bytes()
                .await
                .map_err(|err| Error::store("reading", &object, err))?,
            Err(err) if absent(&err) => return Ok(None),
            Err(err) => return Err(Error::store("reading", &object, err)),
        };
        codec::decode(Vec::from(stored))
            .map(Some)
            .map_err(|source| Error::Corrupt {
                path: object.to_string(),
                source,
            })
    }

    /// Whether the document a pointer (or the flat key) names exists.
    async fn exists_one(&self, uuid: &str) -> Result<bool, Error> {
        let uuid = CanonicalUuid::parse(uuid)?;
        let (object, _) = self.locate(uuid).await?;
        self.head(&object).await
    }

    async fn head(&self, object: &Path) -> Result<bool, Error> {
        match self.store.head(object).await {
            Ok(_) => Ok(true),
            Err(err) if absent(&err) => Ok(false),
            Err(err) => Err(Error::store("checking", object, err)),
        }
    }

    /// Deletes the document, then the pointer (so an interrupted delete is finished by the
    /// next one). `true` when there was a pointer (as in the Python module) or a flat document.
    async fn delete_one(&self, uuid: &str) -> Result<bool, Error> {
        let uuid = CanonicalUuid::parse(uuid)?;
        let (object, date) = self.locate(uuid).await?;
        if date.is_none() && !self.head(&object).await? {
            return Ok(false);
        }
        self.delete_key(&object, "deleting").await?;
        if date.is_some() {
            let pointer = self.layout.pointer(uuid);
            self.delete_key(&pointer, "deleting the lookup pointer")
                .await?;
        }
        Ok(true)
    }

    /// Deletes one key; one already gone is fine (S3 says so silently, a directory loudly).
    async fn delete_key(&self, path: &Path, action: &'static str) -> Result<(), Error> {
        match self.store.delete(path).await {
            Ok(()) => Ok(()),
            Err(err) if absent(&err) => Ok(()),
            Err(err) => Err(Error::store(action, path, err)),
        }
    }

    /// Every key under `prefix`, as a stream.
    fn listing(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<Path>> {
        self.store.list(prefix).map_ok(|meta| meta.location).boxed()
    }

    /// The uuids of every pointer, in no particular order.
    async fn all_pointer_uuids(&self) -> Result<Vec<String>, Error> {
        let folder = self.layout.lookup_folder();
        let mut uuids = Vec::new();
        let mut keys = self.listing(Some(&folder));
        while let Some(key) = keys.next().await {
            let key = key.map_err(|err| Error::store("listing", &folder, err))?;
            if let Some(uuid) = self.layout.pointer_uuid(&key) {
                uuids.push(uuid);
            }
        }
        Ok(uuids)
    }

    /// A page of uuids (by their pointers) in uuid order, after the cursor.
    async fn list_page(&self, request: &ListRequest) -> Result<ListPage, Error> {
        let limit = match request.limit {
            0 => DEFAULT_PAGE,
            n => usize::try_from(n).unwrap_or(MAX_PAGE).min(MAX_PAGE),
        };
        let after = match request.after.as_deref() {
            Some(after) => {
                Some(CanonicalUuid::parse(after).map_err(|_| Error::BadCursor(after.to_owned()))?)
            }
            None => None,
        };
        // One more than the page, to know whether there is a next page.
        let mut uuids = Vec::with_capacity(limit + 1);
        if self.kind.lists_in_order() {
            let folder = self.layout.lookup_folder();
            let mut keys = match after {
                Some(after) => self
                    .store
                    .list_with_offset(Some(&folder), &self.layout.pointer(after))
                    .map_ok(|meta| meta.location)
                    .boxed(),
                None => self.listing(Some(&folder)),
            };
            while uuids.len() <= limit {
                let Some(key) = keys.next().await else {
                    break;
                };
                let key = key.map_err(|err| Error::store("listing", &folder, err))?;
                if let Some(uuid) = self.layout.pointer_uuid(&key) {
                    uuids.push(uuid);
                }
            }
        } else {
            // A directory walk comes in no order: sort it, then page.
            let mut all = self.all_pointer_uuids().await?;
            all.sort_unstable();
            uuids.extend(
                all.into_iter()
                    .filter(|uuid| after.is_none_or(|after| uuid.as_str() > after.as_str()))
                    .take(limit + 1),
            );
        }
        let next = if uuids.len() > limit {
            uuids.truncate(limit);
            uuids.last().cloned()
        } else {
            None
        };
        Ok(ListPage { uuids, next })
    }

    /// Every key of the layout under the prefix: documents (uuid to date folders) and pointers.
    async fn inventory(
        &self,
    ) -> Result<(BTreeMap<String, BTreeSet<DateFolder>>, BTreeSet<String>), Error> {
        let root = self.layout.root();
        let mut objects: BTreeMap<String, BTreeSet<DateFolder>> = BTreeMap::new();
        let mut pointers = BTreeSet::new();
        let mut keys = self.listing(root.as_ref());
        while let Some(key) = keys.next().await {
            let key = key.map_err(|err| Error::store("listing", self.layout.prefix(), err))?;
            match self.layout.classify(&key) {
                Some(Entry::Object(uuid, date)) => {
                    objects.entry(uuid).or_default().insert(date);
                }
                Some(Entry::Pointer(uuid)) => {
                    pointers.insert(uuid);
                }
                // A flat document needs no pointer (`get` falls back to it), and has no date
                // folder a pointer could name.
                Some(Entry::Flat(_)) | None => {}
            }
        }
        Ok((objects, pointers))
    }

    /// Deletes every key of the layout under the prefix (other objects are left alone) with the
    /// store's bulk delete; answers how many documents were removed.
    async fn clear_all(&self) -> Result<u64, Error> {
        let root = self.layout.root();
        let layout = self.layout.clone();
        let mut documents = 0_u64;
        let mut doomed = Vec::new();
        let mut keys = self.listing(root.as_ref());
        while let Some(key) = keys.next().await {
            let key = key.map_err(|err| Error::store("listing", layout.prefix(), err))?;
            match layout.classify(&key) {
                Some(Entry::Object(..) | Entry::Flat(_)) => {
                    documents += 1;
                    doomed.push(key);
                }
                Some(Entry::Pointer(_)) => doomed.push(key),
                None => {}
            }
        }
        let mut deleted = self
            .store
            .delete_stream(stream::iter(doomed.into_iter().map(Ok)).boxed());
        while let Some(result) = deleted.next().await {
            match result {
                Ok(_) => {}
                Err(err) if absent(&err) => {}
                Err(err) => return Err(Error::store("deleting", layout.prefix(), err)),
            }
        }
        Ok(documents)
    }

    /// Writes the missing pointers of documents found under the prefix (objects the Python
    /// module wrote before it had pointers, or copied in by another tool), so `get` finds them.
    /// With several dated copies of one uuid and no pointer, the latest date wins.
    async fn provision_all(&self, request: &ProvisionRequest) -> Result<serde_json::Value, Error> {
        let removed = if request.recreate {
            self.clear_all().await?
        } else {
            0
        };
        let (objects, pointers) = self.inventory().await?;
        let missing: Vec<(String, DateFolder)> = objects
            .iter()
            .filter(|(uuid, _)| !pointers.contains(*uuid))
            .filter_map(|(uuid, dates)| dates.last().map(|date| (uuid.clone(), *date)))
            .collect();
        let written: Vec<Result<(), Error>> = stream::iter(missing.iter())
            .map(|(uuid, date)| async move {
                let uuid = CanonicalUuid::parse(uuid)?;
                let pointer = self.layout.pointer(uuid);
                self.store
                    .put_opts(
                        &pointer,
                        PutPayload::from(date.to_string().into_bytes()),
                        self.put_options(Content::Pointer),
                    )
                    .await
                    .map(drop)
                    .map_err(|err| Error::store("writing the lookup pointer", &pointer, err))
            })
            .buffered(self.max_concurrency)
            .collect()
            .await;
        written.into_iter().collect::<Result<Vec<()>, Error>>()?;
        Ok(serde_json::json!({
            "location": self.location,
            "recreated": request.recreate,
            "removed": removed,
            "documents": objects.len(),
            "pointers_written": missing.len(),
        }))
    }

    /// Runs `op` on every item, at most `max_concurrency` at once, answering in item order.
    fn batch<'a, T, R, F, Fut>(
        &'a self,
        items: &'a [T],
        op: F,
    ) -> Result<Vec<Result<R, StorageError>>, StorageError>
    where
        F: Fn(&'a T) -> Fut,
        Fut: std::future::Future<Output = Result<R, Error>> + 'a,
    {
        let results: Vec<Result<R, Error>> = block_on(
            stream::iter(items.iter())
                .map(op)
                .buffered(self.max_concurrency)
                .collect(),
        )?;
        Ok(results
            .into_iter()
            .map(|r| r.map_err(StorageError::from))
            .collect())
    }
}

/// Runs a future on the plugin's runtime and converts its error.
fn run<T>(future: impl std::future::Future<Output = Result<T, Error>>) -> Result<T, StorageError> {
    block_on(future)?.map_err(StorageError::from)
}

impl Storage for ObjectStorage {
    fn save(&self, record: &VconRecord<'_>) -> Result<(), StorageError> {
        run(self.save_one(record)).map_err(|err| err.context(format!("saving {}", record.uuid)))
    }

    fn get(&self, uuid: &str) -> Result<Option<Vec<u8>>, StorageError> {
        run(self.get_one(uuid))
    }

    fn delete(&self, uuid: &str) -> Result<bool, StorageError> {
        run(self.delete_one(uuid))
    }

    fn exists(&self, uuid: &str) -> Result<bool, StorageError> {
        run(self.exists_one(uuid))
    }

    fn save_many(&self, records: &[VconRecord<'_>]) -> BatchResult {
        self.batch(records, |record| self.save_one(record))
    }

    fn get_many(&self, uuids: &[&str]) -> Result<Vec<Option<Vec<u8>>>, StorageError> {
        self.batch(uuids, |uuid| self.get_one(uuid))?
            .into_iter()
            .collect()
    }

    fn delete_many(&self, uuids: &[&str]) -> Result<Vec<bool>, StorageError> {
        self.batch(uuids, |uuid| self.delete_one(uuid))?
            .into_iter()
            .collect()
    }

    fn list(&self, request: &ListRequest) -> Result<ListPage, StorageError> {
        run(self.list_page(request))
    }

    fn count(&self) -> Result<u64, StorageError> {
        run(async { Ok(self.all_pointer_uuids().await?.len() as u64) })
    }

    fn status(&self) -> Result<serde_json::Value, StorageError> {
        let started = Instant::now();
        let probe = CanonicalUuid::parse(PROBE_UUID).map_err(StorageError::from)?;
        let pointer = self.layout.pointer(probe);
        run(async {
            match self.store.head(&pointer).await {
                Ok(_) => Ok(()),
                Err(err) if absent(&err) => Ok(()),
                Err(err) => Err(Error::store("probing", &pointer, err)),
            }
        })?;
        Ok(serde_json::json!({
            "store": self.kind.name(),
            "location": self.location,
            "prefix": self.layout.prefix(),
            "compression": self.compression.name(),
            "max_concurrency": self.max_concurrency,
            "reachable": true,
            "latency_ms": started.elapsed().as_secs_f64() * 1000.0,
        }))
    }

    fn provision(&self, request: &ProvisionRequest) -> Result<serde_json::Value, StorageError> {
        run(self.provision_all(request))
    }

    fn clear(&self) -> Result<u64, StorageError> {
        run(self.clear_all())
    }
}

impl StoragePlugin for ObjectStorage {
    type Options = Options;
    const NAME: &'static str = "object-store";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const DESCRIPTION: &'static str =
        "vCons as objects in S3 (and S3-compatible), GCS, Azure Blob or a directory, in the \
         Python storage.s3 key layout";
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
        serde_json::json!({
            "aws_bucket": null,
            "aws_region": null,
            "endpoint_url": null,
            "aws_access_key_id": null,
            "aws_secret_access_key": null,
            "s3_path": "",
            "url": null,
            "store_options": {},
            "compression": "none",
            "max_concurrency": options::DEFAULT_MAX_CONCURRENCY,
            "timeout_ms": options::DEFAULT_TIMEOUT_MS,
            "connect_timeout_ms": options::DEFAULT_CONNECT_TIMEOUT_MS,
            "max_retries": options::DEFAULT_MAX_RETRIES,
            "retry_timeout_ms": options::DEFAULT_RETRY_TIMEOUT_MS,
        })
    }

    fn open(options: Options, _: &OpenContext) -> Result<Self, StorageError> {
        let client = client::build(&options)?;
        tracing::info!(
            location = %client.location,
            compression = options.compression.name(),
            "object-store storage opened"
        );
        Ok(Self::new(client, &options))
    }
}
