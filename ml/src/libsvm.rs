//! Labelled sparse examples: LIBSVM files (`label index:value ...`, 1-based
//! ascending indices), or seeded synthetic sets generated on the workers.
//!
//! Every example has a key that does not depend on the worker count (its
//! file and byte offset, or its index in a generated set): partitions and
//! their order are derived from it, so a dataflow and its sequential
//! reference see the same partitions.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use timely::dataflow::{Scope, StreamVec};
use weir_runtime::JobError;
use weir_runtime::exec::WorkerCtx;
use weir_runtime::input::{LineInput, LinePos};
use weir_runtime::operators::{GenerateChunks, ReadLines};

use crate::ratings::splitmix;
use weir_runtime::time::BatchTime;

/// One labelled example.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Example {
    /// A key unique within the input, the same at any worker count.
    pub key: u64,
    /// The label, -1 or +1.
    pub label: f64,
    /// Features: (0-based index, value), ascending indices, no zeros.
    pub features: Vec<(u32, f64)>,
}

impl Example {
    /// `<w, x>`.
    #[inline]
    pub fn dot(&self, w: &[f64]) -> f64 {
        self.features
            .iter()
            .map(|&(j, v)| w.get(j as usize).copied().unwrap_or(0.0) * v)
            .sum()
    }

    /// `|x|²`.
    pub fn norm2(&self) -> f64 {
        self.features.iter().map(|(_, v)| v * v).sum()
    }

    /// One past the largest feature index.
    pub fn dimension(&self) -> usize {
        self.features.last().map_or(0, |&(j, _)| j as usize + 1)
    }
}

/// The key of a line: its file and byte offset.
pub fn line_key(pos: LinePos) -> u64 {
    ((pos.file as u64) << 48) ^ pos.offset
}

/// Parses a LIBSVM line `label index:value ...` (labels -1/+1, or 0/1 with
/// 0 meaning -1; indices 1-based and ascending). Blank lines and `#`
/// comments give `None`.
pub fn parse_libsvm(line: &str, key: u64) -> Result<Option<Example>, String> {
    let text = line.split('#').next().unwrap_or("").trim();
    if text.is_empty() {
        return Ok(None);
    }
    let mut fields = text.split_whitespace();
    let label_text = fields.next().unwrap_or("");
    let label = match label_text.parse::<f64>() {
        Ok(1.0) => 1.0,
        Ok(-1.0 | 0.0) => -1.0,
        _ => {
            return Err(format!(
                "label {label_text:?}: expected -1/+1 (or 0/1) for a binary SVM"
            ));
        }
    };
    let mut features: Vec<(u32, f64)> = Vec::new();
    for field in fields {
        let Some((index, value)) = field.split_once(':') else {
            return Err(format!("feature {field:?}: expected index:value"));
        };
        let index: u32 = match index.parse::<u32>() {
            Ok(i) if i >= 1 => i - 1,
            _ => return Err(format!("feature index {index:?}: expected an integer ≥ 1")),
        };
        let value: f64 = match value.parse::<f64>() {
            Ok(v) if v.is_finite() => v,
            _ => return Err(format!("feature value {value:?} is not a finite number")),
        };
        if features.last().is_some_and(|&(last, _)| last >= index) {
            return Err(format!(
                "feature index {} after {}: indices must ascend",
                index + 1,
                features.last().map_or(0, |&(l, _)| l + 1)
            ));
        }
        if value != 0.0 {
            features.push((index, value));
        }
    }
    Ok(Some(Example {
        key,
        label,
        features,
    }))
}

/// A seeded synthetic set: a hidden unit separator `w*` on `dimension`
/// features; each example has `nonzeros` random features, uniform in
/// [-1, 1], scaled to unit length; its label is the sign of `<w*, x>`,
/// flipped with probability `noise`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SyntheticSvm {
    /// Examples.
    pub examples: u64,
    /// Features.
    pub dimension: u32,
    /// Non-zero features per example.
    pub nonzeros: u32,
    /// Share of flipped labels.
    pub noise: f64,
    /// The seed.
    pub seed: u64,
}

const CHUNK: u64 = 4096;

impl SyntheticSvm {
    /// The embedded default of `weir cocoa`.
    pub const DEFAULT: SyntheticSvm = SyntheticSvm {
        examples: 20_000,
        dimension: 500,
        nonzeros: 20,
        noise: 0.05,
        seed: 42,
    };

    fn chunks(&self) -> u64 {
        self.examples.div_ceil(CHUNK)
    }

