//! The baseline CoCoA is measured against: mini-batch stochastic
//! subgradient descent on the same primal (Pegasos steps, η_t = 1/(λt)), with
//! `k` partitions each contributing `batch` sampled examples per round, as a
//! distributed mini-batch SGD would. Sequential: it counts rounds (one
//! communication each) and time.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::reference::partitions;
use super::sdca::half_lambda_norm2;
use crate::libsvm::Example;
use crate::ratings::splitmix;

/// The primal objective at `w`.
pub fn primal(examples: &[Example], w: &[f64], lambda: f64) -> f64 {
    let hinge: f64 = examples
        .iter()
        .map(|x| (1.0 - x.label * x.dot(w)).max(0.0))
        .sum();
    half_lambda_norm2(w, lambda) + hinge / examples.len().max(1) as f64
}

/// Runs up to `rounds` rounds; returns the weights and the primal objective
/// after every round. Stops once `stop(round, primal)` holds.
pub fn minibatch_sgd(
    examples: &[Example],
    k: usize,
    batch: usize,
    lambda: f64,
    rounds: u64,
    seed: u64,
    stop: impl Fn(u64, f64) -> bool,
) -> (Vec<f64>, Vec<f64>) {
    let parts = partitions(examples, k);
    let dimension = examples.iter().map(Example::dimension).max().unwrap_or(0);
    let mut w = vec![0.0; dimension];
    let mut grad = vec![0.0; dimension];
    let mut history = Vec::new();
    for round in 0..rounds {
        let eta = 1.0 / (lambda * (round + 1) as f64);
        grad.iter_mut().for_each(|g| *g = 0.0);
        let mut taken = 0usize;
        for (part, (examples, _)) in parts.iter().enumerate() {
            if examples.is_empty() {
                continue;
            }
            let mut rng = ChaCha8Rng::seed_from_u64(splitmix(
                seed ^ splitmix(round ^ splitmix(part as u64 + 7)),
            ));
            for _ in 0..batch {
                let x = &examples[rng.random_range(0..examples.len())];
                taken += 1;
                if x.label * x.dot(&w) < 1.0 {
                    for &(j, v) in &x.features {
                        grad[j as usize] += x.label * v;
                    }
                }
            }
        }
        let shrink = 1.0 - eta * lambda;
        for (x, g) in w.iter_mut().zip(&grad) {
            *x = shrink * *x + eta * g / taken.max(1) as f64;
        }
        // Pegasos' projection onto the ball that holds the optimum
        let norm = w.iter().map(|x| x * x).sum::<f64>().sqrt();
        let radius = 1.0 / lambda.sqrt();
        if norm > radius {
            w.iter_mut().for_each(|x| *x *= radius / norm);
        }
        let p = primal(examples, &w, lambda);
        history.push(p);
        if stop(round, p) {
            break;
        }
    }
    (w, history)
}
