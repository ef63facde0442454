//! Events of the Yahoo streaming benchmark's shape, and a rate-limited
//! generator writing them to Kafka (`weir stream produce`).
//!
//! A seed fixes the campaigns (100 campaigns of 10 ads, as in the benchmark)
//! and the sequence of events; each event's `event_time` and record timestamp
//! are its creation time.

use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use weir_runtime::JobError;

use crate::kafka::KafkaError;
use crate::kafka::producer::{IdempotentProducer, Produce};

const CAMPAIGNS: usize = 100;
const ADS_PER_CAMPAIGN: usize = 10;
const AD_TYPES: [&str; 5] = ["banner", "modal", "sponsored-search", "mail", "mobile"];
const EVENT_TYPES: [&str; 3] = ["view", "click", "purchase"];

fn uuid(rng: &mut ChaCha8Rng) -> String {
    let a: u128 = rng.random();
    format!(
        "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
        (a >> 96) as u32,
        (a >> 80) as u16,
        (a >> 64) as u16,
        (a >> 48) as u16,
        a as u64 & 0xffff_ffff_ffff
    )
}

/// Seeded events of the benchmark's shape.
pub struct EventGenerator {
    rng: ChaCha8Rng,
    /// `(ad_id, campaign_id)` pairs.
    pub ads: Vec<(String, String)>,
    users: Vec<String>,
    pages: Vec<String>,
    emitted: u64,
}

impl EventGenerator {
    /// The generator of `seed`.
    pub fn new(seed: u64) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut ads = Vec::with_capacity(CAMPAIGNS * ADS_PER_CAMPAIGN);
        for _ in 0..CAMPAIGNS {
            let campaign = uuid(&mut rng);
            for _ in 0..ADS_PER_CAMPAIGN {
                ads.push((uuid(&mut rng), campaign.clone()));
            }
        }
        let users = (0..100).map(|_| uuid(&mut rng)).collect();
        let pages = (0..100).map(|_| uuid(&mut rng)).collect();
        EventGenerator {
            rng,
            ads,
            users,
            pages,
            emitted: 0,
        }
    }

    /// Writes the campaigns table (`ad_id,campaign_id` lines) to `path`.
    pub fn write_campaigns(&self, path: &Path) -> Result<(), JobError> {
        let mut file = std::io::BufWriter::new(
            std::fs::File::create(path).map_err(|e| JobError::io(path, &e))?,
        );
        let write = |file: &mut std::io::BufWriter<std::fs::File>| -> std::io::Result<()> {
            writeln!(file, "ad_id,campaign_id")?;
            for (ad, campaign) in &self.ads {
                writeln!(file, "{ad},{campaign}")?;
            }
            file.flush()
        };
        write(&mut file).map_err(|e| JobError::io(path, &e))
    }

    /// The next event, created at `now_ms`. `event_time` alternates between a
    /// decimal string (as the original benchmark writes it) and a number.
    pub fn event(&mut self, now_ms: u64) -> String {
        let pick = |rng: &mut ChaCha8Rng, n: usize| rng.random_range(0..n);
        let user = &self.users[pick(&mut self.rng, self.users.len())];
        let page = &self.pages[pick(&mut self.rng, self.pages.len())];
        let ad = &self.ads[pick(&mut self.rng, self.ads.len())].0;
        let ad_type = AD_TYPES[pick(&mut self.rng, AD_TYPES.len())];
        let event_type = EVENT_TYPES[pick(&mut self.rng, EVENT_TYPES.len())];
        let ip = format!(
            "{}.{}.{}.{}",
            pick(&mut self.rng, 256),
            pick(&mut self.rng, 256),
            pick(&mut self.rng, 256),
            pick(&mut self.rng, 256)
        );
        let time = if self.emitted.is_multiple_of(2) {
            format!("\"{now_ms}\"")
        } else {
            now_ms.to_string()
        };
        self.emitted += 1;
        format!(
            "{{\"user_id\":\"{user}\",\"page_id\":\"{page}\",\"ad_id\":\"{ad}\",\"ad_type\":\"{ad_type}\",\"event_type\":\"{event_type}\",\"event_time\":{time},\"ip_address\":\"{ip}\"}}"
        )
    }
}

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// How much a generator sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Amount {
    /// This many events.
    Count(u64),
    /// For this long.
    For(Duration),
}

/// Sends events at `rate` per second to `topic` until `amount` is reached;
/// returns the number sent. Progress goes to `sent` as it happens.
pub fn produce(
    brokers: &str,
    topic: &str,
    rate: u64,
    amount: Amount,
    generator: &mut EventGenerator,
    sent: &dyn Fn(u64),
) -> Result<u64, KafkaError> {
    let producer = IdempotentProducer::open(brokers)?;
    let start = Instant::now();
    let mut count = 0u64;
    loop {
        let elapsed = start.elapsed();
        let done = match amount {
            Amount::Count(n) => count >= n,
            Amount::For(d) => elapsed >= d,
        };
        if done {
            break;
        }
        let due = (rate as f64 * elapsed.as_secs_f64()) as u64 + 1;
        let limit = match amount {
            Amount::Count(n) => due.min(n),
            Amount::For(_) => due,
        };
        if count >= limit {
            std::thread::sleep(Duration::from_micros(500));
            continue;
        }
        let now = now_ms();
        while count < limit {
            let record = Produce {
                timestamp: Some(now as i64),
                ..Produce::value(topic, generator.event(now))
            };
            producer.send(&record)?;
            count += 1;
        }
        sent(count);
    }
    producer.flush()?;
    Ok(count)
}
