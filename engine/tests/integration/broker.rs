//! A real Kafka-protocol broker (tansu, in memory) per test, on a free loopback port;
//! stopped when dropped. `scripts/test` installs it and names it in `STATIONFLOW_TANSU`.

use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Broker {
    child: Child,
    pub address: String,
    _logs: tempfile::TempDir,
}

impl Broker {
    pub fn start() -> Broker {
        let bin = std::env::var("STATIONFLOW_TANSU").expect(
            "STATIONFLOW_TANSU must name the tansu binary: run the suite with scripts/test, \
             which installs it",
        );
        let port = free_port();
        let address = format!("127.0.0.1:{port}");
        let url = format!("tcp://{address}");
        let logs = tempfile::tempdir().expect("temp dir");
        let log = std::fs::File::create(logs.path().join("tansu.log")).expect("log file");
        let mut child = Command::new(bin)
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
            ])
            .args(["--storage-engine", "memory://tansu/"])
            .stdout(Stdio::from(log.try_clone().expect("log handle")))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("tansu starts");
        let deadline = Instant::now() + Duration::from_secs(15);
        while TcpStream::connect(&address).is_err() {
            assert!(
                Instant::now() < deadline,
                "tansu did not listen on {address}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        // tansu exits 0 on a busy port while the other process still answers.
        assert!(
            child.try_wait().expect("tansu status").is_none(),
            "tansu exited: {}",
            std::fs::read_to_string(logs.path().join("tansu.log")).unwrap_or_default()
        );
        Broker {
            child,
            address,
            _logs: logs,
        }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("a free port");
    listener.local_addr().expect("address").port()
}
