//! Ratings: `user, item, rating[, timestamp]` lines from files, or seeded
//! synthetic low-rank ratings generated on the workers; and the seeded
//! train/test split, which puts a rating on the same side at any worker count.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};
use serde::{Deserialize, Serialize};
use timely::dataflow::{Scope, StreamVec};
use weir_runtime::JobError;
use weir_runtime::error::Setting;
use weir_runtime::exec::WorkerCtx;
use weir_runtime::input::{LineInput, LinePos};
use weir_runtime::operators::{GenerateChunks, ReadLines};
use weir_runtime::time::BatchTime;

/// One rating.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Rating {
    /// The user's id.
    pub user: u64,
    /// The item's id.
    pub item: u64,
    /// The rating.
    pub value: f32,
}

/// How a ratings file separates its fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Tabs or spaces (MovieLens `u.data`, RecBole's `.inter`).
    Tsv,
    /// Commas (MovieLens `ratings.csv`).
    Csv,
}

impl std::str::FromStr for Format {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "tsv" => Ok(Format::Tsv),
            "csv" => Ok(Format::Csv),
            other => Err(format!(
                "unknown ratings format {other:?} (expected tsv or csv)"
            )),
        }
    }
}

/// Parses a ratings line: `user item rating [timestamp]`. Blank lines and
/// `#` comments give `None`, and so does a header: the first line of a file
/// (`first`) whose rating field is not a number.
pub fn parse_rating(line: &str, format: Format, first: bool) -> Result<Option<Rating>, String> {
    let text = line.trim();
    if text.is_empty() || text.starts_with('#') {
        return Ok(None);
    }
    let fields: Vec<&str> = match format {
        Format::Tsv => text.split_whitespace().collect(),
        Format::Csv => text.split(',').map(str::trim).collect(),
    };
    if !(3..=4).contains(&fields.len()) {
        return Err(format!(
            "expected `user item rating [timestamp]`, found {} fields in {line:?}",
            fields.len()
        ));
    }
    let value = match fields[2].parse::<f32>() {
        Ok(v) if v.is_finite() => v,
        Ok(_) => return Err(format!("rating {:?} is not finite", fields[2])),
        Err(_) if first => return Ok(None),
        Err(_) => return Err(format!("rating {:?} is not a number", fields[2])),
    };
    let id = |name: &str, field: &str| {
        field
            .parse::<u64>()
            .map_err(|_| format!("{name} id {field:?} is not a non-negative integer"))
    };
    let user = id("user", fields[0])?;
    let item = id("item", fields[1])?;
    if let Some(ts) = fields.get(3)
        && ts.parse::<f64>().is_err()
    {
        return Err(format!("timestamp {ts:?} is not a number"));
    }
    Ok(Some(Rating { user, item, value }))
}

/// Seeded synthetic ratings of a low-rank model plus noise: user `u` and item
/// `i` have hidden factors (uniform in [-1, 1)) drawn from their ids, the
/// rating is `3 + 3/√rank·<x_u, y_i>` (a signal of deviation 1) plus
/// N(0, 0.25²) noise, clamped to [1, 5]. Rating `j`
/// is drawn from chunk `j / CHUNK`'s own ChaCha stream, so the set is the same
/// at any worker count.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Synthetic {
    /// Users (ids 0..users).
    pub users: u64,
    /// Items (ids 0..items).
    pub items: u64,
    /// Ratings in all (a pair may be drawn twice: duplicates count).
    pub ratings: u64,
    /// The hidden rank.
    pub rank: usize,
    /// The seed.
    pub seed: u64,
}

/// Ratings per generation chunk.
const CHUNK: u64 = 1 << 16;

impl Synthetic {
    /// The embedded default: about MovieLens 100K's size.
    pub const DEFAULT: Synthetic = Synthetic {
        users: 1_000,
        items: 1_700,
        ratings: 100_000,
        rank: 5,
        seed: 42,
    };

    fn chunks(&self) -> u64 {
        self.ratings.div_ceil(CHUNK)
    }

