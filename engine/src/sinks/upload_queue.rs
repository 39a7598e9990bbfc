//! Puts that wait out an object store outage (live engine). Files and checkpoints are
//! queued in order and put by one background thread, retried with backoff until the store
//! takes them: a checkpoint queued after an epoch's files is written only once they are
//! durable, so checkpoints never run ahead of output. The queue holds up to
//! `memory_bytes` in memory, then spools to a local folder up to `spool_bytes`; past that,
//! `put` blocks until the store catches up (the engine stops reading meanwhile).
//!
//! The spool is a buffer, not a log: after a crash, what was queued is produced again
//! from Kafka from the last durable checkpoint, so a new process starts with an empty one
//! (and removes what killed processes left: see `spool`).

use std::collections::VecDeque;
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};

use super::spool::Spool;
use crate::error::{Class, Classify, Context as _, Error, Result};

/// Limits of the queue.
#[derive(Debug, Clone)]
pub struct QueueLimits {
    pub memory_bytes: u64,
    pub spool_bytes: u64,
    /// The folder the spool's own folder is made in.
    pub spool_parent: PathBuf,
}

enum Payload {
    Memory(Vec<u8>),
    Spooled(PathBuf),
}

struct Upload {
    store: Arc<dyn ObjectStore>,
    path: Path,
    payload: Payload,
    len: u64,
    /// Told once the object is in the store.
    landed: Option<Arc<tokio::sync::Notify>>,
}

#[derive(Default)]
struct State {
    queue: VecDeque<Upload>,
    memory_bytes: u64,
    spool_bytes: u64,
    /// The store failed the front upload's last attempt.
    failing_since: Option<Instant>,
    next_spool_file: u64,
    /// The store refused an upload in a way that trying again cannot change (the
    /// credentials were revoked, say): what it said, and its class. Nothing more is
    /// uploaded.
    refused: Option<(String, Class)>,
}

/// What the queue holds and has done, for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueStatus {
    pub uploads: usize,
    pub memory_bytes: u64,
    pub spool_bytes: u64,
    pub store_failing: bool,
}

struct Shared {
    state: Mutex<State>,
    changed: Condvar,
    stop: AtomicBool,
    retries: std::sync::atomic::AtomicU64,
    limits: QueueLimits,
    spool: Spool,
}

pub struct UploadQueue {
    shared: Arc<Shared>,
    worker: Option<std::thread::JoinHandle<()>>,
}

