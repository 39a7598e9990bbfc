//! Output roots: a local folder (the embedded default) or an object store URL. Everything
//! the engine writes goes through `object_store`, so the same sinks serve both.

use std::sync::Arc;
use std::time::Duration;

use crate::error::{bail, ensure, Context as _, Error, Result};
use futures::TryStreamExt;
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{BackoffConfig, ObjectMeta, ObjectStore, RetryConfig};
use serde::{Deserialize, Serialize};

mod aws_profile;
pub mod commits;

/// How an `s3://` root is reached. Empty settings come from the standard AWS environment
/// (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, `AWS_REGION`,
/// `AWS_ENDPOINT_URL`, `AWS_ALLOW_HTTP`, web identity and container credentials), then
/// from the shared AWS files (`~/.aws/credentials`, `~/.aws/config`, profile
/// `AWS_PROFILE`). The live engine reads them from its `[store]` section; every command
/// also takes them as `STATIONFLOW__STORE__<KEY>`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreSettings {
    /// An S3-compatible endpoint (`http://127.0.0.1:8333`); empty: AWS itself.
    pub endpoint: String,
    pub region: String,
    /// Permit `http://` endpoints.
    pub allow_http: bool,
    /// `bucket.host/key` requests instead of `host/bucket/key` (path style, the default,
    /// which S3-compatible stores expect).
    pub virtual_hosted_style: bool,
    /// `AES256`, `aws:kms` or `aws:kms:dsse`; empty: the bucket's default.
    pub server_side_encryption: String,
    /// The KMS key for `aws:kms`; empty: the account's default key.
    pub sse_kms_key_id: String,
    /// One request's limit.
    pub request_timeout_s: u32,
    /// How long a failing request is retried, with backoff, before the command fails.
    pub retry_timeout_s: u32,
}

impl Default for StoreSettings {
    fn default() -> Self {
        StoreSettings {
            endpoint: String::new(),
            region: String::new(),
            allow_http: false,
            virtual_hosted_style: false,
            server_side_encryption: String::new(),
            sse_kms_key_id: String::new(),
            request_timeout_s: 60,
            retry_timeout_s: 30,
        }
    }
}

impl StoreSettings {
    /// Defaults overridden by `STATIONFLOW__STORE__<KEY>` (the commands other than `run`).
    pub fn from_env() -> Result<StoreSettings> {
        use figment::providers::{Env, Serialized};
        figment::Figment::from(Serialized::defaults(StoreSettings::default()))
            .merge(Env::prefixed("STATIONFLOW__STORE__"))
            .extract()
            .context("store settings from STATIONFLOW__STORE__*")
    }

    fn s3_builder(&self, bucket_url: &str) -> Result<AmazonS3Builder> {
        let mut builder = AmazonS3Builder::from_env();
        for (key, value) in aws_profile::missing_from_env()? {
            builder = builder.with_config(key, value);
        }
        if !self.endpoint.is_empty() {
            builder = builder.with_endpoint(&self.endpoint);
        }
        if !self.region.is_empty() {
            builder = builder.with_region(&self.region);
        }
        if self.allow_http {
            builder = builder.with_allow_http(true);
        }
        if self.virtual_hosted_style {
            builder = builder.with_virtual_hosted_style_request(true);
        }
        match self.server_side_encryption.as_str() {
            "" => {}
            "AES256" | "aws:kms" | "aws:kms:dsse" => {
                builder = builder.with_config(
                    "aws_server_side_encryption".parse::<AmazonS3ConfigKey>()?,
                    &self.server_side_encryption,
                );
                if !self.sse_kms_key_id.is_empty() {
                    builder = builder.with_config(
                        "aws_sse_kms_key_id".parse::<AmazonS3ConfigKey>()?,
                        &self.sse_kms_key_id,
                    );
                }
            }
            other => bail!(
                "store.server_side_encryption = {other:?}: use AES256, aws:kms or aws:kms:dsse"
            ),
        }
        // Client options one by one: `with_client_options` would replace those the
        // environment set (AWS_ALLOW_HTTP among them).
        let timeout = self.request_timeout_s.max(1);
        Ok(builder
            .with_url(bucket_url)
            .with_config("aws_timeout".parse()?, format!("{timeout}s"))
            .with_config(
                "aws_connect_timeout".parse()?,
                format!("{}s", timeout.min(5)),
            )
            .with_retry(RetryConfig {
                backoff: BackoffConfig::default(),
                max_retries: 10,
                retry_timeout: Duration::from_secs(u64::from(self.retry_timeout_s)),
            }))
    }
}

