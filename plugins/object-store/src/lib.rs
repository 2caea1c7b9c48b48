//! The `object-store` storage plugin: vCons as objects in Amazon S3 or any S3-compatible service
//! (MinIO, Ceph, R2, ...), Google Cloud Storage, Azure Blob Storage or a local directory, through
//! the [`object_store`] crate, in the key layout of the Python vCon Server's `storage.s3`.
//!
//! # Key layout
//!
//! ```text
//! [prefix/]YYYY/MM/DD/{uuid}.vcon     the document, as the host sent it (or gzip)
//! [prefix/]lookup/{uuid}.txt          the lookup pointer; its body is `YYYY/MM/DD`
//! ```
//!
//! The date folder is `created_at` in the document's own UTC offset (a call at 23:30-05:00 on
//! the 5th is filed under the 5th), exactly as the Python module files it. `save` writes the
//! document, then the pointer; `get` and `exists` read the pointer, then the document;
//! `delete` removes the document, then the pointer. A uuid becomes part of a key only after a
//! second check that it is canonical (in the `layout` module).
//!
//! # Python compatibility
//!
//! The options are the Python module's names (`aws_bucket`, `aws_region`, `endpoint_url`,
//! `aws_access_key_id`, `aws_secret_access_key`, `s3_path`), accepted as they are, and the keys
//! are the same byte for byte, pointer included, so a bucket written by either server is read by
//! the other. Objects the Python module wrote before it had pointers (its PR #145) have no
//! pointer, so neither server finds them by uuid; `provision` writes the missing pointers once,
//! instead of searching the bucket on every miss. Where this plugin differs:
//!
//! - documents are stored as the host received them (the Python module stores its own
//!   re-serialisation), with `Content-Type: application/json`;
//! - `compression: gzip` is an extension the Python module cannot read;
//! - errors are reported with a kind the host acts on (retry a throttled or unreachable store,
//!   refuse bad credentials), where the Python module answers `None` for any failure;
//! - one pooled client per storage, not one per call; batches run with bounded concurrency.
//!
//! Beyond S3, `url:` (`s3://`, `gs://`, `az://`, `file://`) reaches the other stores with the
//! same layout, and `store_options` passes the store's own configuration keys.
//!
//! # Why a runtime of its own
//!
//! object_store is asynchronous; the host calls plugins synchronously on its blocking pool. The
//! plugin drives its futures on a small tokio runtime that it owns
//! ([`plugin_sdk::runtime`]): this `cdylib` links its own copy of tokio, and using the host's
//! runtime from here would mix two copies' thread-locals, which is unsound. The runtime's I/O
//! driver serves the connection pool of every storage opened on this plugin, and a batch runs
//! up to `max_concurrency` requests at once on it.

mod client;
mod codec;
mod error;
mod layout;
mod options;
mod storage;

pub use client::StoreKind;
pub use options::{
    Compression, Options, DEFAULT_CONNECT_TIMEOUT_MS, DEFAULT_MAX_CONCURRENCY, DEFAULT_MAX_RETRIES,
    DEFAULT_RETRY_TIMEOUT_MS, DEFAULT_TIMEOUT_MS,
};
pub use storage::ObjectStorage;

plugin_sdk::export_storage_plugin!(ObjectStorage);
