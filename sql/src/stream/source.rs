//! The Nexmark generator as a streaming source. The sequence of events is
//! cut into [`SPLITS`] splits (split `s`: events `s`, `s + SPLITS`, ...),
//! as a Kafka topic is cut into partitions: each worker generates the
//! splits it owns, and a checkpoint records how far each split has gone, so
//! that a restore at any worker count resumes every split where it was.
//! Epochs close on the job's epoch clock; a restored run first replays the
//! epochs that sinks may have made visible already, cutting them as before.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use timely::container::CapacityContainerBuilder;
use timely::dataflow::operators::generic::OutputBuilder;
use timely::dataflow::operators::generic::builder_rc::OperatorBuilder;
use timely::dataflow::{Scope, StreamVec};
use weir_progress::checkpoint::{Ack, FINAL_EPOCH};
use weir_progress::store::SourceMark;
use weir_runtime::JobError;
use weir_streaming::run::{Commit, StreamCtx};
use weir_streaming::window::Watermark;

use crate::batch::Batch;
use crate::nexmark::{NexmarkTable, Share};

/// Splits of the event sequence: the most workers a source keeps busy.
pub const SPLITS: usize = 16;
/// Events a split generates per activation at most.
const BATCH_EVENTS: u64 = 4096;

/// One split being generated.
struct Split {
    key: String,
    share: Share,
    /// Events generated when this run started, and when.
    from: (u64, Instant),
    /// Events generated when the current epoch began.
    epoch_from: u64,
}

impl Split {
    /// Events due by now at `rate` events a second for the whole sequence,
    /// but no more in one epoch than two `interval`s' worth: a source that
    /// falls behind (its worker starved, a slow operator) catches up over
    /// several epochs rather than in one (bounded epochs, as they are
    /// when it keeps up).
    fn due(&self, rate: Option<u64>, interval: Duration) -> u64 {
        let Some(rate) = rate else {
            return BATCH_EVENTS;
        };
        let per_split = rate as f64 / SPLITS as f64;
        let done = self.share.generated - self.from.0;
        let due = (self.from.1.elapsed().as_secs_f64() * per_split) as u64;
        let epoch_cap = ((2.0 * interval.as_secs_f64() * per_split).ceil() as u64).max(1);
        let this_epoch = self.share.generated - self.epoch_from;
        due.saturating_sub(done)
            .min(epoch_cap.saturating_sub(this_epoch))
            .min(BATCH_EVENTS)
    }
}

/// Where this worker's splits stand in event time at the end of an epoch:
/// the earliest of the last event times of the splits not yet at their end
/// (each split's events come in time order); a split that has not begun
/// holds event time back, and splits at their end do not.
fn watermark(splits: &[Split]) -> Watermark {
    if splits.is_empty() {
        return Watermark::Idle { through: None };
    }
    let mut earliest: Option<u64> = None;
    for split in splits.iter().filter(|s| s.share.left() != Some(0)) {
        match split.share.last_time {
            None => return Watermark::Pending,
            Some(t) => earliest = Some(earliest.map_or(t, |e| e.min(t))),
        }
    }
    earliest.map_or(Watermark::End, Watermark::At)
}

/// What a source gives: its rows, its acknowledgements, and its
/// watermark at the end of every epoch.
pub(crate) struct Source<'s> {
    pub(crate) rows: StreamVec<'s, u64, Batch>,
    pub(crate) acks: StreamVec<'s, u64, Ack>,
    pub(crate) watermarks: StreamVec<'s, u64, Watermark>,
    /// The commit step of its dead letters' sink, if it has one.
    pub(crate) commit: Option<Box<dyn Commit<'s> + 's>>,
}