/// An opened output root: the store, the prefix inside it, and its URL for queries.
#[derive(Clone)]
pub struct Root {
    pub store: Arc<dyn ObjectStore>,
    pub prefix: Path,
    /// `file:///abs/path/`, `s3://bucket/prefix/` or `memory:///prefix/`, with a trailing slash.
    pub url: String,
    /// The local folder, when the root is one.
    pub local: Option<std::path::PathBuf>,
}

impl Root {
    /// Opens `root`: a path or `file://` URL (created when missing), `s3://bucket/prefix`
    /// (checked by listing it, so a wrong endpoint, credentials or bucket fail here with
    /// a message that says which), or `memory://` (held in this process only: for tests
    /// and one-off runs).
    pub fn open(root: &str, settings: &StoreSettings) -> Result<Root> {
        if let Some(rest) = root.strip_prefix("memory://") {
            let prefix = Path::from(rest.trim_matches('/'));
            return Ok(Root {
                store: Arc::new(InMemory::new()),
                url: with_prefix("memory:///", &prefix),
                prefix,
                local: None,
            });
        }
        if let Some(rest) = root.strip_prefix("s3://") {
            return Root::open_s3(root, rest, settings);
        }
        if let Some((scheme, _)) = root.split_once("://").filter(|(s, _)| *s != "file") {
            bail!("output root {root}: the `{scheme}://` scheme is not supported; use a local folder, file://, s3:// or memory://");
        }
        let dir = std::path::PathBuf::from(root.strip_prefix("file://").unwrap_or(root));
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("creating output folder {}", dir.display()))?;
        let dir = dir
            .canonicalize()
            .with_context(|| format!("opening output folder {}", dir.display()))?;
        let prefix = Path::from_filesystem_path(&dir)
            .with_context(|| format!("output folder {}", dir.display()))?;
        Ok(Root {
            store: Arc::new(LocalFileSystem::new()),
            url: format!("file://{}/", dir.display()),
            prefix,
            local: Some(dir),
        })
    }

    fn open_s3(root: &str, rest: &str, settings: &StoreSettings) -> Result<Root> {
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        ensure!(
            !bucket.is_empty(),
            "output root {root}: name a bucket (s3://bucket/prefix)"
        );
        let store = settings
            .s3_builder(&format!("s3://{bucket}"))?
            .build()
            .with_context(|| format!("object store {root}"))?;
        let prefix = Path::from(prefix.trim_matches('/'));
        let root = Root {
            store: Arc::new(store),
            url: with_prefix(&format!("s3://{bucket}/"), &prefix),
            prefix,
            local: None,
        };
        root.check_reachable()?;
        Ok(root)
    }

    /// One listing of the prefix: the first request, where a wrong endpoint, credentials
    /// or bucket show. On a thread of its own, so callers inside a runtime (async tests)
    /// can open roots too.
    fn check_reachable(&self) -> Result<()> {
        let store = self.store.clone();
        let prefix = self.prefix.clone();
        let listed = std::thread::scope(|s| {
            s.spawn(|| {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()?;
                Ok::<_, Error>(runtime.block_on(store.list(Some(&prefix)).try_next()))
            })
            .join()
            .map_err(|_| Error::internal("the store check panicked"))?
        })?;
        listed.map(|_| ()).map_err(|e| {
            let why = explain_store_error(&e);
            Error::from(e).context(format!("object store {}: cannot list it ({why})", self.url))
        })
    }

    /// Opens an existing root for reading; a missing local folder is an error.
    pub fn open_existing(root: &str, settings: &StoreSettings) -> Result<Root> {
        let local = root.strip_prefix("file://").unwrap_or(root);
        if !root.contains("://") || root.starts_with("file://") {
            ensure!(
                std::path::Path::new(local).is_dir(),
                "no data at {root}: run `stationflow replay` first or pass --data"
            );
        }
        Root::open(root, settings)
    }

    pub fn child(&self, name: &str) -> Path {
        self.prefix.clone().join(name)
    }
}

/// `base` (ending in `/`) with `prefix` and a trailing slash.
fn with_prefix(base: &str, prefix: &Path) -> String {
    if prefix.as_ref().is_empty() {
        base.to_string()
    } else {
        format!("{base}{}/", prefix.as_ref())
    }
}

/// A reader's first guess at what went wrong, from the store's answer. Status codes are
/// matched with their reason phrase: a bare "403" also occurs in the elapsed time the
/// retry error reports ("in 2.40346574s"), and every retry error names its
/// `retry_timeout` setting, which says nothing of what went wrong.
pub fn explain_store_error(e: &object_store::Error) -> &'static str {
    use object_store::Error as E;
    match e {
        E::PermissionDenied { .. } | E::Unauthenticated { .. } => REFUSED_CREDENTIALS,
        _ => explain_store_message(&e.to_string()),
    }
}

