//! Streaming word count, exactly once: lines arrive as files in a directory or
//! as records of a Kafka topic, the running count of every word is
//! checkpointed keyed state, and each epoch's changed counts (`word<TAB>count`)
//! become visible — as files in a directory, or as records of a Kafka topic
//! (keyed by word) — once the checkpoint that covers them is complete.

use std::collections::HashMap;
use std::path::PathBuf;

use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::{Exchange, Pipeline};
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::operators::vec::Map;
use timely::dataflow::{Scope, StreamVec};
use weir_progress::checkpoint::{Ack, StatefulUnary};
use weir_progress::recovery::Recovery;
use weir_progress::route::key_hash;
use weir_progress::store::CheckpointStore;
use weir_runtime::JobError;
use weir_runtime::text::for_each_word;

use crate::dir_sink::{CommitFiles, DirSink, TSV, recover_output};
use crate::dir_source::{DirSource, WatchDir};
use crate::kafka::producer::Produce;
use crate::kafka::sink::{KafkaSink, WriteKafka, recover_transactions};
use crate::kafka::source::{KafkaSource, ReadKafka};
use crate::run::{Built, StreamCtx, StreamOptions, StreamSummary, run_stream};

/// Operator names (they name the state in checkpoints).
const SOURCE: &str = "lines";
const COUNTS: &str = "counts";
const SINK: &str = "out";

/// Where the lines come from.
#[derive(Clone, Debug)]
pub enum Input {
    /// Files arriving in a directory.
    Dir(DirSource),
    /// A Kafka topic: each record's value is text.
    Kafka(KafkaSource),
}

/// Where the changed counts go.
#[derive(Clone, Debug)]
pub enum Output {
    /// Files in a directory.
    Dir(PathBuf),
    /// Records of a Kafka topic.
    Kafka {
        /// The topic.
        topic: String,
        /// How it is written.
        sink: KafkaSink,
    },
}

/// Counts the words of `lines`: returns the changed counts per epoch and the
/// acks of the counts.
pub fn counts<'s>(
    lines: StreamVec<'s, u64, String>,
    ctx: &StreamCtx,
) -> (StreamVec<'s, u64, String>, StreamVec<'s, u64, Ack>) {
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
    words.stateful_unary(
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
    )
}

/// The input's lines and the source's acks.
fn read<'s>(
    scope: Scope<'s, u64>,
    input: &Input,
    partitions: usize,
    ctx: &StreamCtx,
) -> (StreamVec<'s, u64, String>, StreamVec<'s, u64, Ack>) {
    match input {
        Input::Dir(source) => {
            let watched =
                scope.watch_dir(SOURCE, source, &ctx.recovery, &ctx.checkpoints, &ctx.source);
            let lines = watched
                .lines
                .flat_map(|read| read.lines().map(String::from).collect::<Vec<_>>());
            (lines, watched.acks)
        }
        Input::Kafka(source) => {
            let streams = scope.read_kafka(
                SOURCE,
                source,
                partitions,
                &ctx.recovery,
                &ctx.checkpoints,
                &ctx.source,
            );
            let (topic, failure) = (source.topic.clone(), ctx.source.failure.clone());
            let lines = streams
                .records
                .unary::<CapacityContainerBuilder<Vec<String>>, _, _, _>(
                    Pipeline,
                    "Text",
                    move |_, _| {
                        move |input, output| {
                            input.for_each_stamp(|stamp, data| {
                                let mut session = output.session(&stamp);
                                for record in data.flat_map(|batch| batch.drain(..)) {
                                    match String::from_utf8(record.value) {
                                        Ok(text) => session.give(text),
                                        Err(e) => failure.set(JobError::Malformed {
                                            position: format!(
                                                "{topic}/{}@{}",
                                                record.partition, record.offset
                                            ),
                                            message: format!(
                                                "not UTF-8 text (byte {})",
                                                e.utf8_error().valid_up_to()
                                            ),
                                            remedy: None,
                                        }),
                                    }
                                }
                            });
                        }
                    },
                );
            (lines, streams.acks)
        }
    }
}

/// Runs the job until its source stops (`stop_when_idle`).
pub fn run(
    config: timely::Config,
    input: Input,
    output: Output,
    options: &StreamOptions,
) -> Result<StreamSummary, JobError> {
    let partitions = match &input {
        Input::Dir(source) => {
            source.validate()?;
            0
        }
        Input::Kafka(source) => source.partitions()?,
    };
    if let Output::Kafka { topic, sink } = &output {
        sink.require_topic(topic)?;
    }
    let settle = output.clone();
    let prepare = move |recovery: &Recovery, store: &CheckpointStore, workers: usize| match &settle
    {
        Output::Dir(dir) => recover_output(
            dir,
            recovery.committed_before(),
            recovery.manifest.is_none(),
        ),
        Output::Kafka { sink, .. } => recover_transactions(store, recovery, SINK, sink, workers),
    };
    run_stream(config, options, prepare, move |scope, ctx| {
        let (lines, source_acks) = read(scope, &input, partitions, ctx);
        let (changed, count_acks) = counts(lines, ctx);
        let mut acks = vec![source_acks, count_acks];
        let committed_before = ctx.recovery.committed_before();
        let commit = match &output {
            Output::Dir(dir) => {
                let sink = DirSink {
                    dir: dir.clone(),
                    committed_before,
                    extension: TSV,
                };
                let (sink_acks, staged) = changed.commit_files(
                    SINK,
                    &sink,
                    &ctx.checkpoints,
                    &ctx.source,
                    &ctx.records_out,
                );
                acks.push(sink_acks);
                Box::new(staged) as Box<dyn crate::run::Commit<'_>>
            }
            Output::Kafka { topic, sink } => {
                let sink = KafkaSink {
                    committed_before,
                    ..sink.clone()
                };
                let topic = topic.clone();
                let records = changed.unary::<CapacityContainerBuilder<Vec<Produce>>, _, _, _>(
                    Pipeline,
                    "ToRecords",
                    move |_, _| {
                        move |input, output| {
                            input.for_each_stamp(|stamp, data| {
                                output.session(&stamp).give_iterator(
                                    data.flat_map(|b| b.drain(..)).map(|line| {
                                        let word = line.split('\t').next().unwrap_or_default();
                                        Produce {
                                            key: Some(word.as_bytes().to_vec()),
                                            ..Produce::value(&topic, line.clone())
                                        }
                                    }),
                                );
                            });
                        }
                    },
                );
                let (sink_acks, commit) = records.write_kafka(
                    SINK,
                    &sink,
                    &ctx.checkpoints,
                    &ctx.source,
                    &ctx.records_out,
                );
                acks.push(sink_acks);
                commit
            }
        };
        Built {
            acks,
            commits: vec![commit],
        }
    })
}
