//! Seeded generators for text and tables.
//!
//! Every line is a pure function of `(seed, line index)`, so any worker can produce
//! any range of lines without coordination and the same seed gives the same data at
//! every worker count. Jobs run on these when no input file is given, and
//! `weir gen` writes them to files.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Zipf};

/// A reproducible source of text lines.
#[derive(Clone, Debug, PartialEq)]
pub enum Generator {
    /// Natural-language-like text.
    Text(TextSpec),
    /// A table of delimited rows.
    Table(TableSpec),
}

/// Text: Zipf-distributed words from a seeded vocabulary, mixed case, with
/// punctuation and some non-ASCII letters.
#[derive(Clone, Debug, PartialEq)]
pub struct TextSpec {
    /// Number of lines.
    pub lines: u64,
    /// Maximum number of words on a line (at least 1).
    pub max_words: u32,
    /// Number of distinct words (at least 1).
    pub vocabulary: u32,
    /// Seed.
    pub seed: u64,
}

/// A table whose first column is a join key `k<number>`, keys uniform in
/// `0..keys`, followed by `columns - 1` value columns.
#[derive(Clone, Debug, PartialEq)]
pub struct TableSpec {
    /// Number of rows.
    pub rows: u64,
    /// Number of distinct keys (at least 1).
    pub keys: u64,
    /// Number of columns, the key included (at least 1).
    pub columns: u32,
    /// Field delimiter.
    pub delimiter: u8,
    /// Seed.
    pub seed: u64,
}

const LETTERS: &[char] = &[
    'a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i', 'j', 'k', 'l', 'm', 'n', 'o', 'p', 'q', 'r', 's',
    't', 'u', 'v', 'w', 'y', 'z', 'é', 'ü', 'ø', 'ß', 'ñ', 'ç', '1', '7',
];
const SEPARATORS: &[&str] = &[
    " ", " ", " ", " ", ", ", ". ", " - ", "; ", "\t", " (", ") ",
];

fn line_rng(seed: u64, index: u64) -> ChaCha8Rng {
    // splitmix64 of the pair, so neighbouring lines get unrelated streams
    let mut z = seed ^ index.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    ChaCha8Rng::seed_from_u64(z ^ (z >> 31))
}

/// A generator made ready to produce lines: it owns the vocabulary and distributions.
#[derive(Debug)]
pub struct LineMaker {
    spec: Generator,
    vocabulary: Vec<String>,
    zipf: Option<Zipf<f64>>,
}

impl Generator {
    /// Number of lines this generator produces.
    pub fn lines(&self) -> u64 {
        match self {
            Generator::Text(t) => t.lines,
            Generator::Table(t) => t.rows,
        }
    }

    /// A short description for job summaries, e.g. `generated text (seed 42, 100000 lines)`.
    pub fn describe(&self) -> String {
        match self {
            Generator::Text(t) => format!(
                "generated text (seed {}, {} lines, up to {} words a line, vocabulary {})",
                t.seed, t.lines, t.max_words, t.vocabulary
            ),
            Generator::Table(t) => format!(
                "generated table (seed {}, {} rows, {} keys, {} columns)",
                t.seed, t.rows, t.keys, t.columns
            ),
        }
    }

    /// Prepares the generator.
    pub fn maker(&self) -> LineMaker {
        match self {
            Generator::Text(t) => {
                let mut rng = line_rng(t.seed, u64::MAX);
                let vocabulary = (0..t.vocabulary.max(1))
                    .map(|_| {
                        let len = rng.random_range(1..=9);
                        (0..len)
                            .map(|_| LETTERS[rng.random_range(0..LETTERS.len())])
                            .collect()
                    })
                    .collect();
                let zipf = Zipf::new(f64::from(t.vocabulary.max(1)), 1.0).ok();
                LineMaker {
                    spec: self.clone(),
                    vocabulary,
                    zipf,
                }
            }
            Generator::Table(_) => LineMaker {
                spec: self.clone(),
                vocabulary: Vec::new(),
                zipf: None,
            },
        }
    }
}

impl LineMaker {
    /// Writes line `index` (without a newline) into `out`, replacing its contents.
    pub fn line(&self, index: u64, out: &mut String) {
        use std::fmt::Write;
        out.clear();
        let mut rng = line_rng(self.seed(), index);
        match &self.spec {
            Generator::Text(t) => {
                let words = rng.random_range(1..=t.max_words.max(1));
                for w in 0..words {
                    if w > 0 {
                        out.push_str(SEPARATORS[rng.random_range(0..SEPARATORS.len())]);
                    }
                    let rank = match &self.zipf {
                        Some(z) => (z.sample(&mut rng) as usize).saturating_sub(1),
                        None => 0,
                    };
                    let word = &self.vocabulary[rank.min(self.vocabulary.len() - 1)];
                    match rng.random_range(0..10) {
                        0 => out.extend(word.chars().flat_map(char::to_uppercase)),
                        1 => {
                            let mut chars = word.chars();
                            if let Some(first) = chars.next() {
                                out.extend(first.to_uppercase());
                                out.push_str(chars.as_str());
                            }
                        }
                        _ => out.push_str(word),
                    }
                }
            }
            Generator::Table(t) => {
                let delimiter = char::from(t.delimiter);
                let _ = write!(out, "k{}", rng.random_range(0..t.keys.max(1)));
                for c in 1..t.columns {
                    out.push(delimiter);
                    let _ = match c % 3 {
                        1 => write!(out, "r{index}"),
                        2 => write!(out, "{}", rng.random_range(0..1_000_000u32)),
                        _ => write!(out, "x{:08x}", rng.random::<u32>()),
                    };
                }
            }
        }
    }

    fn seed(&self) -> u64 {
        match &self.spec {
            Generator::Text(t) => t.seed,
            Generator::Table(t) => t.seed,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_depend_only_on_seed_and_index() {
        let spec = Generator::Text(TextSpec {
            lines: 10,
            max_words: 12,
            vocabulary: 50,
            seed: 7,
        });
        let (a, b) = (spec.maker(), spec.maker());
        let (mut x, mut y) = (String::new(), String::new());
        a.line(3, &mut x);
        b.line(3, &mut y);
        assert_eq!(x, y);
        b.line(4, &mut y);
        assert_ne!(x, y);
    }

    #[test]
    fn table_rows_have_the_requested_columns() {
        let spec = Generator::Table(TableSpec {
            rows: 5,
            keys: 3,
            columns: 4,
            delimiter: b',',
            seed: 1,
        });
        let maker = spec.maker();
        let mut line = String::new();
        for i in 0..5 {
            maker.line(i, &mut line);
            let fields: Vec<_> = line.split(',').collect();
            assert_eq!(fields.len(), 4, "{line}");
            assert!(["k0", "k1", "k2"].contains(&fields[0]), "{line}");
        }
    }
}
