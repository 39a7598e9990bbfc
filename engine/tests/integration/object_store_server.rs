//! A real S3-compatible server (SeaweedFS `weed mini`) per test, on free loopback ports,
//! with one bucket and one access key; stopped when dropped. `scripts/test` installs it
//! and names it in `STATIONFLOW_WEED`.

use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use object_store::aws::AmazonS3Builder;
use object_store::ObjectStore;

pub const BUCKET: &str = "stationflow-test";
pub const ACCESS_KEY: &str = "testkey";
pub const SECRET_KEY: &str = "testsecret";

pub struct ObjectStoreServer {
    child: Option<Child>,
    ports: [u16; 8],
    dir: tempfile::TempDir,
}

impl ObjectStoreServer {
    pub fn start() -> ObjectStoreServer {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(
            dir.path().join("s3.json"),
            format!(
                r#"{{"identities":[{{"name":"ci","credentials":[{{"accessKey":"{ACCESS_KEY}","secretKey":"{SECRET_KEY}"}}],"actions":["Admin","Read","List","Tagging","Write"]}}]}}"#
            ),
        )
        .expect("s3.json");
        std::fs::create_dir(dir.path().join("data")).expect("data dir");
        let mut server = ObjectStoreServer {
            child: None,
            ports: free_ports(),
            dir,
        };
        server.resume();
        server
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.ports[6])
    }

    /// What a `stationflow` process needs to reach the bucket, as environment variables.
    pub fn env(&self) -> Vec<(String, String)> {
        [
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY.to_string()),
            ("AWS_SECRET_ACCESS_KEY", SECRET_KEY.to_string()),
            ("AWS_REGION", "us-east-1".to_string()),
            ("AWS_ENDPOINT_URL", self.endpoint()),
            ("AWS_ALLOW_HTTP", "true".to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }

    /// The bucket, for reading back what a test wrote.
    pub fn bucket(&self) -> Arc<dyn ObjectStore> {
        self.bucket_as(BUCKET, SECRET_KEY)
    }

    /// `bucket` with `secret` for the access key, giving up after one retry within a
    /// second.
    pub fn bucket_as(&self, bucket: &str, secret: &str) -> Arc<dyn ObjectStore> {
        let retry = object_store::RetryConfig {
            max_retries: 1,
            retry_timeout: Duration::from_secs(1),
            ..Default::default()
        };
        Arc::new(
            AmazonS3Builder::new()
                .with_bucket_name(bucket)
                .with_endpoint(self.endpoint())
                .with_allow_http(true)
                .with_region("us-east-1")
                .with_access_key_id(ACCESS_KEY)
                .with_secret_access_key(secret)
                .with_retry(retry)
                .build()
                .expect("s3 client"),
        )
    }

    /// Stops the server (SIGTERM, then SIGKILL after 15 s); its data stays for `resume`.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if child.try_wait().ok().flatten().is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = child.kill();
        let _ = child.wait();
    }

    /// Starts the server on its ports and data folder, and waits until the bucket answers.
    pub fn resume(&mut self) {
        let bin = std::env::var("STATIONFLOW_WEED").expect(
            "STATIONFLOW_WEED must name SeaweedFS's `weed` binary: run the suite with \
             scripts/test, which installs it",
        );
        let p = self.ports;
        let dir = self.dir.path();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .expect("log file");
        let args = [
            format!("-dir={}", dir.join("data").display()),
            "-ip=127.0.0.1".into(),
            "-ip.bind=127.0.0.1".into(),
            format!("-master.port={}", p[0]),
            format!("-master.port.grpc={}", p[1]),
            format!("-volume.port={}", p[2]),
            format!("-volume.port.grpc={}", p[3]),
            format!("-filer.port={}", p[4]),
            format!("-filer.port.grpc={}", p[5]),
            format!("-s3.port={}", p[6]),
            format!("-s3.port.grpc={}", p[7]),
            "-s3.port.iceberg=0".into(),
            "-s3.port.lance=0".into(),
            format!("-s3.config={}", dir.join("s3.json").display()),
            format!("-bucket={BUCKET}"),
            "-webdav=false".into(),
            "-admin.ui=false".into(),
            "-master.telemetry=false".into(),
        ];
        let child = Command::new(bin)
            .arg("mini")
            .args(&args)
            .current_dir(dir)
            .stdout(Stdio::from(log.try_clone().expect("log handle")))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("weed starts");
        self.child = Some(child);
        self.wait_ready();
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("weed.log")
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        let s3 = format!("127.0.0.1:{}", self.ports[6]);
        while TcpStream::connect(&s3).is_err() {
            self.check_alive(deadline);
        }
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let bucket = self.bucket();
        while runtime.block_on(bucket.list_with_delimiter(None)).is_err() {
            self.check_alive(deadline);
        }
    }

    fn check_alive(&mut self, deadline: Instant) {
        let exited = self
            .child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten());
        assert!(
            exited.is_none() && Instant::now() < deadline,
            "SeaweedFS did not come up ({exited:?}): {}",
            std::fs::read_to_string(self.log_path()).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

impl Drop for ObjectStoreServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Eight distinct free ports: the listeners are held until all are chosen.
fn free_ports() -> [u16; 8] {
    let listeners: Vec<TcpListener> = (0..8)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("a free port"))
        .collect();
    std::array::from_fn(|i| listeners[i].local_addr().expect("address").port())
}
