//! Word count: a word is a maximal run of Unicode alphanumeric characters,
//! lowercased; output lines are `word<TAB>count`.
//!
//! Each worker reads its share of the input, counts words locally (a combiner, so
//! only distinct words cross worker boundaries), then the counts are summed at the
//! worker that owns each word.

use std::collections::{BTreeMap, HashMap};

use timely::dataflow::operators::Probe;
use timely::dataflow::operators::vec::Map;
use timely::dataflow::{Scope, StreamVec};

use weir_runtime::error::JobError;
use weir_runtime::exec::{JobOptions, JobSummary, WorkerCtx, run_job};
use weir_runtime::generate::{Generator, TextSpec};
use weir_runtime::input::LineInput;
use weir_runtime::operators::{FoldByKey, ReadLines, SumByKey};
use weir_runtime::text::for_each_word;
use weir_runtime::time::BatchTime;

/// The embedded default input: seeded generated text.
pub fn default_input() -> LineInput {
    LineInput::Generated(Generator::Text(TextSpec {
        lines: 200_000,
        max_words: 16,
        vocabulary: 20_000,
        seed: 42,
    }))
}

/// The word-count dataflow of one worker.
pub fn dataflow<'s>(
    scope: Scope<'s, BatchTime>,
    ctx: &WorkerCtx,
    input: &LineInput,
) -> StreamVec<'s, BatchTime, String> {
    scope
        .read_lines(input, ctx, 0, |line, _| {
            Ok::<_, String>(Some(line.to_owned()))
        })
        .fold_by_key("CountWords", |counts: &mut HashMap<String, u64>, line| {
            for_each_word(&line, |word| match counts.get_mut(word) {
                Some(count) => *count += 1,
                None => {
                    counts.insert(word.to_owned(), 1);
                }
            })
        })
        .probe_with(&ctx.flow)
        .sum_by_key()
        .map(|(word, count)| format!("{word}\t{count}"))
}

/// Runs word count on `config`.
pub fn run(
    config: timely::Config,
    input: LineInput,
    options: &JobOptions,
) -> Result<JobSummary, JobError> {
    input.validate()?;
    run_job(config, options, move |scope, ctx| {
        dataflow(scope, ctx, &input)
    })
}

/// Sequential reference: the counts of all words of `input`.
pub fn reference(input: &LineInput) -> Result<BTreeMap<String, u64>, JobError> {
    let mut reader = input.reader(0, 1)?;
    let mut counts = BTreeMap::new();
    let mut line = String::new();
    while reader.next_line(&mut line)?.is_some() {
        for_each_word(&line, |w| *counts.entry(w.to_owned()).or_insert(0) += 1);
    }
    Ok(counts)
}
