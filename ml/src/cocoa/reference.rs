//! Sequential CoCoA over the same `k` partitions as a dataflow on `k`
//! workers: the same local steps, combined in the same order.

use super::sdca::{CocoaParams, Duality, duality, half_lambda_norm2, local_sdca, partition_of};
use crate::libsvm::Example;

/// The examples of each of `k` partitions, sorted by key, with their norms.
pub fn partitions(examples: &[Example], k: usize) -> Vec<(Vec<Example>, Vec<f64>)> {
    let mut parts: Vec<Vec<Example>> = vec![Vec::new(); k.max(1)];
    for e in examples {
        parts[partition_of(e.key, k)].push(e.clone());
    }
    parts
        .into_iter()
        .map(|mut p| {
            p.sort_by_key(|e| e.key);
            let norms = p.iter().map(Example::norm2).collect();
            (p, norms)
        })
        .collect()
}

/// Runs up to `rounds` rounds on `k` partitions, stopping once the gap is
/// below `tolerance`; the weights and every round's sums.
pub fn cocoa(
    examples: &[Example],
    k: usize,
    params: CocoaParams,
    rounds: u64,
    tolerance: Option<f64>,
) -> (Vec<f64>, Vec<Duality>) {
    let parts = partitions(examples, k);
    let n = examples.len() as u64;
    let dimension = examples.iter().map(Example::dimension).max().unwrap_or(0);
    let mut w = vec![0.0; dimension];
    let mut a: Vec<Vec<f64>> = parts.iter().map(|(p, _)| vec![0.0; p.len()]).collect();
    let gamma = params.aggregation.gamma(k);
    let mut history = Vec::new();
    for round in 0..rounds {
        let mut deltas = Vec::with_capacity(k);
        for (part, ((examples, norms), a)) in parts.iter().zip(&mut a).enumerate() {
            let (da, dw) = local_sdca(examples, norms, a, &w, &params, n, k, round, part);
            for (x, d) in a.iter_mut().zip(&da) {
                *x += gamma * d;
            }
            deltas.push(dw);
        }
        for dw in &deltas {
            for (x, d) in w.iter_mut().zip(dw) {
                *x += gamma * d;
            }
        }
        let mut sums = Duality {
            half_lambda_norm2: half_lambda_norm2(&w, params.lambda),
            ..Duality::default()
        };
        for ((examples, _), a) in parts.iter().zip(&a) {
            sums += duality(examples, a, &w);
        }
        history.push(sums);
        if tolerance.is_some_and(|t| sums.gap() < t) {
            break;
        }
    }
    (w, history)
}
