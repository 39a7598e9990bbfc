//! Which live output is committed. The live engine names dataset files by Kafka partition
//! and epoch (`p<partition>-e<epoch>-<n>.parquet`) and, once an epoch's files and the
//! checkpoint after them are durable, puts `<root>/_commits/p<partition>.json` with that
//! epoch. Readers of this crate list the datasets through `CommittedView`, which hides
//! live files of epochs past their partition's commit: a query never sees part of an
//! epoch, nor rows a crash will take back (files a restore removes and writes again).
//! Files without an epoch in their name (replay's, compaction's) are always visible.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    ObjectStoreExt, PutMultipartOptions, PutOptions, PutPayload, PutResult, Result,
};
use serde::{Deserialize, Serialize};

use crate::error::Context as _;
use crate::sinks::parquet::FileNames;

pub const COMMITS: &str = "_commits";

/// A partition's commit marker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Commit {
    pub partition: i32,
    /// The last epoch whose files are all durable, with the checkpoint after them.
    pub epoch: u64,
}

impl Commit {
    pub fn path(root: &Path, partition: i32) -> Path {
        root.clone()
            .join(COMMITS)
            .join(format!("p{partition:03}.json"))
    }

    pub fn to_bytes(self) -> Vec<u8> {
        serde_json::to_vec(&self).expect("a commit serializes")
    }
}

/// The committed epoch of every partition that has one.
pub async fn load(
    store: &dyn ObjectStore,
    root: &Path,
) -> crate::error::Result<BTreeMap<i32, u64>> {
    let prefix = root.clone().join(COMMITS);
    let markers = super::list_all(store, &prefix).await?;
    let mut commits = BTreeMap::new();
    for meta in markers {
        let read = async { store.get(&meta.location).await?.bytes().await };
        let bytes = read
            .await
            .with_context(|| format!("reading {}", meta.location))?;
        let commit: Commit = serde_json::from_slice(&bytes)
            .with_context(|| format!("commit marker {} is damaged", meta.location))?;
        commits.insert(commit.partition, commit.epoch);
    }
    Ok(commits)
}

/// Whether a dataset file is visible under `commits`.
pub fn is_committed(commits: &BTreeMap<i32, u64>, location: &Path) -> bool {
    match location.filename().and_then(FileNames::parse_epoch) {
        None => true,
        Some((partition, epoch)) => commits.get(&partition).is_some_and(|c| epoch <= *c),
    }
}

/// Which listed files a `CommittedView` shows.
#[async_trait]
pub trait Keep: Send + Sync {
    /// Runs before each listing is filtered: a filter that needs a listing of its own
    /// loads it here, once, only when a listing is asked for.
    async fn prepare(&self) -> Result<()> {
        Ok(())
    }

    fn keep(&self, path: &Path) -> bool;
}

/// Live files of epochs past their partition's commit are hidden.
struct Committed(BTreeMap<i32, u64>);

#[async_trait]
impl Keep for Committed {
    fn keep(&self, path: &Path) -> bool {
        is_committed(&self.0, path)
    }
}

/// A store whose listings show only the files a `Keep` accepts (reads pass through):
/// the committed live output (`CommittedView::new`), or one class of it (`query`'s
/// views).
pub struct CommittedView {
    inner: Arc<dyn ObjectStore>,
    keep: Arc<dyn Keep>,
    what: &'static str,
}

impl std::fmt::Debug for CommittedView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CommittedView({}, {:?})", self.what, self.inner)
    }
}

impl CommittedView {
    /// Hides live files of epochs past their partition's commit.
    pub fn new(inner: Arc<dyn ObjectStore>, commits: BTreeMap<i32, u64>) -> Self {
        Self::filtered(inner, "committed output", Arc::new(Committed(commits)))
    }

    /// Shows only what `keep` accepts of what `inner` lists.
    pub fn filtered(inner: Arc<dyn ObjectStore>, what: &'static str, keep: Arc<dyn Keep>) -> Self {
        CommittedView { inner, keep, what }
    }
}

impl std::fmt::Display for CommittedView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} of {}", self.what, self.inner)
    }
}

#[async_trait]
impl ObjectStore for CommittedView {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> Result<PutResult> {
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> Result<Box<dyn MultipartUpload>> {
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        self.inner.get_opts(location, options).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, Result<Path>>,
    ) -> BoxStream<'static, Result<Path>> {
        self.inner.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        let (keep, inner, prefix) = (self.keep.clone(), self.inner.clone(), prefix.cloned());
        futures::stream::once(async move {
            keep.prepare().await?;
            let listed = inner.list(prefix.as_ref());
            let kept =
                listed.try_filter(move |meta| futures::future::ready(keep.keep(&meta.location)));
            Ok::<_, object_store::Error>(kept)
        })
        .try_flatten()
        .boxed()
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        self.keep.prepare().await?;
        let mut listed = self.inner.list_with_delimiter(prefix).await?;
        listed.objects.retain(|meta| self.keep.keep(&meta.location));
        Ok(listed)
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        self.inner.copy_opts(from, to, options).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::memory::InMemory;

    #[test]
    fn live_files_show_once_their_epoch_is_committed() {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let root = Path::from("out");
        let put = |name: &str, bytes: Vec<u8>| {
            runtime
                .block_on(store.put(&Path::from(name), PutPayload::from(bytes)))
                .unwrap();
        };
        let dir = "out/station_windows/plant=A/date=2026-03-04";
        for name in [
            "part-000000.parquet",
            "p000-e0000000001-0000.parquet",
            "p000-e0000000002-0000.parquet",
            "p001-e0000000001-0000.parquet",
            "c-0123456789abcdef-0000.parquet",
        ] {
            put(&format!("{dir}/{name}"), vec![1]);
        }
        put(
            Commit::path(&root, 0).as_ref(),
            Commit {
                partition: 0,
                epoch: 1,
            }
            .to_bytes(),
        );
        let commits = runtime.block_on(load(&*store, &root)).unwrap();
        let view = CommittedView::new(store.clone(), commits);
        let mut seen: Vec<String> = runtime
            .block_on(view.list(Some(&Path::from(dir))).try_collect::<Vec<_>>())
            .unwrap()
            .into_iter()
            .map(|m| m.location.filename().unwrap().to_string())
            .collect();
        seen.sort();
        assert_eq!(
            seen,
            [
                "c-0123456789abcdef-0000.parquet",
                "p000-e0000000001-0000.parquet",
                "part-000000.parquet"
            ]
        );
    }
}
