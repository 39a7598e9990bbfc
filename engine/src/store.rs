//! Output roots: a local folder (the embedded default) or an object store URL. Everything
//! the engine writes goes through `object_store`, so the same sinks serve both.

use std::sync::Arc;

use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::ObjectStore;

/// An opened output root: the store, the prefix inside it, and its URL for queries.
#[derive(Clone)]
pub struct Root {
    pub store: Arc<dyn ObjectStore>,
    pub prefix: Path,
    /// `file:///abs/path/` or `memory:///prefix/`, with a trailing slash.
    pub url: String,
    /// The local folder, when the root is one.
    pub local: Option<std::path::PathBuf>,
}

impl Root {
    /// Opens `root`: a path or `file://` URL (created when missing), or `memory://`
    /// (held in this process only: for tests and one-off runs).
    pub fn open(root: &str) -> anyhow::Result<Root> {
        if let Some(rest) = root.strip_prefix("memory://") {
            let prefix = Path::from(rest.trim_matches('/'));
            return Ok(Root {
                store: Arc::new(InMemory::new()),
                url: if prefix.as_ref().is_empty() {
                    "memory:///".into()
                } else {
                    format!("memory:///{}/", prefix.as_ref())
                },
                prefix,
                local: None,
            });
        }
        if let Some((scheme, _)) = root.split_once("://").filter(|(s, _)| *s != "file") {
            anyhow::bail!("output root {root}: the `{scheme}://` scheme is not supported; use a local folder, file:// or memory://");
        }
        let dir = std::path::PathBuf::from(root.strip_prefix("file://").unwrap_or(root));
        std::fs::create_dir_all(&dir)
            .map_err(|e| anyhow::anyhow!("creating output folder {}: {e}", dir.display()))?;
        let dir = dir
            .canonicalize()
            .map_err(|e| anyhow::anyhow!("opening output folder {}: {e}", dir.display()))?;
        let prefix = Path::from_filesystem_path(&dir)
            .map_err(|e| anyhow::anyhow!("output folder {}: {e}", dir.display()))?;
        Ok(Root {
            store: Arc::new(LocalFileSystem::new()),
            url: format!("file://{}/", dir.display()),
            prefix,
            local: Some(dir),
        })
    }

    /// Opens an existing root for reading; a missing local folder is an error.
    pub fn open_existing(root: &str) -> anyhow::Result<Root> {
        let local = root.strip_prefix("file://").unwrap_or(root);
        if !root.contains("://") || root.starts_with("file://") {
            anyhow::ensure!(
                std::path::Path::new(local).is_dir(),
                "no data at {root}: run `stationflow replay` first or pass --data"
            );
        }
        Root::open(root)
    }

    pub fn child(&self, name: &str) -> Path {
        self.prefix.clone().join(name)
    }
}
