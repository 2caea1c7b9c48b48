//! Building the object_store client from the options: which store, its credentials, the
//! client's time-outs and retries, and the key prefix.
//!
//! Precedence, lowest first: the store's environment variables (`AWS_*`, `GOOGLE_*`,
//! `AZURE_*`, read by object_store's `from_env`), the `url`, the Python-named options, the
//! client settings (`timeout_ms`, ...), and `store_options` last, so an operator can always
//! override a setting with the store's own key.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::azure::{AzureConfigKey, MicrosoftAzureBuilder};
use object_store::gcp::{GoogleCloudStorageBuilder, GoogleConfigKey};
use object_store::local::LocalFileSystem;
use object_store::{BackoffConfig, ClientConfigKey, ObjectStore, ObjectStoreScheme, RetryConfig};
use url::Url;

use crate::error::Error;
use crate::layout::Layout;
use crate::options::Options;

/// Which kind of store a storage writes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreKind {
    /// Amazon S3 or an S3-compatible service.
    S3,
    /// Google Cloud Storage.
    Gcs,
    /// Azure Blob Storage.
    Azure,
    /// A local directory.
    Local,
}

impl StoreKind {
    /// The name `status` shows.
    pub fn name(self) -> &'static str {
        match self {
            Self::S3 => "s3",
            Self::Gcs => "gcs",
            Self::Azure => "azure",
            Self::Local => "local",
        }
    }

    /// Whether objects carry headers (`Content-Type`, `Content-Encoding`): the local store has
    /// nowhere to keep them and refuses them.
    pub(crate) fn keeps_headers(self) -> bool {
        self != Self::Local
    }

    /// Whether listings come in key order, which paging with a cursor relies on. The cloud
    /// services list in lexicographic order; a directory walk does not.
    pub(crate) fn lists_in_order(self) -> bool {
        self != Self::Local
    }
}

/// A built client and where it points.
#[derive(Debug)]
pub(crate) struct Client {
    /// The store.
    pub(crate) store: Arc<dyn ObjectStore>,
    /// Its kind.
    pub(crate) kind: StoreKind,
    /// The keys under the prefix.
    pub(crate) layout: Layout,
    /// Where it points, for `status` and messages; never a credential.
    pub(crate) location: String,
}

/// Builds the client the options describe. Nothing is sent over the network here: a store
/// that is down at start does not stop the host, and its first call reports it.
pub(crate) fn build(options: &Options) -> Result<Client, Error> {
    options.check_numbers().map_err(Error::Options)?;
    install_crypto_provider();
    match Options::text(options.url.as_ref()) {
        None => python_s3(options),
        Some(url) => from_url(options, url),
    }
}

/// The Python `storage.s3` form: `aws_bucket` and friends.
fn python_s3(options: &Options) -> Result<Client, Error> {
    let bucket = Options::text(options.aws_bucket.as_ref()).ok_or_else(|| {
        Error::Options(
            "invalid options: name the store with `aws_bucket` (as in the Python s3 module) or \
             with `url` (s3://bucket/prefix, gs://bucket/prefix, az://container/prefix, \
             file:///directory)"
                .to_owned(),
        )
    })?;
    let layout = Layout::new(options.s3_path.as_deref().unwrap_or_default(), "s3_path")?;
    let builder = AmazonS3Builder::from_env().with_bucket_name(bucket);
    let (store, endpoint) = s3(options, builder)?;
    Ok(Client {
        store,
        kind: StoreKind::S3,
        location: s3_location(bucket, &layout, endpoint.as_deref()),
        layout,
    })
}

