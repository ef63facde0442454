//! Event-time windows — tumbling, sliding and session — with count, sum, min,
//! max and average, as checkpointed keyed state.
//!
//! Event-time progress rides on epoch progress: every source worker sends its
//! [`Watermark`] at the end of each epoch to every window worker. Once timely's
//! frontier has passed epoch `e`, the window operator has all of `e`'s records
//! and all of `e`'s watermarks: it adds the records, takes the smallest
//! watermark as the event-time frontier (never moving it back; a source worker
//! that is still waiting for a partition's first record holds it where it is),
//! and fires — in epoch `e` — every window whose end it has passed. So the
//! timely frontier decides when a window's result is final, and a restored or
//! replayed epoch fires exactly the same windows. A record whose every window
//! has fired already is late: it is dropped and counted.
//!
//! The event-time frontier is part of the checkpointed state (a shared value
//! of the keyed state): a restored run goes on from it, so an event that was
//! late before a crash is late after it too, and a window never fires twice.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

mod operator;

pub use operator::{WindowAggregate, WindowInput, WindowResult, fan_out};

/// How events are grouped into windows (sizes in milliseconds of event time).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Windows {
    /// Back-to-back windows `[k·size, (k+1)·size)`.
    Tumbling {
        /// Window length.
        size: u64,
    },
    /// Windows of `size` starting every `slide`: an event is in `size / slide` of them.
    Sliding {
        /// Window length.
        size: u64,
        /// Distance between window starts.
        slide: u64,
    },
    /// A key's events closer than `gap` to each other form one window, which
    /// ends `gap` after its last event.
    Session {
        /// Inactivity that closes a session.
        gap: u64,
    },
}

impl Windows {
    /// The windows `[start, end)` an event at `time` belongs to (for sessions:
    /// its own session before merging).
    pub fn assign(&self, time: u64) -> Vec<(u64, u64)> {
        match *self {
            Windows::Tumbling { size } => {
                let size = size.max(1);
                let start = time - time % size;
                vec![(start, start.saturating_add(size))]
            }
            Windows::Sliding { size, slide } => {
                let slide = slide.max(1);
                let last = time - time % slide;
                let mut windows = Vec::new();
                let mut start = last;
                loop {
                    if start.saturating_add(size) > time {
                        windows.push((start, start.saturating_add(size)));
                    } else {
                        break;
                    }
                    match start.checked_sub(slide) {
                        Some(s) => start = s,
                        None => break,
                    }
                }
                windows.reverse();
                windows
            }
            Windows::Session { gap } => vec![(time, time.saturating_add(gap.max(1)))],
        }
    }
}

/// Which aggregate of a window's values to report.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Aggregate {
    /// Number of events.
    Count,
    /// Sum of values.
    Sum,
    /// Smallest value.
    Min,
    /// Largest value.
    Max,
    /// Mean value.
    Avg,
}

impl std::str::FromStr for Aggregate {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "count" => Ok(Aggregate::Count),
            "sum" => Ok(Aggregate::Sum),
            "min" => Ok(Aggregate::Min),
            "max" => Ok(Aggregate::Max),
            "avg" => Ok(Aggregate::Avg),
            other => Err(format!(
                "unknown aggregate {other:?} (count, sum, min, max or avg)"
            )),
        }
    }
}

/// Everything the aggregates need: count, sum, min and max of a window's values.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Acc {
    /// Events.
    pub count: u64,
    /// Sum of values.
    pub sum: f64,
    /// Smallest value.
    pub min: f64,
    /// Largest value.
    pub max: f64,
}

impl Acc {
    /// The accumulator of one value.
    pub fn of(value: f64) -> Self {
        Acc {
            count: 1,
            sum: value,
            min: value,
            max: value,
        }
    }

    /// Adds another accumulator's values.
    pub fn merge(&mut self, other: &Acc) {
        self.count += other.count;
        self.sum += other.sum;
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
    }

    /// The aggregate `which`.
    pub fn get(&self, which: Aggregate) -> f64 {
        match which {
            Aggregate::Count => self.count as f64,
            Aggregate::Sum => self.sum,
            Aggregate::Min => self.min,
            Aggregate::Max => self.max,
            Aggregate::Avg => {
                if self.count == 0 {
                    0.0
                } else {
                    self.sum / self.count as f64
                }
            }
        }
    }
}

/// Where a source worker stands in event time at the end of an epoch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Watermark {
    /// Every input this worker reads is idle (read to its end and quiet), or
    /// it reads none: it does not hold event time back. `through` is the
    /// largest watermark its inputs reached: where event time may go when
    /// every source is idle (all that exists has been read), so that inputs
    /// going idle together do not hold back what they had read.
    Idle {
        /// The largest event time read, less the allowed disorder.
        through: Option<u64>,
    },
    /// An input this worker reads has not shown its event time yet (its
    /// first records have not been read, and it is not known to be idle):
    /// event time may not pass anything.
    Pending,
    /// Every event before this time (ms) has been read, less the allowed
    /// disorder.
    At(u64),
    /// The input has ended: every window may fire.
    End,
}

