//! When live epochs end: at the same moments on every worker of every process.
//!
//! Timely's frontier at a sink is the slowest worker's, so an epoch is complete
//! only when every worker's source has closed it. If each source closed its
//! epochs one interval after it opened them, workers that started a few
//! hundred milliseconds apart (or drifted apart) would number their epochs
//! differently for the whole run, and every sink would wait for the slowest:
//! that lag showed as half a second of end-to-end latency in one run of two.
//! So epoch boundaries come from one origin that worker 0 picks and every
//! worker shares: the `k`-th live epoch of a run ends `k` intervals after it.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The origin of a run's epoch boundaries, as this process's monotonic clock
/// sees it.
#[derive(Clone, Copy, Debug)]
pub struct EpochClock {
    origin: Instant,
}

impl Default for EpochClock {
    /// A clock whose origin is now (a single worker, or a test).
    fn default() -> Self {
        EpochClock {
            origin: Instant::now(),
        }
    }
}

impl EpochClock {
    /// Wall-clock time now, in nanoseconds since the Unix epoch: what worker 0
    /// shares as the origin.
    pub fn wall_now() -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
    }

    /// The clock of a run whose origin is `origin_ns` (from [`Self::wall_now`]
    /// on worker 0), read once against this machine's wall clock and kept on
    /// its monotonic clock from then on.
    pub fn from_wall(origin_ns: u64) -> Self {
        let now = Instant::now();
        let wall = Self::wall_now();
        let origin = if wall >= origin_ns {
            now.checked_sub(Duration::from_nanos(wall - origin_ns))
        } else {
            now.checked_add(Duration::from_nanos(origin_ns - wall))
        };
        EpochClock {
            origin: origin.unwrap_or(now),
        }
    }

    /// How long until epoch `epoch` ends, for a source whose first epoch in
    /// this run is `first` and whose epochs last `interval` (zero: it has).
    pub fn left(&self, epoch: u64, first: u64, interval: Duration) -> Duration {
        let k = u128::from(epoch.saturating_sub(first)) + 1;
        let offset = u64::try_from(interval.as_nanos().saturating_mul(k)).unwrap_or(u64::MAX);
        match self.origin.checked_add(Duration::from_nanos(offset)) {
            Some(end) => end.saturating_duration_since(Instant::now()),
            None => Duration::MAX,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epochs_end_at_multiples_of_the_interval_from_the_origin() {
        let interval = Duration::from_millis(100);
        let origin = EpochClock::wall_now() - 250_000_000;
        let clock = EpochClock::from_wall(origin);
        // 250 ms in: epochs 7 and 8 (the first two, from 7) are over
        assert_eq!(clock.left(7, 7, interval), Duration::ZERO);
        assert_eq!(clock.left(8, 7, interval), Duration::ZERO);
        let third = clock.left(9, 7, interval);
        assert!(third > Duration::ZERO && third <= Duration::from_millis(50));
        let fourth = clock.left(10, 7, interval);
        assert!(fourth > Duration::from_millis(99) && fourth <= Duration::from_millis(150));
        // two clocks from one origin agree, whenever each was made
        let other = EpochClock::from_wall(origin);
        let gap = other.left(10, 7, interval).abs_diff(fourth);
        assert!(gap < Duration::from_millis(20), "{gap:?}");
    }
}
