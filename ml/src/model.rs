//! A trained factor model: `user_factors.tsv` and `item_factors.tsv`
//! (`id<TAB>f1 f2 ... fK`, original ids, ascending) plus `model.json` (the
//! parameters and where the ratings came from, so `weir recommend` can leave
//! out what a user has rated).

use std::collections::{BTreeMap, HashSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use weir_runtime::JobError;
use weir_runtime::input::LineInput;

use crate::als::join;
use crate::ratings::{Format, RatingsInput, Synthetic};

/// User and item factors.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Model {
    /// Factors per entity.
    pub rank: usize,
    /// User factors by id.
    pub users: BTreeMap<u64, Vec<f64>>,
    /// Item factors by id.
    pub items: BTreeMap<u64, Vec<f64>>,
}

/// Where a model's ratings came from, and how it was trained.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelInfo {
    /// Factors per entity.
    pub rank: usize,
    /// Regularisation.
    pub lambda: f64,
    /// Iterations run.
    pub iterations: u64,
    /// The ratings (files as absolute paths).
    pub ratings: RatingsSource,
}

/// A serialisable [`RatingsInput`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum RatingsSource {
    /// Files and their format (`tsv` or `csv`).
    Files {
        /// The files.
        paths: Vec<PathBuf>,
        /// `tsv` or `csv`.
        format: String,
    },
    /// Synthetic ratings.
    Synthetic {
        /// Users.
        users: u64,
        /// Items.
        items: u64,
        /// Ratings.
        ratings: u64,
        /// Hidden rank.
        rank: usize,
        /// Seed.
        seed: u64,
    },
}

impl RatingsSource {
    /// The source of `input` (`None` for generated line inputs, which ratings never use).
    pub fn of(input: &RatingsInput) -> Option<RatingsSource> {
        Some(match input {
            RatingsInput::Files(LineInput::Files(paths), format) => RatingsSource::Files {
                paths: paths
                    .iter()
                    .map(|p| std::path::absolute(p).unwrap_or_else(|_| p.clone()))
                    .collect(),
                format: match format {
                    Format::Tsv => "tsv".into(),
                    Format::Csv => "csv".into(),
                },
            },
            RatingsInput::Files(LineInput::Generated(_), _) => return None,
            RatingsInput::Synthetic(s) => RatingsSource::Synthetic {
                users: s.users,
                items: s.items,
                ratings: s.ratings,
                rank: s.rank,
                seed: s.seed,
            },
        })
    }

    /// Back to an input.
    pub fn input(&self) -> Result<RatingsInput, JobError> {
        Ok(match self {
            RatingsSource::Files { paths, format } => RatingsInput::Files(
                LineInput::Files(paths.clone()),
                format.parse().map_err(JobError::Invalid)?,
            ),
            RatingsSource::Synthetic {
                users,
                items,
                ratings,
                rank,
                seed,
            } => RatingsInput::Synthetic(Synthetic {
                users: *users,
                items: *items,
                ratings: *ratings,
                rank: *rank,
                seed: *seed,
            }),
        })
    }
}

const USERS: &str = "user_factors.tsv";
const ITEMS: &str = "item_factors.tsv";
const INFO: &str = "model.json";

impl Model {
    /// The model of the dataflow's output lines (`user<TAB>id<TAB>factor`,
    /// `item<TAB>...`).
    pub fn from_lines<'a>(
        rank: usize,
        lines: impl IntoIterator<Item = &'a String>,
    ) -> Result<Model, JobError> {
        let mut model = Model {
            rank,
            ..Model::default()
        };
        for (n, line) in lines.into_iter().enumerate() {
            let (side, rest) = line.split_once('\t').unwrap_or((line, ""));
            let (id, factor) =
                parse_factor_line(rest, rank).map_err(|message| JobError::Malformed {
                    position: format!("output line {}", n + 1),
                    message,
                    remedy: None,
                })?;
            match side {
                "user" => model.users.insert(id, factor),
                _ => model.items.insert(id, factor),
            };
        }
        Ok(model)
    }

    /// Writes the factor files and `info` into `dir` (created if missing).
    pub fn write(&self, dir: &Path, info: &ModelInfo) -> Result<(), JobError> {
        std::fs::create_dir_all(dir).map_err(|e| JobError::io(dir, &e))?;
        for (name, factors) in [(USERS, &self.users), (ITEMS, &self.items)] {
            let mut text = String::new();
            for (id, f) in factors {
                let _ = writeln!(text, "{id}\t{}", join(f));
            }
            let path = dir.join(name);
            std::fs::write(&path, text).map_err(|e| JobError::io(&path, &e))?;
        }
        let path = dir.join(INFO);
        let json =
            serde_json::to_string_pretty(info).map_err(|e| JobError::Internal(e.to_string()))?;
        std::fs::write(&path, json).map_err(|e| JobError::io(&path, &e))
    }

    /// Reads a model written by [`Model::write`]; bad lines are named by
    /// file and line.
    pub fn read(dir: &Path) -> Result<(Model, ModelInfo), JobError> {
        let path = dir.join(INFO);
        let text = std::fs::read_to_string(&path).map_err(|e| JobError::io(&path, &e))?;
        let info: ModelInfo = serde_json::from_str(&text).map_err(|e| JobError::Malformed {
            position: format!("{}:{}", path.display(), e.line()),
            message: e.to_string(),
            remedy: None,
        })?;
        let mut model = Model {
            rank: info.rank,
            ..Model::default()
        };
        for (name, factors) in [(USERS, &mut model.users), (ITEMS, &mut model.items)] {
            let path = dir.join(name);
            let text = std::fs::read_to_string(&path).map_err(|e| JobError::io(&path, &e))?;
            for (n, line) in text.lines().enumerate() {
                let (id, f) =
                    parse_factor_line(line, info.rank).map_err(|message| JobError::Malformed {
                        position: format!("{}:{}", path.display(), n + 1),
                        message,
                        remedy: None,
                    })?;
                factors.insert(id, f);
            }
        }
        Ok((model, info))
    }

    /// The `top` items of highest predicted rating for `user`, leaving out
    /// `rated`; ties go to the smaller id.
    pub fn recommend(
        &self,
        user: u64,
        rated: &HashSet<u64>,
        top: usize,
    ) -> Result<Vec<(u64, f64)>, JobError> {
        let Some(x) = self.users.get(&user) else {
            return Err(JobError::Invalid(format!(
                "user {user} is not in the model (it had no training ratings)"
            )));
        };
        let mut scored: Vec<(u64, f64)> = self
            .items
            .iter()
            .filter(|(id, _)| !rated.contains(id))
            .map(|(&id, y)| (id, crate::als::solve::dot(x, y)))
            .collect();
        scored.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        scored.truncate(top);
        Ok(scored)
    }
}

/// `id<TAB>f1 f2 ... fK`.
fn parse_factor_line(line: &str, rank: usize) -> Result<(u64, Vec<f64>), String> {
    let (id, factor) = line
        .split_once('\t')
        .ok_or_else(|| format!("expected `id<TAB>factors`, found {line:?}"))?;
    let id = id
        .parse::<u64>()
        .map_err(|_| format!("id {id:?} is not a non-negative integer"))?;
    let factor: Vec<f64> = factor
        .split(' ')
        .map(|x| {
            x.parse::<f64>()
                .map_err(|_| format!("factor entry {x:?} is not a number"))
        })
        .collect::<Result<_, _>>()?;
    if factor.len() != rank {
        return Err(format!(
            "{} factor entries, expected the rank {rank}",
            factor.len()
        ));
    }
    Ok((id, factor))
}