impl Watermark {
    /// The event-time frontier of several sources' watermarks of one epoch:
    /// the smallest of those not idle; when all are idle, the largest they
    /// read through; `None` when none of them lets event time advance.
    pub fn combine(watermarks: impl IntoIterator<Item = Watermark>) -> Option<Frontier> {
        let mut frontier: Option<Frontier> = None;
        let mut idle_through: Option<u64> = None;
        for watermark in watermarks {
            let this = match watermark {
                Watermark::Idle { through } => {
                    idle_through = idle_through.max(through);
                    continue;
                }
                Watermark::Pending => return None,
                Watermark::At(t) => Frontier::At(t),
                Watermark::End => Frontier::End,
            };
            frontier = Some(frontier.map_or(this, |f| f.min(this)));
        }
        frontier.or(idle_through.map(Frontier::At))
    }
}

/// How far event time has come, for firing windows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Frontier {
    /// Windows ending at or before this time fire.
    At(u64),
    /// Every window fires.
    End,
}

/// The windows of `events` (`(key, time, value)`), computed sequentially: the
/// result of a window operator whose watermark only passes windows after all
/// their events have come (no late events).
pub fn reference<K: Ord + Clone>(
    events: &[(K, u64, f64)],
    windows: Windows,
) -> BTreeMap<(K, u64, u64), Acc> {
    let mut result: BTreeMap<(K, u64, u64), Acc> = BTreeMap::new();
    match windows {
        Windows::Session { gap } => {
            let mut by_key: BTreeMap<K, Vec<(u64, f64)>> = BTreeMap::new();
            for (key, time, value) in events {
                by_key.entry(key.clone()).or_default().push((*time, *value));
            }
            for (key, mut list) in by_key {
                list.sort_by_key(|&(t, _)| t);
                let mut session: Option<(u64, u64, Acc)> = None;
                for (time, value) in list {
                    session = match session {
                        Some((start, end, mut acc)) if time < end => {
                            acc.merge(&Acc::of(value));
                            Some((start, end.max(time.saturating_add(gap.max(1))), acc))
                        }
                        other => {
                            if let Some((start, end, acc)) = other {
                                result.insert((key.clone(), start, end), acc);
                            }
                            Some((time, time.saturating_add(gap.max(1)), Acc::of(value)))
                        }
                    };
                }
                if let Some((start, end, acc)) = session {
                    result.insert((key.clone(), start, end), acc);
                }
            }
        }
        _ => {
            for (key, time, value) in events {
                for (start, end) in windows.assign(*time) {
                    result
                        .entry((key.clone(), start, end))
                        .and_modify(|a| a.merge(&Acc::of(*value)))
                        .or_insert(Acc::of(*value));
                }
            }
        }
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idle_sources_hold_nothing_back_but_keep_what_they_read() {
        let idle = |through| Watermark::Idle { through };
        let at = Watermark::At;
        // the smallest of the active ones; idle ones do not count
        let f = Watermark::combine([at(5), idle(Some(2)), at(9)]);
        assert_eq!(f, Some(Frontier::At(5)));
        // one input not read yet holds everything
        assert_eq!(Watermark::combine([at(5), Watermark::Pending]), None);
        // all idle (they went idle together): as far as they read
        // (regression: such inputs held every window until the end)
        let f = Watermark::combine([idle(Some(2)), idle(None), idle(Some(7))]);
        assert_eq!(f, Some(Frontier::At(7)));
        assert_eq!(Watermark::combine([idle(None)]), None);
        assert_eq!(
            Watermark::combine([Watermark::End, at(3)]),
            Some(Frontier::At(3))
        );
        assert_eq!(Watermark::combine([Watermark::End]), Some(Frontier::End));
    }

    #[test]
    fn tumbling_and_sliding_windows_contain_the_event() {
        assert_eq!(Windows::Tumbling { size: 10 }.assign(23), vec![(20, 30)]);
        assert_eq!(
            Windows::Sliding { size: 10, slide: 5 }.assign(23),
            vec![(15, 25), (20, 30)]
        );
        assert_eq!(
            Windows::Sliding { size: 10, slide: 5 }.assign(3),
            vec![(0, 10)]
        );
    }

    #[test]
    fn accumulators_give_every_aggregate() {
        let mut acc = Acc::of(2.0);
        acc.merge(&Acc::of(6.0));
        acc.merge(&Acc::of(1.0));
        assert_eq!(acc.get(Aggregate::Count), 3.0);
        assert_eq!(acc.get(Aggregate::Sum), 9.0);
        assert_eq!(acc.get(Aggregate::Min), 1.0);
        assert_eq!(acc.get(Aggregate::Max), 6.0);
        assert_eq!(acc.get(Aggregate::Avg), 3.0);
    }
}