/// The `url` form.
fn from_url(options: &Options, text: &str) -> Result<Client, Error> {
    let bad_url = |why: String| Error::Options(format!("invalid option url: {text:?}: {why}"));
    let url = Url::parse(text).map_err(|err| bad_url(err.to_string()))?;
    let (scheme, path) = ObjectStoreScheme::parse(&url).map_err(|_| {
        bad_url(
            "not a store URL: use s3://bucket/prefix, gs://bucket/prefix, \
             az://container/prefix or file:///directory"
                .to_owned(),
        )
    })?;
    for (name, given) in [
        ("aws_bucket", options.aws_bucket.is_some()),
        ("s3_path", options.s3_path.is_some()),
    ] {
        if given {
            return Err(Error::Options(format!(
                "invalid option {name}: the bucket and prefix come from `url`; give either `url` \
                 or aws_bucket/s3_path, not both"
            )));
        }
    }
    let prefix = path.as_ref().to_owned();
    match scheme {
        ObjectStoreScheme::AmazonS3 => {
            let layout = Layout::new(&prefix, "url")?;
            let builder = AmazonS3Builder::from_env().with_url(text);
            let (store, endpoint) = s3(options, builder)?;
            let bucket = url.host_str().unwrap_or_default();
            Ok(Client {
                store,
                kind: StoreKind::S3,
                location: if url.scheme() == "https" {
                    text.to_owned()
                } else {
                    s3_location(bucket, &layout, endpoint.as_deref())
                },
                layout,
            })
        }
        ObjectStoreScheme::GoogleCloudStorage => {
            refuse_s3_options(options, "gs://")?;
            let layout = Layout::new(&prefix, "url")?;
            let mut builder = GoogleCloudStorageBuilder::from_env()
                .with_url(text)
                .with_retry(retry(options));
            for (key, value) in client_settings(options) {
                builder = builder.with_config(GoogleConfigKey::Client(key), value);
            }
            for (key, value) in &options.store_options {
                let parsed: GoogleConfigKey = key.parse().map_err(|_| unknown_key(key, "gcs"))?;
                builder = builder.with_config(parsed, value.expose());
            }
            let store = builder
                .build()
                .map_err(|err| cannot_configure("gcs", &err))?;
            Ok(Client {
                store: Arc::new(store),
                kind: StoreKind::Gcs,
                location: text.to_owned(),
                layout,
            })
        }
        ObjectStoreScheme::MicrosoftAzure => {
            refuse_s3_options(options, "Azure")?;
            let layout = Layout::new(&prefix, "url")?;
            let mut builder = MicrosoftAzureBuilder::from_env()
                .with_url(text)
                .with_retry(retry(options));
            for (key, value) in client_settings(options) {
                builder = builder.with_config(AzureConfigKey::Client(key), value);
            }
            for (key, value) in &options.store_options {
                let parsed: AzureConfigKey = key.parse().map_err(|_| unknown_key(key, "azure"))?;
                builder = builder.with_config(parsed, value.expose());
            }
            let store = builder
                .build()
                .map_err(|err| cannot_configure("azure", &err))?;
            Ok(Client {
                store: Arc::new(store),
                kind: StoreKind::Azure,
                location: text.to_owned(),
                layout,
            })
        }
        ObjectStoreScheme::Local => {
            refuse_s3_options(options, "file://")?;
            if let Some(key) = options.store_options.keys().next() {
                return Err(Error::Options(format!(
                    "invalid option store_options.{key}: a local directory has no store options"
                )));
            }
            let dir: PathBuf = url
                .to_file_path()
                .map_err(|()| bad_url("not an absolute local path".to_owned()))?;
            std::fs::create_dir_all(&dir).map_err(|err| {
                Error::Options(format!(
                    "invalid option url: cannot create the directory {}: {err}",
                    dir.display()
                ))
            })?;
            // Durable before acknowledged (the host forgets a vCon once its storages said
            // yes), and empty date folders are pruned after deletes.
            let store = LocalFileSystem::new_with_prefix(&dir)
                .map_err(|err| cannot_configure("local", &err))?
                .with_fsync(true)
                .with_automatic_cleanup(true);
            Ok(Client {
                store: Arc::new(store),
                kind: StoreKind::Local,
                location: format!("file://{}", dir.display()),
                // The directory is the root: the URL's whole path names it.
                layout: Layout::new("", "url")?,
            })
        }
        _ => Err(bad_url(
            "this kind of URL is not supported: use s3://bucket/prefix (with endpoint_url for an \
             S3-compatible service), gs://bucket/prefix, az://container/prefix or \
             file:///directory"
                .to_owned(),
        )),
    }
}