    fn hidden(&self, kind: u64, id: u64, j: usize) -> f64 {
        let h = splitmix(self.seed ^ splitmix(kind ^ splitmix(id ^ splitmix(j as u64))));
        // uniform in [-1, 1): variance 1/3, so <x_u, y_i> has variance rank / 9
        (h >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
    }

    /// The ratings of chunk `chunk`, appended to `out`.
    pub fn chunk(&self, chunk: u64, out: &mut Vec<Rating>) {
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed);
        rng.set_stream(chunk);
        let noise = Normal::new(0.0, 0.25).unwrap_or_else(|_| unreachable!("a valid deviation"));
        // the signal's standard deviation is 1
        let scale = 3.0 / (self.rank as f64).sqrt();
        let first = chunk * CHUNK;
        let count = CHUNK.min(self.ratings.saturating_sub(first));
        for _ in 0..count {
            let user = rand::Rng::random_range(&mut rng, 0..self.users);
            let item = rand::Rng::random_range(&mut rng, 0..self.items);
            let dot: f64 = (0..self.rank)
                .map(|j| self.hidden(0, user, j) * self.hidden(1, item, j))
                .sum();
            let value = (3.0 + scale * dot + noise.sample(&mut rng)).clamp(1.0, 5.0);
            out.push(Rating {
                user,
                item,
                value: value as f32,
            });
        }
    }

    /// Checks the sizes.
    pub fn validate(&self) -> Result<(), JobError> {
        if self.users == 0 || self.items == 0 || self.rank == 0 {
            return Err(JobError::Invalid(
                "synthetic ratings need at least one user, one item and rank 1".into(),
            ));
        }
        Ok(())
    }
}

/// A 64-bit mix (SplitMix64's finaliser): seeds and splits.
pub fn splitmix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Where ratings come from.
#[derive(Clone, Debug)]
pub enum RatingsInput {
    /// Ratings files.
    Files(LineInput, Format),
    /// Generated ratings.
    Synthetic(Synthetic),
}

impl RatingsInput {
    /// Checks that the files exist (or the generator's sizes).
    pub fn validate(&self) -> Result<(), JobError> {
        match self {
            RatingsInput::Files(lines, _) => lines.validate().map(drop),
            RatingsInput::Synthetic(s) => s.validate(),
        }
    }

    /// What the input is, for summaries.
    pub fn describe(&self) -> String {
        match self {
            RatingsInput::Files(lines, _) => lines.describe(),
            RatingsInput::Synthetic(s) => format!(
                "synthetic: {} ratings of {} users x {} items, rank {}, seed {}",
                s.ratings, s.users, s.items, s.rank, s.seed
            ),
        }
    }

    /// All ratings, read sequentially (for references and tools).
    pub fn all(&self) -> Result<Vec<Rating>, JobError> {
        let mut out = Vec::new();
        match self {
            RatingsInput::Files(lines, format) => {
                let mut reader = lines.reader(0, 1)?;
                let mut line = String::new();
                while let Some(pos) = reader.next_line(&mut line)? {
                    match parse_rating(&line, *format, pos.offset == 0) {
                        Ok(Some(r)) => out.push(r),
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
            RatingsInput::Synthetic(s) => {
                for chunk in 0..s.chunks() {
                    s.chunk(chunk, &mut out);
                }
            }
        }
        Ok(out)
    }

    /// This worker's share of the ratings as a stream (bad lines fail the job
    /// with file and line).
    pub fn ratings<'s>(
        &self,
        scope: Scope<'s, BatchTime>,
        ctx: &WorkerCtx,
    ) -> StreamVec<'s, BatchTime, Rating> {
        match self {
            RatingsInput::Files(lines, format) => {
                let format = *format;
                scope.read_lines(lines, ctx, 0, move |line, pos: LinePos| {
                    parse_rating(line, format, pos.offset == 0)
                })
            }
            RatingsInput::Synthetic(synthetic) => {
                let synthetic = *synthetic;
                scope.generate_chunks(
                    ctx,
                    "SyntheticRatings",
                    synthetic.chunks(),
                    move |chunk, out| synthetic.chunk(chunk, out),
                )
            }
        }
    }
}

/// Which ratings are held out for testing.
#[derive(Clone, Debug)]
pub enum Split {
    /// None: all ratings train.
    None,
    /// A seeded fraction: rating (user, item) is a test rating when a hash
    /// of the seed, user and item falls below the fraction (so duplicates of a
    /// pair land on the same side, at any worker count).
    Fraction {
        /// The share of test ratings, in [0, 1).
        fraction: f64,
        /// The seed.
        seed: u64,
    },
    /// The ratings of this input.
    File(RatingsInput),
}

impl Split {
    /// Whether `rating` is held out (for [`Split::Fraction`]; false otherwise).
    pub fn holds_out(&self, rating: &Rating) -> bool {
        match self {
            Split::Fraction { fraction, seed } => {
                let h = splitmix(seed ^ splitmix(rating.user ^ splitmix(rating.item)));
                ((h >> 11) as f64 / (1u64 << 53) as f64) < *fraction
            }
            Split::None | Split::File(_) => false,
        }
    }

