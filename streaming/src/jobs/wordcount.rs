//! Streaming word count, exactly once: files arriving in a directory are read,
//! the running count of every word is checkpointed keyed state, and each epoch's
//! changed counts (`word<TAB>count`) become visible in the output directory
//! once the checkpoint that covers them is complete.

use std::collections::HashMap;
use std::path::Path;

use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::{Exchange, Pipeline};
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::{Scope, StreamVec};
use weir_dataflows::JobError;
use weir_dataflows::jobs::wordcount::for_each_word;
use weir_progress::checkpoint::{Ack, StatefulUnary};
use weir_progress::route::key_hash;

use crate::dir_sink::{CommitFiles, DirSink, recover_output};
use crate::dir_source::{DirSource, WatchDir};
use crate::run::{Built, StreamCtx, StreamOptions, StreamSummary, run_stream};

/// Operator names (they name the state in checkpoints).
const SOURCE: &str = "lines";
const COUNTS: &str = "counts";
const SINK: &str = "out";

/// One worker's dataflow: returns the changed counts per epoch, and the acks
/// of the source and of the counts.
pub fn counts<'s>(
    scope: Scope<'s, u64>,
    source: &DirSource,
    ctx: &StreamCtx,
) -> (StreamVec<'s, u64, String>, Vec<StreamVec<'s, u64, Ack>>) {
    let (lines, source_acks) =
        scope.watch_dir(SOURCE, source, &ctx.recovery, &ctx.checkpoints, &ctx.source);
    // words counted per batch before they cross workers
    let words = lines.unary::<CapacityContainerBuilder<Vec<(String, u64)>>, _, _, _>(
        Pipeline,
        "SplitWords",
        |_, _| {
            let mut counts: HashMap<String, u64> = HashMap::new();
            move |input, output| {
                input.for_each_stamp(|stamp, data| {
                    for line in data.flat_map(|batch| batch.iter()) {
                        for_each_word(line, |w| match counts.get_mut(w) {
                            Some(c) => *c += 1,
                            None => {
                                counts.insert(w.to_owned(), 1);
                            }
                        });
                    }
                    output.session(&stamp).give_iterator(counts.drain());
                });
            }
        },
    );
    let (changed, count_acks) = words.stateful_unary(
        Exchange::new(|(w, _): &(String, u64)| key_hash(w)),
        COUNTS,
        &ctx.checkpoints,
        |_epoch, records, state, out: &mut Vec<String>| {
            let mut epoch: HashMap<String, u64> = HashMap::new();
            for (word, n) in records {
                *epoch.entry(word).or_insert(0) += n;
            }
            for (word, n) in epoch {
                let total = *state.update(word.clone(), || 0u64, |c| *c += n);
                out.push(format!("{word}\t{total}"));
            }
        },
    );
    (changed, vec![source_acks, count_acks])
}

/// Runs the job until its source stops (see [`DirSource::stop_when_idle`]).
pub fn run(
    config: timely::Config,
    source: DirSource,
    output: &Path,
    options: &StreamOptions,
) -> Result<StreamSummary, JobError> {
    source.validate()?;
    let out = output.to_path_buf();
    let prepare = move |recovery: &weir_progress::recovery::Recovery| {
        recover_output(
            &out,
            recovery.committed_before(),
            recovery.manifest.is_none(),
        )
    };
    let out = output.to_path_buf();
    run_stream(config, options, prepare, move |scope, ctx| {
        let (changed, mut acks) = counts(scope, &source, ctx);
        let sink = DirSink {
            dir: out.clone(),
            committed_before: ctx.recovery.committed_before(),
        };
        let (sink_acks, staged) =
            changed.commit_files(SINK, &sink, &ctx.checkpoints, &ctx.source, &ctx.records_out);
        acks.push(sink_acks);
        Built {
            acks,
            staged: vec![staged],
        }
    })
}