/// The S3 client: the Python-named settings, the client settings and `store_options` on top of
/// `builder`. Answers the store and the endpoint, if one was set.
fn s3(
    options: &Options,
    mut builder: AmazonS3Builder,
) -> Result<(Arc<dyn ObjectStore>, Option<String>), Error> {
    if let Some(region) = Options::text(options.aws_region.as_ref()) {
        builder = builder.with_region(region);
    }
    let endpoint = Options::text(options.endpoint_url.as_ref());
    if let Some(endpoint) = endpoint {
        let parsed = Url::parse(endpoint).map_err(|err| {
            Error::Options(format!("invalid option endpoint_url: {endpoint:?}: {err}"))
        })?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(Error::Options(format!(
                "invalid option endpoint_url: {endpoint:?} is not an http:// or https:// URL"
            )));
        }
        // boto3 talks plain http to an http:// endpoint; so does this plugin, only then.
        builder = builder
            .with_endpoint(endpoint.trim_end_matches('/'))
            .with_allow_http(parsed.scheme() == "http");
    }
    let key_id = Options::secret(options.aws_access_key_id.as_ref());
    let secret = Options::secret(options.aws_secret_access_key.as_ref());
    match (key_id, secret) {
        (Some(key_id), Some(secret)) => {
            builder = builder
                .with_access_key_id(key_id)
                .with_secret_access_key(secret);
        }
        (None, None) => {}
        (Some(_), None) | (None, Some(_)) => {
            return Err(Error::Options(
                "invalid options: aws_access_key_id and aws_secret_access_key go together; give \
                 both, or neither to use the AWS_* environment variables or the instance's role"
                    .to_owned(),
            ))
        }
    }
    builder = builder.with_retry(retry(options));
    for (key, value) in client_settings(options) {
        builder = builder.with_config(AmazonS3ConfigKey::Client(key), value);
    }
    for (key, value) in &options.store_options {
        let parsed: AmazonS3ConfigKey = key.parse().map_err(|_| unknown_key(key, "s3"))?;
        builder = builder.with_config(parsed, value.expose());
    }
    let store = builder
        .build()
        .map_err(|err| cannot_configure("s3", &err))?;
    Ok((Arc::new(store), endpoint.map(str::to_owned)))
}

/// Refuses the Python s3 options on a store that is not S3.
fn refuse_s3_options(options: &Options, store: &str) -> Result<(), Error> {
    let given = [
        ("aws_region", options.aws_region.is_some()),
        ("endpoint_url", options.endpoint_url.is_some()),
        ("aws_access_key_id", options.aws_access_key_id.is_some()),
        (
            "aws_secret_access_key",
            options.aws_secret_access_key.is_some(),
        ),
    ];
    match given.iter().find(|(_, given)| *given) {
        Some((name, _)) => Err(Error::Options(format!(
            "invalid option {name}: it is an S3 option and the url names a {store} store; put \
             the store's own settings in store_options"
        ))),
        None => Ok(()),
    }
}

/// The client's time-outs, as object_store configuration values.
fn client_settings(options: &Options) -> [(ClientConfigKey, String); 2] {
    [
        (
            ClientConfigKey::Timeout,
            format!("{}ms", options.timeout_ms),
        ),
        (
            ClientConfigKey::ConnectTimeout,
            format!("{}ms", options.connect_timeout_ms),
        ),
    ]
}

/// The client's retry policy: bounded in count and time, exponential back-off with jitter.
fn retry(options: &Options) -> RetryConfig {
    RetryConfig {
        backoff: BackoffConfig {
            init_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(5),
            base: 2.0,
        },
        max_retries: options.max_retries,
        retry_timeout: Duration::from_millis(options.retry_timeout_ms),
    }
}

fn unknown_key(key: &str, store: &str) -> Error {
    Error::Options(format!(
        "invalid option store_options.{key}: not a configuration key of the {store} store (see \
         object_store's {store} configuration keys)"
    ))
}

fn cannot_configure(store: &str, err: &object_store::Error) -> Error {
    Error::Options(format!(
        "invalid options: cannot configure the {store} store: {err}"
    ))
}

/// `s3://bucket/prefix`, with the endpoint of an S3-compatible service.
fn s3_location(bucket: &str, layout: &Layout, endpoint: Option<&str>) -> String {
    let mut location = format!("s3://{bucket}");
    if !layout.prefix().is_empty() {
        location.push('/');
        location.push_str(layout.prefix());
    }
    if let Some(endpoint) = endpoint {
        location.push_str(" at ");
        location.push_str(endpoint);
    }
    location
}