impl UploadQueue {
    pub fn start(limits: QueueLimits, runtime: tokio::runtime::Handle) -> Result<Self> {
        let spool = Spool::create(&limits.spool_parent)?;
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            changed: Condvar::new(),
            stop: AtomicBool::new(false),
            retries: Default::default(),
            limits,
            spool,
        });
        let worker = {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name("uploads".into())
                .spawn(move || upload_loop(&shared, &runtime))?
        };
        Ok(UploadQueue {
            shared,
            worker: Some(worker),
        })
    }

    /// Queues `bytes` for `path`; blocks while memory and spool are both full.
    pub fn put(&self, store: Arc<dyn ObjectStore>, path: Path, bytes: Vec<u8>) -> Result<()> {
        self.put_then(store, path, bytes, None)
    }

    /// `put`, and `landed` is notified once the object is in the store.
    pub fn put_then(
        &self,
        store: Arc<dyn ObjectStore>,
        path: Path,
        bytes: Vec<u8>,
        landed: Option<Arc<tokio::sync::Notify>>,
    ) -> Result<()> {
        let len = bytes.len() as u64;
        let limits = &self.shared.limits;
        let mut state = self.shared.lock();
        let mut told_paused = false;
        let payload = loop {
            if let Some((refused, class)) = &state.refused {
                return Err(Error::classed(refused.clone(), *class));
            }
            let empty = state.queue.is_empty();
            if empty || state.memory_bytes + len <= limits.memory_bytes {
                state.memory_bytes += len;
                break Payload::Memory(bytes);
            }
            if state.spool_bytes + len <= limits.spool_bytes {
                let file = self
                    .shared
                    .spool
                    .path()
                    .join(format!("{:012}", state.next_spool_file));
                state.next_spool_file += 1;
                write_spool_file(&file, &bytes)?;
                if state.spool_bytes == 0 {
                    tracing::info!(
                        spool = %self.shared.spool.path().display(),
                        memory_bytes = state.memory_bytes,
                        "output queue memory full: spooling to disk"
                    );
                }
                state.spool_bytes += len;
                break Payload::Spooled(file);
            }
            if !told_paused {
                tracing::warn!(
                    queued = state.queue.len(),
                    "output queue and spool are full: reading paused until the store takes output"
                );
                told_paused = true;
            }
            state = self.shared.wait(state);
        };
        state.queue.push_back(Upload {
            store,
            path,
            payload,
            len,
            landed,
        });
        drop(state);
        self.shared.changed.notify_all();
        Ok(())
    }

    /// Waits until everything queued so far is durable; fails if the store refused it
    /// for good.
    pub fn drain(&self) -> Result<()> {
        let mut state = self.shared.lock();
        let mut logged = false;
        while !state.queue.is_empty() {
            if let Some((refused, class)) = &state.refused {
                return Err(Error::classed(refused.clone(), *class));
            }
            if !logged && state.failing_since.is_some() {
                tracing::warn!(
                    queued = state.queue.len(),
                    "waiting for the object store to take queued output"
                );
                logged = true;
            }
            state = self.shared.wait(state);
        }
        Ok(())
    }

    pub fn status(&self) -> QueueStatus {
        let state = self.shared.lock();
        QueueStatus {
            uploads: state.queue.len(),
            memory_bytes: state.memory_bytes,
            spool_bytes: state.spool_bytes,
            store_failing: state.failing_since.is_some(),
        }
    }

    /// Failed attempts so far.
    pub fn retries(&self) -> u64 {
        self.shared.retries.load(Ordering::Relaxed)
    }
}

impl Drop for UploadQueue {
    /// Stops the worker; whatever is still queued is dropped (a crash's rule: it is
    /// produced again from the last durable checkpoint). Call `drain` first to keep it.
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        self.shared.changed.notify_all();
        if let Some(worker) = self.worker.take() {
            let _ = worker.join();
        }
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn wait<'a>(&self, guard: MutexGuard<'a, State>) -> MutexGuard<'a, State> {
        self.changed
            .wait_timeout(guard, Duration::from_millis(500))
            .unwrap_or_else(|e| e.into_inner())
            .0
    }
}

fn write_spool_file(file: &std::path::Path, bytes: &[u8]) -> Result<()> {
    let mut f = std::fs::File::create(file)
        .with_context(|| format!("spooling output to {}", file.display()))?;
    f.write_all(bytes)
        .with_context(|| format!("spooling output to {}", file.display()))
}

const BACKOFF_START: Duration = Duration::from_millis(200);
const BACKOFF_MAX: Duration = Duration::from_secs(10);

