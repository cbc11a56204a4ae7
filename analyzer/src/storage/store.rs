//! Where the data files live: an [`ObjectStore`] (a local directory by
//! default, any S3-compatible store by configuration), with blocking
//! wrappers for the flush, compaction and retention threads.
//!
//! A `put` is atomic on every store (the local one writes a staging file
//! and renames it), so a reader, in this process or another one sharing
//! the store, never sees half a file. DataFusion reads the same store,
//! registered under [`URL`].

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use datafusion::datasource::listing::ListingTableUrl;
use datafusion::execution::object_store::ObjectStoreUrl;
use futures::TryStreamExt;
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjPath;
use object_store::{ObjectMeta, ObjectStore, ObjectStoreExt, PutPayload};

use crate::AnalyzerError;

/// The URL DataFusion reaches the store by, in each query's session.
pub(crate) const URL: &str = "vigie://store/";

/// An object store plus the runtime its blocking callers run it on.
pub(crate) struct Store {
    object: Arc<dyn ObjectStore>,
    /// The directory of a local store (for [`Store::locate`]).
    local_root: Option<PathBuf>,
    /// Key prefix of every object (the path of an `s3://bucket/path` URL).
    root: ObjPath,
    /// Runs object store calls for blocking callers, wherever they are
    /// (a `spawn_blocking` thread, the compaction thread, a test's async
    /// body): a runtime of its own never nests in the caller's.
    io: Option<tokio::runtime::Runtime>,
}

fn store_err(what: impl Into<String>) -> impl FnOnce(object_store::Error) -> AnalyzerError {
    let what = what.into();
    move |source| AnalyzerError::Store { what, source }
}

/// An error of ours in the store's error type (the I/O runtime failed).
fn generic(message: String) -> object_store::Error {
    object_store::Error::Generic {
        store: "vigie",
        source: message.into(),
    }
}

impl Store {
    /// A store in the local directory `dir` (created if missing).
    pub(crate) fn local(dir: &Path) -> Result<Self, AnalyzerError> {
        Self::new(
            Self::local_fs(dir)?,
            Some(dir.to_path_buf()),
            ObjPath::default(),
        )
    }

    /// The object store of the local directory `dir` (created if missing).
    pub(crate) fn local_fs(dir: &Path) -> Result<Arc<dyn ObjectStore>, AnalyzerError> {
        std::fs::create_dir_all(dir).map_err(|source| AnalyzerError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        let fs = LocalFileSystem::new_with_prefix(dir)
            .map_err(store_err(format!("opening {}", dir.display())))?;
        Ok(Arc::new(fs))
    }

    /// Wraps `object`; `local_root` is its directory when it is local,
    /// `root` the key prefix of every object.
    pub(crate) fn new(
        object: Arc<dyn ObjectStore>,
        local_root: Option<PathBuf>,
        root: ObjPath,
    ) -> Result<Self, AnalyzerError> {
        let io = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("vigie-store-io")
            .enable_all()
            .build()
            .map_err(|e| AnalyzerError::Store {
                what: "starting the storage I/O runtime".into(),
                source: generic(e.to_string()),
            })?;
        Ok(Self {
            object,
            local_root,
            root,
            io: Some(io),
        })
    }

    /// The key of `part` (e.g. `samples`) under the store's root.
    pub(crate) fn key(&self, part: &str) -> ObjPath {
        if self.root.as_ref().is_empty() {
            ObjPath::from(part)
        } else {
            self.root.clone().join(part)
        }
    }

    /// The object store itself.
    pub(crate) fn object(&self) -> Arc<dyn ObjectStore> {
        self.object.clone()
    }

    /// The URL the store is registered under in DataFusion sessions.
    pub(crate) fn url() -> ObjectStoreUrl {
        ObjectStoreUrl::parse(URL).unwrap_or_else(|_| ObjectStoreUrl::local_filesystem())
    }

    /// DataFusion's URL of object `key`.
    pub(crate) fn table_url(key: &ObjPath) -> Result<ListingTableUrl, AnalyzerError> {
        Ok(ListingTableUrl::parse(format!("{URL}{key}"))?)
    }

    /// Where object `key` is: its path on disk for a local store, else
    /// the key itself.
    pub(crate) fn locate(&self, key: &ObjPath) -> PathBuf {
        match &self.local_root {
            Some(root) => root.join(key.as_ref()),
            None => PathBuf::from(key.as_ref()),
        }
    }

    /// Creates the directory of `prefix` in a local store (as the
    /// versions before object_store did at open; a put would create it
    /// anyway).
    pub(crate) fn ensure_dir(&self, prefix: &ObjPath) -> Result<(), AnalyzerError> {
        if self.local_root.is_some() {
            let dir = self.locate(prefix);
            std::fs::create_dir_all(&dir)
                .map_err(|source| AnalyzerError::Io { path: dir, source })?;
        }
        Ok(())
    }

    /// Runs `fut` on the I/O runtime and waits for it.
    fn run<T: Send + 'static>(
        &self,
        what: String,
        fut: impl Future<Output = Result<T, object_store::Error>> + Send + 'static,
    ) -> Result<T, AnalyzerError> {
        let Some(io) = &self.io else {
            return Err(store_err(what)(generic("storage is closing".into())));
        };
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        io.spawn(async move {
            let _ = tx.send(fut.await);
        });
        rx.recv()
            .unwrap_or_else(|_| Err(generic("the I/O task stopped".into())))
            .map_err(store_err(what))
    }

