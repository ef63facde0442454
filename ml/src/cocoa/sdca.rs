//! The arithmetic of CoCoA for the hinge-loss SVM, shared by the dataflow
//! and its sequential reference.
//!
//! Primal: `P(w) = λ/2 |w|² + 1/n Σ max(0, 1 - y_i <w, x_i>)`; dual, with
//! `a_i ∈ [0, 1]` and `w(a) = 1/(λn) Σ a_i y_i x_i`:
//! `D(a) = 1/n Σ a_i - λ/2 |w(a)|²`. The duality gap `P(w(a)) - D(a)`
//! bounds the primal suboptimality.
//!
//! A round: each partition `k` runs H steps of SDCA on its own dual
//! variables against its local view of `w` (CoCoA+'s subproblem with
//! σ' = γK), then the changes are combined with weight γ: 1/K averages
//! (CoCoA), 1 adds (CoCoA+).

use std::ops::AddAssign;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::libsvm::Example;
use crate::ratings::splitmix;

/// How the partitions' updates are combined.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Aggregation {
    /// CoCoA: the average of the updates (γ = 1/K, σ' = 1).
    Average,
    /// CoCoA+: their sum (γ = 1, σ' = K).
    Add,
}

impl std::str::FromStr for Aggregation {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "average" => Ok(Aggregation::Average),
            "add" => Ok(Aggregation::Add),
            other => Err(format!(
                "unknown aggregation {other:?} (expected average or add)"
            )),
        }
    }
}

impl Aggregation {
    /// γ for `k` partitions.
    pub fn gamma(self, k: usize) -> f64 {
        match self {
            Aggregation::Average => 1.0 / k.max(1) as f64,
            Aggregation::Add => 1.0,
        }
    }

    /// σ' = γK, the local subproblem's scaling.
    pub fn sigma(self, k: usize) -> f64 {
        self.gamma(k) * k.max(1) as f64
    }
}

/// CoCoA's parameters.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CocoaParams {
    /// Regularisation λ.
    pub lambda: f64,
    /// SDCA steps per partition and round (H).
    pub local_iters: u64,
    /// Average or add.
    pub aggregation: Aggregation,
    /// Seeds the coordinate sampling.
    pub seed: u64,
}

/// The partition (of `k`) an example with `key` belongs to.
#[inline]
pub fn partition_of(key: u64, k: usize) -> usize {
    (splitmix(key ^ 0xC0C0A) % k.max(1) as u64) as usize
}

/// The coordinate sampler of partition `part` in round `round`.
fn sampler(seed: u64, round: u64, part: usize) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(splitmix(seed ^ splitmix(round ^ splitmix(part as u64))))
}

/// H local SDCA steps on the examples of partition `part` (sorted by key,
/// with their squared norms `norms`), from duals `a` and the shared `w`, at
/// round `round`; `n` examples and `k` partitions in all. Returns the
/// changes of `a` and of `w` (before weighting by γ).
#[allow(clippy::too_many_arguments)]
pub fn local_sdca(
    examples: &[Example],
    norms: &[f64],
    a: &[f64],
    w: &[f64],
    params: &CocoaParams,
    n: u64,
    k: usize,
    round: u64,
    part: usize,
) -> (Vec<f64>, Vec<f64>) {
    let mut da = vec![0.0; a.len()];
    let mut dw = vec![0.0; w.len()];
    if examples.is_empty() {
        return (da, dw);
    }
    let sigma = params.aggregation.sigma(k);
    let ln = params.lambda * n as f64;
    // the local view of w: w + σ' Δw
    let mut local = w.to_vec();
    let mut rng = sampler(params.seed, round, part);
    for _ in 0..params.local_iters {
        let i = rng.random_range(0..examples.len());
        let (x, q) = (&examples[i], norms[i]);
        if q == 0.0 {
            continue;
        }
        let current = a[i] + da[i];
        let step = ln * (1.0 - x.label * x.dot(&local)) / (sigma * q);
        let next = (current + step).clamp(0.0, 1.0);
        let delta = next - current;
        if delta == 0.0 {
            continue;
        }
        da[i] += delta;
        let scale = delta * x.label / ln;
        for &(j, v) in &x.features {
            dw[j as usize] += scale * v;
            local[j as usize] += sigma * scale * v;
        }
    }
    (da, dw)
}

/// A round's sums, over all workers, from which the duality gap follows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Duality {
    /// Σ max(0, 1 - y_i <w, x_i>).
    pub hinge: f64,
    /// Σ a_i.
    pub alpha: f64,
    /// λ/2 |w|² (contributed once, by worker 0).
    pub half_lambda_norm2: f64,
    /// Examples.
    pub examples: f64,
    /// Examples on the wrong side of `w`.
    pub misclassified: f64,
}

impl AddAssign for Duality {
    fn add_assign(&mut self, o: Duality) {
        self.hinge += o.hinge;
        self.alpha += o.alpha;
        self.half_lambda_norm2 += o.half_lambda_norm2;
        self.examples += o.examples;
        self.misclassified += o.misclassified;
    }
}

impl Duality {
    /// The primal objective P(w).
    pub fn primal(&self) -> f64 {
        self.half_lambda_norm2 + self.hinge / self.examples.max(1.0)
    }

    /// The dual objective D(a).
    pub fn dual(&self) -> f64 {
        self.alpha / self.examples.max(1.0) - self.half_lambda_norm2
    }

    /// P(w) - D(a).
    pub fn gap(&self) -> f64 {
        self.primal() - self.dual()
    }

    /// The share of training examples `w` classifies correctly.
    pub fn train_accuracy(&self) -> f64 {
        1.0 - self.misclassified / self.examples.max(1.0)
    }
}

/// A partition's part of the duality sums at `w` and `a` (without the
/// norm term).
pub fn duality(examples: &[Example], a: &[f64], w: &[f64]) -> Duality {
    let mut d = Duality {
        examples: examples.len() as f64,
        ..Duality::default()
    };
    for (x, ai) in examples.iter().zip(a) {
        let margin = x.label * x.dot(w);
        d.hinge += (1.0 - margin).max(0.0);
        d.alpha += ai;
        if margin <= 0.0 {
            d.misclassified += 1.0;
        }
    }
    d
}

/// λ/2 |w|².
pub fn half_lambda_norm2(w: &[f64], lambda: f64) -> f64 {
    lambda / 2.0 * w.iter().map(|x| x * x).sum::<f64>()
}

/// The share of `examples` that `w` classifies correctly (a margin of 0
/// counts as wrong).
pub fn accuracy(examples: &[Example], w: &[f64]) -> f64 {
    let right = examples.iter().filter(|x| x.label * x.dot(w) > 0.0).count();
    right as f64 / examples.len().max(1) as f64
}