const REFUSED_CREDENTIALS: &str =
    "the store refused the credentials: check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY or the profile";

/// `explain_store_error` for what the store's client reports only in words (its
/// `Generic` errors: a list request's status, a connection that failed).
fn explain_store_message(message: &str) -> &'static str {
    let m = message.to_ascii_lowercase().replace("retry_timeout", "");
    if m.contains("169.254.169.254") || m.contains("169.254.170.2") {
        "no credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE with a shared credentials file"
    } else if m.contains("signaturedoesnotmatch")
        || m.contains("invalidaccesskeyid")
        || m.contains("403 forbidden")
        || m.contains("accessdenied")
    {
        REFUSED_CREDENTIALS
    } else if m.contains("nosuchbucket") || m.contains("404 not found") {
        "the bucket does not exist"
    } else if m.contains("connect")
        || m.contains("error sending request")
        || m.contains("dns")
        || m.contains("timed out")
        || m.contains("timeout")
    {
        "the store is unreachable: check the endpoint and that the server is up"
    } else if m.contains("missing region") || m.contains("region") {
        "no region: set AWS_REGION or store.region"
    } else {
        "see the store's answer"
    }
}

/// Every object under `prefix`, or an error that names it.
pub async fn list_all(store: &dyn ObjectStore, prefix: &Path) -> Result<Vec<ObjectMeta>> {
    store
        .list(Some(prefix))
        .try_collect()
        .await
        .with_context(|| format!("listing {prefix}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_store_error_is_explained_by_its_status_not_by_digits_in_its_timings() {
        let dead = "Generic S3 error: Error performing list request: Error performing GET \
            http://127.0.0.1:46295/stationflow-test?list-type=2&prefix=refused%2F in \
            2.40346574s, after 10 retries, max_retries: 10, retry_timeout: 3s  - HTTP error: \
            error sending request";
        assert!(explain_store_message(dead).contains("unreachable"));
        let slow_404 = dead.replace("2.40346574s", "1.404s");
        assert!(explain_store_message(&slow_404).contains("unreachable"));
        let refused = "Error performing GET http://s3/b in 1.2s - Server returned non-2xx \
            status code: 403 Forbidden: <Error><Code>SignatureDoesNotMatch</Code></Error>";
        assert!(explain_store_message(refused).contains("refused the credentials"));
        let forbidden = "Server returned non-2xx status code: 403 Forbidden: ";
        assert!(explain_store_message(forbidden).contains("refused the credentials"));
        let missing = "Server returned non-2xx status code: 404 Not Found: ";
        assert!(explain_store_message(missing).contains("does not exist"));
        let failing = "Error performing GET http://s3/b in 9.1s, after 10 retries, \
            max_retries: 10, retry_timeout: 180s - Server returned non-2xx status code: \
            500 Internal Server Error: ";
        assert_eq!(explain_store_message(failing), "see the store's answer");
        let slow = "Error performing GET http://s3/b in 30s - operation timed out";
        assert!(explain_store_message(slow).contains("unreachable"));
    }

    /// The client's own kinds of refusal are read by kind, not by their words.
    #[test]
    fn a_refusal_the_client_names_is_explained_by_its_kind() {
        let denied = object_store::Error::PermissionDenied {
            path: "out/station_windows".into(),
            source: "the key may not write here".into(),
        };
        assert_eq!(explain_store_error(&denied), REFUSED_CREDENTIALS);
        let generic = object_store::Error::Generic {
            store: "S3",
            source: "error sending request: connection refused".into(),
        };
        assert!(explain_store_error(&generic).contains("unreachable"));
    }

    #[test]
    fn s3_roots_keep_bucket_and_prefix_and_reject_bad_encryption() {
        let settings = StoreSettings {
            server_side_encryption: "rot13".into(),
            ..StoreSettings::default()
        };
        let err = Root::open("s3://bucket/some/prefix", &settings)
            .err()
            .expect("bad encryption is refused");
        assert!(err.to_string().contains("AES256"), "{err}");
        let err = Root::open("s3:///prefix", &StoreSettings::default())
            .err()
            .expect("no bucket");
        assert!(err.to_string().contains("name a bucket"), "{err}");
        assert_eq!(with_prefix("s3://b/", &Path::from("x/y")), "s3://b/x/y/");
        assert_eq!(with_prefix("s3://b/", &Path::from("")), "s3://b/");
        assert_eq!(with_prefix("memory:///", &Path::from("")), "memory:///");
        assert_eq!(
            with_prefix("memory:///", &Path::from("cp")),
            "memory:///cp/"
        );
    }
}
