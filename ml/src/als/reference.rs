//! Sequential ALS: the dataflow's reference. It makes the same solves from
//! the same ratings in the same order, so its factors equal the dataflow's at
//! any worker count.

use std::collections::BTreeMap;

use weir_runtime::JobError;

use super::solve::{Solver, dot};
use super::{AlsParams, Errors, initial_factor};
use crate::model::Model;
use crate::ratings::Rating;

/// Ratings grouped by one side: id → (other id, value), sorted.
fn grouped(ratings: &[Rating], by_user: bool) -> BTreeMap<u64, Vec<(u64, f32)>> {
    let mut out: BTreeMap<u64, Vec<(u64, f32)>> = BTreeMap::new();
    for r in ratings {
        let (own, other) = if by_user {
            (r.user, r.item)
        } else {
            (r.item, r.user)
        };
        out.entry(own).or_default().push((other, r.value));
    }
    for list in out.values_mut() {
        list.sort_unstable_by_key(|t| (t.0, t.1.to_bits()));
    }
    out
}

fn solve_all(
    groups: &BTreeMap<u64, Vec<(u64, f32)>>,
    others: &BTreeMap<u64, Vec<f64>>,
    solver: &mut Solver,
    rank: usize,
    what: &str,
) -> Result<BTreeMap<u64, Vec<f64>>, JobError> {
    let mut out = BTreeMap::new();
    for (&id, list) in groups {
        solver.clear();
        for (other, value) in list {
            solver.add(&others[other], *value);
        }
        let mut x = vec![0.0; rank];
        solver.solve(&mut x, || format!("{what} {id}"))?;
        out.insert(id, x);
    }
    Ok(out)
}

/// Trains ALS sequentially for up to `iterations`, stopping as the dataflow
/// does; the model and every iteration's errors.
pub fn als(
    train: &[Rating],
    test: &[Rating],
    params: AlsParams,
    iterations: u64,
    tolerance: Option<f64>,
) -> Result<(Model, Vec<Errors>), JobError> {
    let rank = params.rank;
    let by_user = grouped(train, true);
    let by_item = grouped(train, false);
    let mut items: BTreeMap<u64, Vec<f64>> = by_item
        .keys()
        .map(|&id| {
            let mut f = vec![0.0; rank];
            initial_factor(params.seed, id, &mut f);
            (id, f)
        })
        .collect();
    let mut users = BTreeMap::new();
    let mut solver = Solver::new(rank, params.lambda);
    let mut rounds: Vec<Errors> = Vec::new();
    for _ in 0..iterations {
        users = solve_all(&by_user, &items, &mut solver, rank, "user")?;
        items = solve_all(&by_item, &users, &mut solver, rank, "item")?;
        let mut e = Errors {
            previous_train_sse: rounds.last().map_or(f64::NAN, |p| p.train_sse),
            ..Errors::default()
        };
        for (item, list) in &by_item {
            for (user, value) in list {
                let err = f64::from(*value) - dot(&users[user], &items[item]);
                e.train_sse += err * err;
            }
        }
        e.train_count = train.len() as f64;
        for r in test {
            match (users.get(&r.user), items.get(&r.item)) {
                (Some(x), Some(y)) => {
                    let err = f64::from(r.value) - dot(x, y);
                    e.test_sse += err * err;
                    e.test_count += 1.0;
                }
                _ => e.untested += 1.0,
            }
        }
        rounds.push(e);
        if e.stops(tolerance) {
            break;
        }
    }
    Ok((Model { rank, users, items }, rounds))
}