fn upload_loop(shared: &Shared, runtime: &tokio::runtime::Handle) {
    let mut backoff = BACKOFF_START;
    loop {
        let (store, path, payload) = {
            let mut state = shared.lock();
            loop {
                if shared.stop.load(Ordering::Relaxed) {
                    return;
                }
                if let Some(front) = state.queue.front() {
                    let payload = match &front.payload {
                        Payload::Memory(bytes) => Ok(bytes.clone()),
                        Payload::Spooled(file) => std::fs::read(file),
                    };
                    break (front.store.clone(), front.path.clone(), payload);
                }
                state = shared.wait(state);
            }
        };
        let result = match payload {
            Ok(bytes) => runtime
                .block_on(store.put(&path, PutPayload::from(bytes)))
                .map(|_| ())
                .map_err(|e| (e.class(), e.to_string())),
            Err(e) => Err((Class::OUTAGE, format!("reading the spool: {e}"))),
        };
        let mut state = shared.lock();
        match result {
            Err((class, e)) if !class.retry => {
                tracing::error!(object = %path, error = %e, "the object store refused output for good");
                let refused = format!(
                    "the object store refused {path}, and trying again will not change that \
                     ({e}); the output from there on was not written and no checkpoint \
                     was taken after it: fix the store's credentials, permissions or bucket \
                     and restart, and the engine goes on from the last checkpoint"
                );
                state.refused = Some((refused, class));
                drop(state);
                shared.changed.notify_all();
                return;
            }
            Ok(()) => {
                if let Some(done) = state.queue.pop_front() {
                    if let Some(landed) = done.landed {
                        landed.notify_one();
                    }
                    match done.payload {
                        Payload::Memory(_) => state.memory_bytes -= done.len,
                        Payload::Spooled(file) => {
                            state.spool_bytes -= done.len;
                            let _ = std::fs::remove_file(file);
                        }
                    }
                }
                if let Some(since) = state.failing_since.take() {
                    tracing::info!(
                        outage_s = since.elapsed().as_secs(),
                        queued = state.queue.len(),
                        "the object store takes output again"
                    );
                }
                backoff = BACKOFF_START;
                drop(state);
                shared.changed.notify_all();
            }
            Err((_, e)) => {
                shared.retries.fetch_add(1, Ordering::Relaxed);
                if state.failing_since.is_none() {
                    state.failing_since = Some(Instant::now());
                    tracing::warn!(
                        object = %path,
                        error = %e,
                        "the object store refused output; retrying with backoff, output waits in the queue"
                    );
                } else {
                    tracing::debug!(object = %path, error = %e, "retrying");
                }
                drop(state);
                shared.changed.notify_all();
                std::thread::sleep(backoff);
                backoff = (backoff * 2).min(BACKOFF_MAX);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::TryStreamExt;
    use object_store::memory::InMemory;

    /// A store that fails every put while `down` is set, and denies every put if `denied`.
    #[derive(Debug)]
    struct Flaky {
        inner: InMemory,
        down: Arc<AtomicBool>,
        denied: bool,
    }

    impl std::fmt::Display for Flaky {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "Flaky")
        }
    }

    #[async_trait::async_trait]
    impl ObjectStore for Flaky {
        async fn put_opts(
            &self,
            location: &Path,
            payload: PutPayload,
            opts: object_store::PutOptions,
        ) -> object_store::Result<object_store::PutResult> {
            if self.denied {
                return Err(object_store::Error::PermissionDenied {
                    path: location.to_string(),
                    source: "403 Forbidden: the access key was revoked".into(),
                });
            }
            if self.down.load(Ordering::Relaxed) {
                return Err(object_store::Error::Generic {
                    store: "flaky",
                    source: "connection refused".into(),
                });
            }
            self.inner.put_opts(location, payload, opts).await
        }
        async fn put_multipart_opts(
            &self,
            location: &Path,
            opts: object_store::PutMultipartOptions,
        ) -> object_store::Result<Box<dyn object_store::MultipartUpload>> {
            self.inner.put_multipart_opts(location, opts).await
        }
        async fn get_opts(
            &self,
            location: &Path,
            options: object_store::GetOptions,
        ) -> object_store::Result<object_store::GetResult> {
            self.inner.get_opts(location, options).await
        }
        fn delete_stream(
            &self,
            locations: futures::stream::BoxStream<'static, object_store::Result<Path>>,
        ) -> futures::stream::BoxStream<'static, object_store::Result<Path>> {
            self.inner.delete_stream(locations)
        }
        fn list(
            &self,
            prefix: Option<&Path>,
        ) -> futures::stream::BoxStream<'static, object_store::Result<object_store::ObjectMeta>>
        {
            self.inner.list(prefix)
        }
        async fn list_with_delimiter(
            &self,
            prefix: Option<&Path>,
        ) -> object_store::Result<object_store::ListResult> {
            self.inner.list_with_delimiter(prefix).await
        }
        async fn copy_opts(
            &self,
            from: &Path,
            to: &Path,
            options: object_store::CopyOptions,
        ) -> object_store::Result<()> {
            self.inner.copy_opts(from, to, options).await
        }
    }

    #[test]
    fn output_waits_out_an_outage_in_memory_then_spool_and_lands_in_order() {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let down = Arc::new(AtomicBool::new(true));
        let flaky = Arc::new(Flaky {
            inner: InMemory::new(),
            down: down.clone(),
            denied: false,
        });
        let store: Arc<dyn ObjectStore> = flaky.clone();
        let spool_parent = tempfile::tempdir().unwrap();
        let queue = UploadQueue::start(
            QueueLimits {
                memory_bytes: 2_000,
                spool_bytes: 5_000,
                spool_parent: spool_parent.path().to_path_buf(),
            },
            runtime.handle().clone(),
        )
        .unwrap();
        // 6 puts of 1,000 bytes: 2 in memory (the first always), 4 spooled... the 7th
        // would block, so stop at 6.
        for i in 0..6u8 {
            queue
                .put(store.clone(), Path::from(format!("f{i}")), vec![i; 1_000])
                .unwrap();
        }
        std::thread::sleep(Duration::from_millis(300));
        let status = queue.status();
        assert_eq!(status.uploads, 6);
        assert!(status.store_failing);
        assert_eq!(status.memory_bytes, 2_000);
        assert_eq!(status.spool_bytes, 4_000);
        assert_eq!(std::fs::read_dir(spool_parent.path()).unwrap().count(), 1);

        // A checkpoint after the files, told when it lands; the store comes back; all
        // land, spool emptied.
        let landed = Arc::new(tokio::sync::Notify::new());
        let told = || futures::FutureExt::now_or_never(landed.notified()).is_some();
        queue
            .put_then(
                store.clone(),
                Path::from("checkpoint"),
                b"cp".to_vec(),
                Some(landed.clone()),
            )
            .unwrap_or_else(|_| unreachable!());
        std::thread::sleep(Duration::from_millis(300));
        assert!(!told(), "told before the store took it");
        down.store(false, Ordering::Relaxed);
        queue.drain().unwrap();
        assert!(told(), "not told once it landed");
        assert_eq!(queue.status(), QueueStatus::default());
        assert!(queue.retries() > 0);
        let names: Vec<String> = runtime
            .block_on(flaky.inner.list(None).try_collect::<Vec<_>>())
            .unwrap()
            .iter()
            .map(|m| m.location.to_string())
            .collect();
        assert_eq!(names.len(), 7);
        for i in 0..6u8 {
            let got = runtime
                .block_on(async {
                    flaky
                        .inner
                        .get(&Path::from(format!("f{i}")))
                        .await?
                        .bytes()
                        .await
                })
                .unwrap();
            assert_eq!(&got[..], &vec![i; 1_000][..]);
        }
    }

    /// Revoked credentials are not an outage: the queue stops at the first refusal,
    /// without retrying, and every later put and drain says why.
    #[test]
    fn a_refusal_for_good_stops_the_queue_and_says_why() {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let denied = Arc::new(Flaky {
            inner: InMemory::new(),
            down: Arc::new(AtomicBool::new(false)),
            denied: true,
        });
        let store: Arc<dyn ObjectStore> = denied.clone();
        let spool_parent = tempfile::tempdir().unwrap();
        let limits = QueueLimits {
            memory_bytes: 2_000,
            spool_bytes: 5_000,
            spool_parent: spool_parent.path().to_path_buf(),
        };
        let queue = UploadQueue::start(limits, runtime.handle().clone()).unwrap();
        queue
            .put(store.clone(), Path::from("epoch-1.parquet"), vec![1; 10])
            .unwrap();
        let err = queue.drain().unwrap_err().to_string();
        assert!(err.contains("refused epoch-1.parquet"), "{err}");
        assert!(err.contains("access key was revoked"), "{err}");
        assert!(err.contains("restart"), "{err}");
        let later = queue.put(store, Path::from("checkpoint"), vec![2; 10]);
        assert_eq!(later.unwrap_err().to_string(), err);
        assert_eq!(queue.retries(), 0);
        let stored = runtime.block_on(denied.inner.list(None).try_collect::<Vec<_>>());
        assert!(stored.unwrap().is_empty());
    }
}
