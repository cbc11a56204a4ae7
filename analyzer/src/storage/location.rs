//! `[analyzer.storage]`: where the data files live, a local directory (the
//! data dir by default) or any S3-compatible bucket, so that several query
//! processes can share one store.
//!
//! One process writes a store (flushes, compactions, retention); others
//! may read it with `refresh_interval` set: they re-list the store at that
//! interval and see what the writer flushed.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use object_store::aws::AmazonS3Builder;
use object_store::path::Path as ObjPath;
use serde::{Deserialize, Serialize};

use super::store::Store;
use crate::AnalyzerError;

/// `[analyzer.storage]`: the object store that holds samples and logs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    /// `file:///absolute/dir` or `s3://bucket/optional/prefix`; empty (the
    /// default): the data dir.
    pub url: String,
    /// S3: endpoint of an S3-compatible server (MinIO, Ceph, moto...),
    /// e.g. `http://127.0.0.1:9000`; empty: AWS.
    pub endpoint: String,
    /// S3: region; empty: `AWS_REGION`, else `us-east-1`.
    pub region: String,
    /// S3: access key id; empty: `AWS_ACCESS_KEY_ID` (or the instance's
    /// credentials).
    pub access_key_id: String,
    /// S3: file holding the secret access key; unset:
    /// `AWS_SECRET_ACCESS_KEY`.
    pub secret_access_key_file: Option<PathBuf>,
    /// S3: allow an `http://` endpoint (local S3-compatible servers).
    pub allow_http: bool,
    /// How often to re-list the store for files another process wrote
    /// ("0s", the default: never; set it on query-only processes that
    /// share the store of a writing one).
    #[serde(with = "humantime_serde")]
    pub refresh_interval: Duration,
    /// Bytes of decoded file points PromQL keeps in memory for later
    /// queries (module `decoded`; default 256 MiB, 0: none).
    pub decoded_cache_bytes: u64,
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self {
            url: String::new(),
            endpoint: String::new(),
            region: String::new(),
            access_key_id: String::new(),
            secret_access_key_file: None,
            allow_http: false,
            refresh_interval: Duration::ZERO,
            decoded_cache_bytes: super::decoded::DEFAULT_BUDGET,
        }
    }
}

/// Where the store is, from [`StorageConfig::url`].
enum Location {
    Local(PathBuf),
    S3 { bucket: String, prefix: String },
}

impl StorageConfig {
    fn location(&self, data_dir: &Path) -> Result<Location, String> {
        if self.url.is_empty() {
            return Ok(Location::Local(data_dir.to_path_buf()));
        }
        let url = url::Url::parse(&self.url).map_err(|e| {
            format!(
                "`{}` is not a URL ({e}); e.g. \"s3://bucket/vigie\"",
                self.url
            )
        })?;
        match url.scheme() {
            "file" => url.to_file_path().map(Location::Local).map_err(|()| {
                "a file URL needs an absolute path, e.g. \"file:///var/lib/vigie\"".into()
            }),
            "s3" | "s3a" => {
                let bucket = url.host_str().unwrap_or_default().to_string();
                if bucket.is_empty() {
                    return Err("name the bucket, e.g. \"s3://bucket/vigie\"".into());
                }
                let prefix = url.path().trim_matches('/').to_string();
                Ok(Location::S3 { bucket, prefix })
            }
            other => Err(format!(
                "scheme `{other}` is not supported; use \"file:///dir\" or \"s3://bucket/prefix\""
            )),
        }
    }

    /// Problems with this section, as `(key, message)` pairs.
    pub fn problems(&self) -> Vec<(String, String)> {
        let key = |k: &str| format!("analyzer.storage.{k}");
        let mut out = Vec::new();
        let s3 = match self.location(Path::new(".")) {
            Ok(Location::S3 { .. }) => true,
            Ok(Location::Local(_)) => false,
            Err(e) => {
                out.push((key("url"), e));
                return out;
            }
        };
        let s3_only = [
            ("endpoint", !self.endpoint.is_empty()),
            ("region", !self.region.is_empty()),
            ("access_key_id", !self.access_key_id.is_empty()),
            (
                "secret_access_key_file",
                self.secret_access_key_file.is_some(),
            ),
            ("allow_http", self.allow_http),
        ];
        if !s3 {
            for (k, set) in s3_only {
                if set {
                    out.push((key(k), "only applies to an s3:// url; remove it".into()));
                }
            }
            return out;
        }
        if !self.endpoint.is_empty() {
            match url::Url::parse(&self.endpoint) {
                Ok(u) if u.scheme() == "http" && !self.allow_http => out.push((
                    key("allow_http"),
                    format!(
                        "endpoint {} is plain http: set allow_http = true, or use https",
                        self.endpoint
                    ),
                )),
                Ok(u) if u.scheme() == "http" || u.scheme() == "https" => {}
                _ => out.push((
                    key("endpoint"),
                    format!(
                        "`{}` is not an http(s) URL, e.g. \"http://127.0.0.1:9000\"",
                        self.endpoint
                    ),
                )),
            }
        }
        if !self.access_key_id.is_empty()
            && self.secret_access_key_file.is_none()
            && std::env::var_os("AWS_SECRET_ACCESS_KEY").is_none()
        {
            out.push((
                key("secret_access_key_file"),
                "access_key_id is set but no secret: name the file holding it here, \
                 or set AWS_SECRET_ACCESS_KEY"
                    .into(),
            ));
        }
        if let Some(f) = &self.secret_access_key_file
            && let Err(e) = std::fs::read_to_string(f)
        {
            out.push((
                key("secret_access_key_file"),
                format!("cannot read {} ({e}); fix the path", f.display()),
            ));
        }
        out
    }