    fn separator(&self, j: u32) -> f64 {
        let h = splitmix(self.seed ^ splitmix(u64::from(j) ^ 0x5eed));
        (h >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
    }

    /// The examples of chunk `chunk`, appended to `out`.
    pub fn chunk(&self, chunk: u64, out: &mut Vec<Example>) {
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed);
        rng.set_stream(chunk);
        let first = chunk * CHUNK;
        for key in first..self.examples.min(first + CHUNK) {
            let mut features: Vec<(u32, f64)> = (0..self.nonzeros.min(self.dimension))
                .map(|_| {
                    (
                        rng.random_range(0..self.dimension),
                        rng.random_range(-1.0..1.0),
                    )
                })
                .collect();
            features.sort_unstable_by_key(|f| f.0);
            features.dedup_by_key(|f| f.0);
            let norm = features.iter().map(|(_, v)| v * v).sum::<f64>().sqrt();
            features
                .iter_mut()
                .for_each(|(_, v)| *v /= norm.max(f64::MIN_POSITIVE));
            let margin: f64 = features.iter().map(|&(j, v)| self.separator(j) * v).sum();
            let mut label = if margin >= 0.0 { 1.0 } else { -1.0 };
            if rng.random_bool(self.noise.clamp(0.0, 1.0)) {
                label = -label;
            }
            out.push(Example {
                key,
                label,
                features,
            });
        }
    }
}

/// Where examples come from.
#[derive(Clone, Debug)]
pub enum SvmInput {
    /// LIBSVM files.
    Files(LineInput),
    /// A generated set.
    Synthetic(SyntheticSvm),
}

impl SvmInput {
    /// Checks that the files exist (or the sizes).
    pub fn validate(&self) -> Result<(), JobError> {
        match self {
            SvmInput::Files(lines) => lines.validate().map(drop),
            SvmInput::Synthetic(s) if s.examples == 0 || s.dimension == 0 => Err(
                JobError::Invalid("a synthetic set needs examples and features".into()),
            ),
            SvmInput::Synthetic(_) => Ok(()),
        }
    }

    /// What the input is.
    pub fn describe(&self) -> String {
        match self {
            SvmInput::Files(lines) => lines.describe(),
            SvmInput::Synthetic(s) => format!(
                "synthetic: {} examples, {} features ({} non-zero each), {} label noise, seed {}",
                s.examples, s.dimension, s.nonzeros, s.noise, s.seed
            ),
        }
    }

    /// All examples, read sequentially.
    pub fn all(&self) -> Result<Vec<Example>, JobError> {
        let mut out = Vec::new();
        match self {
            SvmInput::Files(lines) => {
                let mut reader = lines.reader(0, 1)?;
                let mut line = String::new();
                while let Some(pos) = reader.next_line(&mut line)? {
                    match parse_libsvm(&line, line_key(pos)) {
                        Ok(Some(e)) => out.push(e),
                        Ok(None) => {}
                        Err(message) => {
                            return Err(JobError::Malformed {
                                position: reader.locate(pos),
                                message,
                                remedy: None,
                            });
                        }
                    }
                }
            }
            SvmInput::Synthetic(s) => {
                for chunk in 0..s.chunks() {
                    s.chunk(chunk, &mut out);
                }
            }
        }
        Ok(out)
    }

    /// This worker's share of the examples as a stream.
    pub fn examples<'s>(
        &self,
        scope: Scope<'s, BatchTime>,
        ctx: &WorkerCtx,
    ) -> StreamVec<'s, BatchTime, Example> {
        match self {
            SvmInput::Files(lines) => {
                scope.read_lines(lines, ctx, 0, |line, pos| parse_libsvm(line, line_key(pos)))
            }
            SvmInput::Synthetic(synthetic) => {
                let synthetic = *synthetic;
                scope.generate_chunks(
                    ctx,
                    "SyntheticExamples",
                    synthetic.chunks(),
                    move |chunk, out| synthetic.chunk(chunk, out),
                )
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn libsvm_lines_parse_and_bad_ones_are_named() {
        let e = parse_libsvm("+1 1:0.5 3:-2 # comment", 7).unwrap().unwrap();
        assert_eq!(e.label, 1.0);
        assert_eq!(e.features, vec![(0, 0.5), (2, -2.0)]);
        assert_eq!(parse_libsvm("0 2:1", 0).unwrap().unwrap().label, -1.0);
        assert_eq!(parse_libsvm("   # only a comment", 0), Ok(None));
        for (line, needle) in [
            ("2 1:1", "label \"2\""),
            ("1 0:1", "index \"0\""),
            ("1 3:1 2:1", "must ascend"),
            ("1 1:x", "value \"x\""),
            ("1 1", "index:value"),
        ] {
            let err = parse_libsvm(line, 0).unwrap_err();
            assert!(err.contains(needle), "{line}: {err}");
        }
    }
}