    /// Checks the fraction, or the test files.
    pub fn validate(&self) -> Result<(), JobError> {
        match self {
            Split::None => Ok(()),
            Split::Fraction { fraction, .. } => {
                if (0.0..1.0).contains(fraction) {
                    Ok(())
                } else {
                    Err(JobError::setting(
                        Setting::TestFraction,
                        format!("must be in [0, 1), not {fraction}"),
                    ))
                }
            }
            Split::File(input) => input.validate(),
        }
    }
}

/// The train and test ratings of an input and split, read sequentially.
pub fn split_all(
    input: &RatingsInput,
    split: &Split,
) -> Result<(Vec<Rating>, Vec<Rating>), JobError> {
    let all = input.all()?;
    let (test, train): (Vec<Rating>, Vec<Rating>) =
        all.into_iter().partition(|r| split.holds_out(r));
    match split {
        Split::File(test_input) => Ok((train, test_input.all()?)),
        _ => Ok((train, test)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_header_is_skipped_only_on_a_files_first_line() {
        let header = "user_id:token\titem_id:token\trating:float\ttimestamp:float";
        assert_eq!(parse_rating(header, Format::Tsv, true), Ok(None));
        assert!(parse_rating(header, Format::Tsv, false).is_err());
        assert_eq!(
            parse_rating("196\t242\t3\t881250949", Format::Tsv, true),
            Ok(Some(Rating {
                user: 196,
                item: 242,
                value: 3.0
            }))
        );
        assert_eq!(
            parse_rating("1, 31, 2.5, 1260759144", Format::Csv, false),
            Ok(Some(Rating {
                user: 1,
                item: 31,
                value: 2.5
            }))
        );
    }

    #[test]
    fn bad_fields_are_named() {
        let err = parse_rating("1\tx\t3", Format::Tsv, false).unwrap_err();
        assert!(err.contains("item id \"x\""), "{err}");
        let err = parse_rating("1\t2", Format::Tsv, false).unwrap_err();
        assert!(err.contains("2 fields"), "{err}");
        let err = parse_rating("1,2,3,four", Format::Csv, false).unwrap_err();
        assert!(err.contains("timestamp"), "{err}");
        let err = parse_rating("-1,2,3", Format::Csv, false).unwrap_err();
        assert!(err.contains("user id"), "{err}");
    }

    #[test]
    fn the_split_is_seeded_and_near_its_fraction() {
        let split = Split::Fraction {
            fraction: 0.2,
            seed: 7,
        };
        let mut all = Vec::new();
        Synthetic::DEFAULT.chunk(0, &mut all);
        let held = all.iter().filter(|r| split.holds_out(r)).count() as f64;
        let share = held / all.len() as f64;
        assert!((0.18..0.22).contains(&share), "{share}");
        let other = Split::Fraction {
            fraction: 0.2,
            seed: 8,
        };
        assert!(all.iter().any(|r| split.holds_out(r) != other.holds_out(r)));
    }
}