/// Installs ring as rustls' provider for this plugin's HTTPS (the plugin links its own rustls,
/// so this touches nothing outside the plugin). A second call finds it installed and does
/// nothing.
fn install_crypto_provider() {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        // An `Err` means another thread installed one first: also fine.
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use plugin_sdk::parse_options;

    fn build_json(json: &str) -> Result<Client, String> {
        let options: Options = parse_options(json).map_err(|e| e.to_string())?;
        build(&options).map_err(|e| e.to_string())
    }

    #[test]
    fn python_options_build_an_s3_client() {
        let client = build_json(
            r#"{"aws_bucket": "vcons", "s3_path": "archive/", "aws_region": "eu-west-1",
                "aws_access_key_id": "AKIA", "aws_secret_access_key": "shh",
                "endpoint_url": "http://127.0.0.1:9000"}"#,
        )
        .unwrap();
        assert_eq!(client.kind, StoreKind::S3);
        assert_eq!(client.layout.prefix(), "archive");
        assert_eq!(
            client.location,
            "s3://vcons/archive at http://127.0.0.1:9000"
        );
        assert!(!client.location.contains("shh"));
    }

    #[test]
    fn every_store_kind_builds_from_a_url_without_network() {
        let client = build_json(r#"{"url": "s3://bucket/some/prefix"}"#).unwrap();
        assert_eq!(
            (client.kind, client.layout.prefix()),
            (StoreKind::S3, "some/prefix")
        );
        // No credentials in the options or the environment: the instance's metadata service
        // is asked at the first request, not here.
        let client = build_json(r#"{"url": "gs://bucket/p", "timeout_ms": 1000}"#).unwrap();
        assert_eq!((client.kind, client.layout.prefix()), (StoreKind::Gcs, "p"));
        let client = build_json(
            r#"{"url": "az://container/p", "store_options":
                {"azure_storage_account_name": "acct", "azure_storage_account_key": "a2V5"}}"#,
        )
        .unwrap();
        assert_eq!(
            (client.kind, client.layout.prefix()),
            (StoreKind::Azure, "p")
        );
        let dir = tempfile::tempdir().unwrap();
        let url = Url::from_directory_path(dir.path().join("sub")).unwrap();
        let client = build_json(&format!(r#"{{"url": "{url}"}}"#)).unwrap();
        assert_eq!(
            (client.kind, client.layout.prefix()),
            (StoreKind::Local, "")
        );
        assert!(dir.path().join("sub").is_dir());
    }

    #[test]
    fn mistakes_name_the_option() {
        for (json, named) in [
            (r#"{}"#, "aws_bucket"),
            (r#"{"aws_bucket": "b", "s3_path": "/abs"}"#, "s3_path"),
            (
                r#"{"aws_bucket": "b", "aws_access_key_id": "k"}"#,
                "aws_secret_access_key",
            ),
            (
                r#"{"aws_bucket": "b", "endpoint_url": "ftp://x"}"#,
                "endpoint_url",
            ),
            (
                r#"{"aws_bucket": "b", "endpoint_url": "not a url"}"#,
                "endpoint_url",
            ),
            (
                r#"{"aws_bucket": "b", "store_options": {"aws_nonsense": "1"}}"#,
                "store_options.aws_nonsense",
            ),
            (r#"{"url": "s3://b/p", "aws_bucket": "b"}"#, "aws_bucket"),
            (r#"{"url": "s3://b/p", "s3_path": "p"}"#, "s3_path"),
            (r#"{"url": "gs://b/p", "aws_region": "x"}"#, "aws_region"),
            (r#"{"url": "ftp://b/p"}"#, "url"),
            (r#"{"url": "https://example.com/b"}"#, "url"),
            (r#"{"url": "b/p"}"#, "url"),
            (
                r#"{"url": "file:///tmp/x", "store_options": {"k": "v"}}"#,
                "store_options.k",
            ),
            (r#"{"url": "az://container/p"}"#, "azure"),
        ] {
            let err = build_json(json).unwrap_err();
            assert!(err.contains(named), "{json}: {err}");
        }
    }
}