/// Generates the rows of a Nexmark table, stamped with epochs.
pub(crate) fn nexmark<'s>(
    scope: Scope<'s, u64>,
    name: &str,
    table: NexmarkTable,
    projection: Vec<usize>,
    interval: Duration,
    job: &StreamCtx,
) -> Source<'s> {
    let (recovery, checkpoints, ctx) = (&job.recovery, &job.checkpoints, &job.source);
    let (index, peers) = (checkpoints.index, checkpoints.peers);
    let owns = move |split: usize| split % peers.max(1) == index;
    let mine = move |key: &str| {
        key.strip_prefix("split-")
            .and_then(|s| s.parse::<usize>().ok())
            .is_some_and(owns)
    };
    let positions = recovery.positions(name, mine);
    let now = Instant::now();
    let mut splits: Vec<Split> = (0..SPLITS)
        .filter(|&s| owns(s))
        .map(|s| {
            let key = format!("split-{s}");
            let skip = positions.get(&key).copied().unwrap_or(0);
            let share = Share::new(&table, s, SPLITS, skip);
            Split {
                key,
                from: (share.generated, now),
                epoch_from: share.generated,
                share,
            }
        })
        .collect();
    let mut plan = recovery.replay_plan(name, mine);
    checkpoints.participate(name);
    let start = recovery.start();

    let mut builder = OperatorBuilder::new(format!("Nexmark({name})"), scope);
    let activator = scope.activator_for(builder.operator_info().address);
    let (data_out, rows) = builder.new_output();
    let (ack_out, acks) = builder.new_output();
    let (watermark_out, watermarks) = builder.new_output();
    let mut watermark_out =
        OutputBuilder::<u64, CapacityContainerBuilder<Vec<Watermark>>>::from(watermark_out);
    let mut data_out = OutputBuilder::<u64, CapacityContainerBuilder<Vec<Batch>>>::from(data_out);
    let mut ack_out = OutputBuilder::<u64, CapacityContainerBuilder<Vec<Ack>>>::from(ack_out);
    let (ctx, name) = (ctx.clone(), name.to_string());
    builder.build(move |mut caps| {
        let mut watermark_cap = caps.pop();
        let mut ack_cap = caps.pop();
        let mut data_cap = caps.pop();
        for cap in data_cap
            .iter_mut()
            .chain(ack_cap.iter_mut())
            .chain(watermark_cap.iter_mut())
        {
            cap.downgrade(&start);
        }
        let mut epoch = start;
        move |_frontiers| {
            let (Some(data), Some(ack), Some(at)) =
                (data_cap.as_mut(), ack_cap.as_mut(), watermark_cap.as_mut())
            else {
                return;
            };
            let mark = |splits: &[Split], next: u64| {
                Ack::Source(SourceMark {
                    operator: name.clone(),
                    worker: index,
                    next,
                    positions: splits
                        .iter()
                        .map(|s| (s.key.clone(), s.share.generated))
                        .collect::<BTreeMap<_, _>>(),
                })
            };
            if ctx.aborted.get() || ctx.failure.is_set() {
                if !ctx.aborted.get() {
                    ack_out
                        .activate()
                        .session(&*ack)
                        .give(Ack::Failed("a worker failed".into()));
                }
                data_cap = None;
                ack_cap = None;
                watermark_cap = None;
                return;
            }
            let replayed = plan.remove(&epoch);
            let replaying = replayed.is_some() || !plan.is_empty();
            let mut out = Vec::new();
            let mut result = Ok(());
            for split in &mut splits {
                let events = match &replayed {
                    // replay: generate exactly what this epoch generated before
                    Some(targets) => targets
                        .get(&split.key)
                        .map_or(0, |&t| t.saturating_sub(split.share.generated)),
                    None if replaying => 0,
                    None => split.due(table.rate, interval),
                };
                let mut left = events;
                while left > 0 && split.share.left() != Some(0) && result.is_ok() {
                    let step = left.min(BATCH_EVENTS);
                    left -= step;
                    match split.share.next_batch(step) {
                        Ok(Some(batch)) => match batch.project(&projection) {
                            Ok(batch) => out.push(Batch(batch)),
                            Err(e) => result = Err(e.to_string()),
                        },
                        Ok(None) => {}
                        Err(e) => result = Err(e.to_string()),
                    }
                }
            }
            ctx.records_in
                .add(out.iter().map(|b| b.0.num_rows() as u64).sum());
            if !out.is_empty() {
                data_out
                    .activate()
                    .session(&*data)
                    .give_iterator(out.drain(..));
            }
            if let Err(message) = result {
                let error = JobError::Io {
                    path: name.clone(),
                    message,
                };
                ack_out
                    .activate()
                    .session(&*ack)
                    .give(Ack::Failed(error.to_string()));
                ctx.failure.set(error);
                data_cap = None;
                ack_cap = None;
                watermark_cap = None;
                return;
            }
            let stop = !replaying && splits.iter().all(|s| s.share.left() == Some(0));
            let left = ctx.clock.left(epoch, start, interval);
            if replaying || stop || left.is_zero() {
                ack_out
                    .activate()
                    .session(&*ack)
                    .give(mark(&splits, epoch + 1));
                watermark_out
                    .activate()
                    .session(&*at)
                    .give(watermark(&splits));
                epoch += 1;
                for split in &mut splits {
                    split.epoch_from = split.share.generated;
                }
                data.downgrade(&epoch);
                ack.downgrade(&epoch);
                at.downgrade(&epoch);
            }
            if stop {
                ack.downgrade(&FINAL_EPOCH);
                ack_out.activate().session(&*ack).give(mark(&splits, epoch));
                data_cap = None;
                ack_cap = None;
                watermark_cap = None;
            } else if replaying || table.rate.is_none() {
                activator.activate();
            } else {
                let left = ctx.clock.left(epoch, start, interval);
                activator.activate_after(left.min(Duration::from_millis(1)));
            }
        }
    });
    Source {
        rows,
        acks,
        watermarks,
        commit: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_split_that_fell_behind_catches_up_over_several_epochs() {
        // 16,000 events a second: 1,000 a split; ten seconds behind
        let table = NexmarkTable {
            table: 2,
            events: None,
            rate: Some(16_000),
        };
        let share = Share::new(&table, 0, SPLITS, 0);
        let mut split = Split {
            key: "split-0".into(),
            from: (0, Instant::now() - Duration::from_secs(10)),
            epoch_from: 0,
            share,
        };
        let interval = Duration::from_millis(5);
        // two intervals' worth in an epoch: 2 * 5 ms * 1,000 a second
        assert_eq!(split.due(table.rate, interval), 10);
        split.share.next_batch(10).unwrap();
        assert_eq!(split.due(table.rate, interval), 0);
        // the next epoch goes on catching up
        split.epoch_from = split.share.generated;
        assert_eq!(split.due(table.rate, interval), 10);
        // as fast as possible: no bound but a batch's
        assert_eq!(split.due(None, interval), BATCH_EVENTS);
    }
}