    /// Every object under `prefix`, blocking.
    pub(crate) fn list_blocking(&self, prefix: &ObjPath) -> Result<Vec<ObjectMeta>, AnalyzerError> {
        let object = self.object.clone();
        let p = prefix.clone();
        self.run(format!("listing {prefix}"), async move {
            object.list(Some(&p)).try_collect().await
        })
    }

    /// Every object under `prefix` (from async code).
    pub(crate) async fn list(&self, prefix: &ObjPath) -> Result<Vec<ObjectMeta>, AnalyzerError> {
        self.object
            .list(Some(prefix))
            .try_collect()
            .await
            .map_err(store_err(format!("listing {prefix}")))
    }

    /// Runs `fut` in the background on the I/O runtime.
    pub(crate) fn spawn(&self, fut: impl Future<Output = ()> + Send + 'static) {
        if let Some(io) = &self.io {
            io.spawn(fut);
        }
    }

    /// Writes object `key` in one atomic put, blocking.
    pub(crate) fn put(&self, key: &ObjPath, bytes: Vec<u8>) -> Result<(), AnalyzerError> {
        let object = self.object.clone();
        let k = key.clone();
        self.run(format!("writing {key}"), async move {
            object.put(&k, PutPayload::from(bytes)).await.map(|_| ())
        })
    }

    /// Reads object `key` whole, blocking.
    pub(crate) fn get(&self, key: &ObjPath) -> Result<bytes::Bytes, AnalyzerError> {
        let object = self.object.clone();
        let k = key.clone();
        self.run(format!("reading {key}"), async move {
            object.get(&k).await?.bytes().await
        })
    }

    /// Deletes object `key`, blocking; a missing object is no error.
    pub(crate) fn delete(&self, key: &ObjPath) -> Result<(), AnalyzerError> {
        let object = self.object.clone();
        let k = key.clone();
        self.run(format!("deleting {key}"), async move {
            match object.delete(&k).await {
                Err(object_store::Error::NotFound { .. }) => Ok(()),
                other => other,
            }
        })
    }

    /// Runs `fut` (which gets the object store) on the I/O runtime,
    /// blocking.
    pub(crate) fn block_on<T: Send + 'static, F>(
        &self,
        what: String,
        f: impl FnOnce(Arc<dyn ObjectStore>) -> F,
    ) -> Result<T, AnalyzerError>
    where
        F: Future<Output = Result<T, object_store::Error>> + Send + 'static,
    {
        self.run(what, f(self.object.clone()))
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        // Dropping a runtime blocks, which async code may not do.
        if let Some(io) = self.io.take() {
            io.shutdown_background();
        }
    }
}
