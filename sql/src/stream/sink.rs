//! Where a streaming query's rows go: each worker holds its rows of an epoch
//! until a checkpoint that covers the epoch is committed (and every row of
//! the epoch is in), then hands them over, epoch by epoch. A run restored
//! from that checkpoint does not produce them again; when a damaged
//! checkpoint makes the restore fall back past a committed one, the epochs
//! between are replayed (the sources cut them as before) and not handed
//! over again: rows are handed over once.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use arrow::array::RecordBatch;
use timely::container::CapacityContainerBuilder;
use timely::dataflow::StreamVec;
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::generic::Operator;
use weir_progress::checkpoint::Committed;
use weir_runtime::exec::RecordCounter;
use weir_runtime::source_ctx::SourceCtx;

use crate::batch::Batch;
use crate::error::{Result, SqlError};

/// What receives a streaming query's committed rows: the worker, the
/// epoch, and rows of that epoch (called in epoch order on each worker).
pub type Deliver = Arc<dyn Fn(usize, u64, &RecordBatch) + Send + Sync>;

/// Where a streaming query's rows go.
#[derive(Clone)]
pub enum Sink {
    /// To a function, as checkpoints cover them (see the module doc).
    Deliver(Deliver),
    /// To CSV files in a directory, exactly once: `weir stream`'s
    /// committing directory sink (an epoch's file of each worker becomes
    /// visible once a checkpoint covers it; a restart settles what a crash
    /// left, and replayed epochs are not written again).
    Dir(PathBuf),
}

/// `batch` as CSV lines, without a header.
pub fn csv(batch: &RecordBatch) -> Result<String> {
    let mut text = Vec::new();
    arrow::csv::WriterBuilder::new()
        .with_header(false)
        .build(&mut text)
        .write(batch)?;
    String::from_utf8(text).map_err(|e| SqlError::Execution(e.to_string()))
}

/// Hands over each epoch's rows once a checkpoint covers it, but for the
/// epochs below `committed_before` (an earlier run handed them over). The
/// output carries nothing: it ends once both inputs have, after the last
/// rows (covered by the final checkpoint) are handed over.
pub(crate) fn deliver<'s>(
    (rows, committed_before): (StreamVec<'s, u64, Batch>, u64),
    committed: StreamVec<'s, u64, Committed>,
    worker: usize,
    ctx: &SourceCtx,
    counted: &RecordCounter,
    to: Deliver,
) -> StreamVec<'s, u64, ()> {
    let (ctx, counted) = (ctx.clone(), counted.clone());
    let mut pending: BTreeMap<u64, Vec<RecordBatch>> = BTreeMap::new();
    let mut newest: Option<u64> = None;
    rows.binary_frontier::<_, CapacityContainerBuilder<Vec<()>>, _, _, _, _>(
        committed,
        Pipeline,
        Pipeline,
        "Deliver",
        move |_, _| {
            move |(rows, rows_frontier), (committed, _), _output| {
                rows.for_each(|cap, data| {
                    if let Some(&epoch) = cap.stamp().least() {
                        let held = pending.entry(epoch).or_default();
                        held.extend(data.drain(..).map(|b| b.0));
                    }
                });
                committed.for_each(|_, data| {
                    newest = newest.max(ctx.newest_committed(data.iter()));
                });
                let Some(through) = newest else { return };
                while let Some(entry) = pending.first_entry() {
                    let epoch = *entry.key();
                    if epoch > through || rows_frontier.less_equal(&epoch) {
                        break;
                    }
                    let batches = entry.remove();
                    if epoch < committed_before {
                        continue;
                    }
                    for batch in batches {
                        counted.add(batch.num_rows() as u64);
                        to(worker, epoch, &batch);
                    }
                }
            }
        },
    )
}
