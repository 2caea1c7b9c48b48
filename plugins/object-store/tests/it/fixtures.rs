//! Finding the plugin, opening storages, test documents, and a raw client on the same bucket.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use object_store::aws::AmazonS3Builder;
use object_store::path::Path as Key;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use plugin_loader::{PluginLibrary, StorageInstance, VconRecord};

use crate::s3server::S3Server;

/// The built plugin file: `VCON_PLUGIN_DIR`, else `<workspace>/target/plugins`.
pub(crate) fn plugin_path() -> PathBuf {
    conformance::test_data::built_plugin("object_store")
}

/// The loaded plugin.
pub(crate) fn library() -> &'static PluginLibrary {
    PluginLibrary::load(&plugin_path(), None).unwrap()
}

/// A storage opened with `options`.
pub(crate) fn open(options: &serde_json::Value) -> StorageInstance {
    library()
        .open(&options.to_string())
        .unwrap_or_else(|err| panic!("opening with {options}: {err}"))
}

/// A storage on a fresh bucket of the shared S3 server, with `s3_path`, and the bucket's name.
pub(crate) fn open_s3(server: &S3Server, tag: &str, s3_path: &str) -> (StorageInstance, String) {
    let bucket = server.bucket(tag);
    (open(&server.options(&bucket, s3_path)), bucket)
}

/// A `file://` URL for a directory.
pub(crate) fn file_url(dir: &Path) -> String {
    format!("file://{}", dir.display())
}

/// A vCon document with the fields the host extracts.
#[derive(Debug, Clone)]
pub(crate) struct Doc {
    pub(crate) uuid: String,
    pub(crate) json: Vec<u8>,
    /// `created_at` as written in the document.
    pub(crate) created_at: String,
    pub(crate) created_at_us: i64,
    pub(crate) offset_s: i32,
}

impl Doc {
    /// A document read from a file, its fields extracted as the host would.
    pub(crate) fn from_file(path: &Path) -> Self {
        Self::from_json(std::fs::read(path).unwrap())
    }

    /// A document from its bytes.
    pub(crate) fn from_json(json: Vec<u8>) -> Self {
        let value: serde_json::Value = serde_json::from_slice(&json).unwrap();
        let uuid = value["uuid"].as_str().unwrap().to_owned();
        let created_at = value["created_at"].as_str().unwrap().to_owned();
        let parsed = chrono::DateTime::parse_from_rfc3339(&created_at).unwrap();
        Self {
            uuid,
            json,
            created_at_us: parsed.timestamp_micros(),
            offset_s: parsed.offset().local_minus_utc(),
            created_at,
        }
    }

    /// A small synthetic document.
    pub(crate) fn synthetic(uuid: &str, created_at: &str) -> Self {
        Self::from_json(
            serde_json::json!({
                "uuid": uuid,
                "vcon": "0.0.1",
                "created_at": created_at,
                "parties": [],
                "unknown_key_kept": {"x": [1, 2, 3]},
            })
            .to_string()
            .into_bytes(),
        )
    }

    /// The record the host passes to the plugin.
    pub(crate) fn record(&self) -> VconRecord<'_> {
        VconRecord::new(&self.uuid, &self.json, self.created_at_us).with_offset(self.offset_s)
    }

    /// The date folder the Python module files it under: `fromisoformat(created_at)
    /// .strftime("%Y/%m/%d")`, i.e. the date as written, in the document's own offset.
    pub(crate) fn python_date_folder(&self) -> String {
        self.created_at[..10].replace('-', "/")
    }
}

/// A fresh random canonical uuid.
pub(crate) fn fresh_uuid() -> String {
    conformance::fresh_uuid()
}

/// `count` documents from the fake data set, in a stable order.
pub(crate) fn fake_docs(count: usize) -> Vec<Doc> {
    conformance::test_data::fake_paths(count)
        .iter()
        .map(|p| Doc::from_file(p))
        .collect()
}

/// The large recorded call (270 KB).
pub(crate) fn large_doc() -> Doc {
    Doc::from_file(&conformance::test_data::cat1_path())
}

/// An object's `Content-Type` and `Content-Encoding`.
pub(crate) type Headers = (Option<String>, Option<String>);

/// A raw client on a bucket of the test server, for reading and writing keys the way another
/// program (the Python module) does.
pub(crate) struct Raw {
    store: Arc<dyn ObjectStore>,
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    })
}

impl Raw {
    /// A client on `bucket` of `server`.
    pub(crate) fn s3(server: &S3Server, bucket: &str) -> Self {
        // This test binary links its own rustls (without a default provider), as the plugin does.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let store = AmazonS3Builder::new()
            .with_bucket_name(bucket)
            .with_endpoint(server.endpoint())
            .with_allow_http(true)
            .with_region("us-east-1")
            .with_access_key_id("test")
            .with_secret_access_key("test")
            .build()
            .unwrap();
        Self {
            store: Arc::new(store),
        }
    }

    /// Writes `body` under `key` with no headers, as boto3's `put_object(Body=...)` does.
    pub(crate) fn put(&self, key: &str, body: &[u8]) {
        runtime()
            .block_on(
                self.store
                    .put(&Key::parse(key).unwrap(), PutPayload::from(body.to_vec())),
            )
            .unwrap();
    }

    /// The bytes under `key`, `None` when there is no such object.
    pub(crate) fn get(&self, key: &str) -> Option<Vec<u8>> {
        self.get_with_headers(key).map(|(bytes, _)| bytes)
    }

    /// The bytes and the (content type, content encoding) under `key`.
    pub(crate) fn get_with_headers(&self, key: &str) -> Option<(Vec<u8>, Headers)> {
        runtime().block_on(async {
            match self.store.get(&Key::parse(key).unwrap()).await {
                Ok(result) => {
                    let header = |a: &object_store::Attribute| {
                        result.attributes.get(a).map(|v| v.to_string())
                    };
                    let headers = (
                        header(&object_store::Attribute::ContentType),
                        header(&object_store::Attribute::ContentEncoding),
                    );
                    Some((result.bytes().await.unwrap().to_vec(), headers))
                }
                Err(object_store::Error::NotFound { .. }) => None,
                Err(err) => panic!("reading {key}: {err}"),
            }
        })
    }

    /// Every key in the bucket, sorted.
    pub(crate) fn keys(&self) -> Vec<String> {
        use futures_util::TryStreamExt;
        let mut keys: Vec<String> = runtime()
            .block_on(self.store.list(None).try_collect::<Vec<_>>())
            .unwrap()
            .into_iter()
            .map(|meta| meta.location.to_string())
            .collect();
        keys.sort();
        keys
    }
}

/// Every file under `dir`, relative, sorted.
pub(crate) fn tree(dir: &Path) -> Vec<String> {
    fn walk(base: &Path, dir: &Path, out: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(base, &path, out);
            } else {
                out.push(path.strip_prefix(base).unwrap().display().to_string());
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}