    /// The store this section names (`data_dir` when `url` is empty).
    pub(crate) fn store(&self, data_dir: &Path) -> Result<Store, AnalyzerError> {
        let bad = |message: String| AnalyzerError::Eval {
            what: "analyzer.storage".into(),
            message,
        };
        match self
            .location(data_dir)
            .map_err(|e| bad(format!("url: {e}")))?
        {
            Location::Local(dir) => Store::local(&dir),
            Location::S3 { bucket, prefix } => {
                let mut b = AmazonS3Builder::from_env()
                    .with_bucket_name(bucket)
                    .with_allow_http(self.allow_http);
                if !self.endpoint.is_empty() {
                    b = b.with_endpoint(&self.endpoint);
                }
                if !self.region.is_empty() {
                    b = b.with_region(&self.region);
                }
                if !self.access_key_id.is_empty() {
                    b = b.with_access_key_id(&self.access_key_id);
                }
                if let Some(f) = &self.secret_access_key_file {
                    let secret =
                        std::fs::read_to_string(f).map_err(|source| AnalyzerError::Io {
                            path: f.clone(),
                            source,
                        })?;
                    b = b.with_secret_access_key(secret.trim());
                }
                let s3 = b.build().map_err(|source| AnalyzerError::Store {
                    what: format!("configuring {}", self.url),
                    source,
                })?;
                // The prefix goes into our keys (not a PrefixStore: its
                // `head` answers with the prefixed key, which DataFusion
                // then does not recognise as the file it asked for).
                Store::new(Arc::new(s3), None, ObjPath::from(prefix.as_str()))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(toml_text: &str) -> Vec<(String, String)> {
        toml::from_str::<StorageConfig>(toml_text)
            .expect("parses")
            .problems()
    }

    #[test]
    fn the_default_is_the_data_dir_and_valid() {
        let c = StorageConfig::default();
        assert!(c.problems().is_empty());
        let dir = tempfile::tempdir().expect("tempdir");
        let store = c.store(dir.path()).expect("store");
        assert_eq!(
            store.locate(&store.key("samples")),
            dir.path().join("samples")
        );
    }

    #[test]
    fn errors_name_the_key_and_the_fix() {
        let p = problems(r#"url = "ftp://x/y""#);
        assert_eq!(p[0].0, "analyzer.storage.url");
        assert!(p[0].1.contains("s3://bucket/prefix"), "{p:?}");
        let p = problems(r#"url = "s3:///nobucket""#);
        assert_eq!(p[0].0, "analyzer.storage.url");
        let p = problems("url = \"s3://b/p\"\nendpoint = \"http://127.0.0.1:9000\"");
        assert_eq!(p[0].0, "analyzer.storage.allow_http");
        assert!(p[0].1.contains("allow_http = true"), "{p:?}");
        let p = problems("url = \"s3://b/p\"\nendpoint = \"127.0.0.1:9000\"\nallow_http = true");
        assert_eq!(p[0].0, "analyzer.storage.endpoint");
        let p = problems("url = \"s3://b\"\nsecret_access_key_file = \"/nonexistent/secret\"");
        assert_eq!(p[0].0, "analyzer.storage.secret_access_key_file");
        if std::env::var_os("AWS_SECRET_ACCESS_KEY").is_none() {
            let p = problems("url = \"s3://b\"\naccess_key_id = \"k\"");
            assert_eq!(p[0].0, "analyzer.storage.secret_access_key_file");
        }
        let p = problems("endpoint = \"http://127.0.0.1:9000\"");
        assert_eq!(p[0].0, "analyzer.storage.endpoint");
        assert!(p[0].1.contains("s3://"), "{p:?}");
        assert!(
            problems("url = \"s3://b/p\"\nendpoint = \"http://127.0.0.1:9000\"\nallow_http = true")
                .is_empty()
        );
    }

    #[test]
    fn a_file_url_is_a_local_directory() {
        let dir = tempfile::tempdir().expect("tempdir");
        let c = StorageConfig {
            url: format!("file://{}", dir.path().join("store").display()),
            ..StorageConfig::default()
        };
        assert!(c.problems().is_empty(), "{:?}", c.problems());
        let store = c.store(Path::new("/elsewhere")).expect("store");
        assert_eq!(store.locate(&store.key("x")), dir.path().join("store/x"));
        assert!(dir.path().join("store").is_dir());
    }

    #[test]
    fn an_s3_url_names_bucket_and_key_prefix() {
        let c = StorageConfig {
            url: "s3://bucket/vigie/prod/".into(),
            endpoint: "http://127.0.0.1:9".into(),
            allow_http: true,
            ..StorageConfig::default()
        };
        let store = c.store(Path::new("/unused")).expect("store");
        assert_eq!(store.key("samples").as_ref(), "vigie/prod/samples");
        assert_eq!(
            store.locate(&store.key("samples")),
            PathBuf::from("vigie/prod/samples")
        );
    }
}
