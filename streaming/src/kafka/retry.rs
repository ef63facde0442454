//! Retrying calls while the broker is unreachable, with backoff, each retry
//! logged: the source, the sinks and recovery all wait this way, up to their
//! `broker_timeout`.

use std::time::{Duration, Instant};

use super::KafkaError;

/// Runs `call` until it succeeds, fails other than by an unreachable broker,
/// or `limit` has passed; logs each retry on stderr.
pub fn with_retries<T>(
    brokers: &str,
    limit: Duration,
    mut call: impl FnMut() -> Result<T, KafkaError>,
) -> Result<T, KafkaError> {
    let start = Instant::now();
    let mut backoff = Duration::from_millis(100);
    loop {
        match call() {
            Err(KafkaError::Unreachable { message, .. }) if start.elapsed() < limit => {
                eprintln!(
                    "weir: kafka broker {brokers} unreachable ({message}); retrying in {backoff:?}"
                );
                std::thread::sleep(backoff);
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
            Err(KafkaError::Unreachable { message, .. }) => {
                return Err(KafkaError::Unreachable {
                    brokers: brokers.to_string(),
                    message: format!("{message} (gave up after {:?})", start.elapsed()),
                });
            }
            other => return other,
        }
    }
}
