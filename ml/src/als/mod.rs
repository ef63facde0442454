//! Blocked alternating least squares for explicit ratings, as a timely loop.
//!
//! Each worker owns blocks of users and of items ([`layout::Partition`]) and
//! holds every rating twice, at its user's and at its item's owner
//! ([`layout::Layout`], built once). One record per worker goes around the
//! loop: its items' factors ([`ItemBlock`]). An iteration has two halves:
//!
//! 1. each worker ships each item factor to the workers holding a rating of
//!    that item (its out-blocks, not a broadcast); once the frontier has
//!    passed the iteration, every worker has all the factors its users
//!    rated, and solves its users ([`solve::Solver`]);
//! 2. likewise user factors travel to the owners of the items they rated
//!    (and of their test ratings), which solve their items and measure the
//!    train and test errors ([`Errors`]).
//!
//! The errors go to the convergence gate of `weir-progress`, which stops the
//! loop after N iterations or once the train RMSE improves by less than the
//! tolerance, at the same iteration for every worker count; loop checkpoints
//! save the item blocks. [`reference`](mod@reference) is the sequential version the tests
//! compare against: the same solves in the same order give the same factors.
//!
//! Inside: `setup` places the ratings, builds each worker's layout and
//! releases the first item blocks once every worker is ready; `inbox` holds
//! what a half-iteration receives until the frontier passes it.

mod inbox;
pub mod layout;
pub mod reference;
mod setup;
pub mod solve;

use std::cell::{Cell, RefCell};
use std::ops::AddAssign;
use std::rc::Rc;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};
use serde::{Deserialize, Serialize};
use timely::container::CapacityContainerBuilder;
use timely::dataflow::StreamVec;
use timely::dataflow::channels::pact::{Exchange, Pipeline};
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::operators::{Concat, Enter, Leave, LoopVariable};
use weir_progress::convergence::Convergence;
use weir_progress::loop_state::{LoopCheckpoints, close_loop};
use weir_runtime::exec::Failure;
use weir_runtime::operators::WhenDone;

use self::inbox::{Flow, Inbox, Table};
use self::layout::{Layout, Partition, Side};
use self::solve::{Solver, dot};
use crate::ratings::Rating;
use weir_runtime::time::BatchTime;

/// The model's parameters.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AlsParams {
    /// Factors per user and item.
    pub rank: usize,
    /// Regularisation λ (weighted by each user's and item's rating count).
    pub lambda: f64,
    /// Seeds the initial item factors.
    pub seed: u64,
}

/// The initial factor of `item`: standard normal draws from the item's own
/// ChaCha stream, scaled to unit length (as Spark starts).
pub fn initial_factor(seed: u64, item: u64, out: &mut [f64]) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(item);
    for x in out.iter_mut() {
        *x = StandardNormal.sample(&mut rng);
    }
    let norm = out.iter().map(|x| x * x).sum::<f64>().sqrt();
    if norm > 0.0 {
        out.iter_mut().for_each(|x| *x /= norm);
    }
}

/// One iteration's errors, summed over the workers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Errors {
    /// Squared error over the training ratings.
    pub train_sse: f64,
    /// Training ratings.
    pub train_count: f64,
    /// Squared error over the predictable test ratings.
    pub test_sse: f64,
    /// Predictable test ratings (user and item both trained).
    pub test_count: f64,
    /// Test ratings of a user or item without training ratings (skipped, as
    /// Spark's `coldStartStrategy = "drop"` does).
    pub untested: f64,
    /// The previous iteration's training squared error (NaN in the first).
    pub previous_train_sse: f64,
    /// Solves that failed (the job then stops with an error).
    pub failed: f64,
}

impl AddAssign for Errors {
    fn add_assign(&mut self, o: Errors) {
        self.train_sse += o.train_sse;
        self.train_count += o.train_count;
        self.test_sse += o.test_sse;
        self.test_count += o.test_count;
        self.untested += o.untested;
        self.previous_train_sse += o.previous_train_sse;
        self.failed += o.failed;
    }
}

impl Errors {
    /// The root mean squared error over the training ratings.
    pub fn train_rmse(&self) -> f64 {
        (self.train_sse / self.train_count).sqrt()
    }

    /// The root mean squared error over the predictable test ratings.
    pub fn test_rmse(&self) -> Option<f64> {
        (self.test_count > 0.0).then(|| (self.test_sse / self.test_count).sqrt())
    }

    /// How much the train RMSE fell in this iteration (none in the first).
    pub fn improvement(&self) -> Option<f64> {
        let previous = (self.previous_train_sse / self.train_count).sqrt();
        previous.is_finite().then(|| previous - self.train_rmse())
    }

    /// Whether a loop stops after these errors: a failed solve, or an
    /// improvement below `tolerance`.
    pub fn stops(&self, tolerance: Option<f64>) -> bool {
        self.failed > 0.0 || matches!((tolerance, self.improvement()), (Some(t), Some(d)) if d < t)
    }
}

/// A worker's item factors: the record that goes around the loop (and into
/// loop checkpoints, with ids, so a resume can re-partition them).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ItemBlock {
    /// The items, ascending (the worker's [`layout::Layout::items`] ids).
    pub ids: Vec<u64>,
    /// `rank` factors per item, in the order of `ids`.
    pub factors: Vec<f64>,
    /// This block's share of the last iteration's training squared error.
    pub train_sse: f64,
}

/// A callback with every iteration's errors.
pub type Report = weir_progress::convergence::Report<Errors>;

/// How the loop runs.
pub struct AlsLoop {
    /// The first iteration (after a resume: the checkpoint's next).
    pub first: u64,
    /// Iterations at most, counted from 0 over all resumes.
    pub max_iterations: u64,
    /// Stop once the train RMSE improves by less than this.
    pub tolerance: Option<f64>,
    /// Called on worker 0 with every iteration's errors.
    pub report: Option<Report>,
    /// Loop checkpoints, if any.
    pub checkpoints: Option<LoopCheckpoints>,
}

/// Solves every entity of `side` from the received `table`; the factors in
/// the order of `side.ids`, and the number of failed solves.
fn solve_side(
    side: &Side,
    table: &Table,
    solver: &mut Solver,
    what: &str,
    failure: &Failure,
) -> (Vec<f64>, u64) {
    let k = table.rank;
    let mut out = vec![0.0; side.ids.len() * k];
    let mut failed = 0;
    for (l, x) in out.chunks_exact_mut(k.max(1)).enumerate() {
        solver.clear();
        for r in side.offsets[l]..side.offsets[l + 1] {
            solver.add(table.get(side.others[r] as usize), side.values[r]);
        }
        if let Err(e) = solver.solve(x, || format!("{what} {}", side.ids[l])) {
            failed += 1;
            failure.set(e);
        }
    }
    (out, failed)
}

/// The factors of `side`'s entities that worker `to` needs, as a message.
fn factors_for(side: &Side, factors: &[f64], to: usize, rank: usize) -> Option<Flow> {
    let list = side.ship.get(to).filter(|l| !l.is_empty())?;
    let mut ids = Vec::with_capacity(list.len());
    let mut values = Vec::with_capacity(list.len() * rank);
    for &l in list {
        let l = l as usize;
        ids.push(side.ids[l]);
        values.extend_from_slice(&factors[l * rank..(l + 1) * rank]);
    }
    Some(Flow::Factors { ids, values })
}

/// The errors of the items of `layout` with `items` factors and the users'
/// factors in `users` (a table over `layout.items.remote`).
fn errors(layout: &Layout, items: &[f64], users: &Table) -> Errors {
    let k = users.rank;
    let side = &layout.items;
    let mut e = Errors {
        untested: layout.untrained_tests as f64,
        ..Errors::default()
    };
    for l in 0..side.ids.len() {
        let y = &items[l * k..(l + 1) * k];
        for r in side.offsets[l]..side.offsets[l + 1] {
            let err = f64::from(side.values[r]) - dot(users.get(side.others[r] as usize), y);
            e.train_sse += err * err;
        }
    }
    e.train_count = side.ratings() as f64;
    for &(item, user, value) in &layout.tests {
        if users.filled[user as usize] {
            let item = item as usize;
            let err =
                f64::from(value) - dot(users.get(user as usize), &items[item * k..(item + 1) * k]);
            e.test_sse += err * err;
            e.test_count += 1.0;
        } else {
            e.untested += 1.0;
        }
    }
    e
}

/// The final factors of a worker, kept aside for output.
#[derive(Default)]
struct Kept {
    users: Option<(Vec<u64>, Vec<f64>)>,
    items: Option<ItemBlock>,
}

/// Trains ALS on `ratings` (each flagged `true` when held out for testing),
/// and returns the final factors as lines `user<TAB>id<TAB>f1 f2 ...` and
/// `item<TAB>id<TAB>...` once the loop is over. `resumed` holds the item
/// blocks of a loop checkpoint for this worker (`options.first` is then the
/// checkpoint's next iteration). A failed solve is set in `failure`. The
/// loop starts once every worker of the partition has built its share.
pub fn als<'s>(
    ratings: StreamVec<'s, BatchTime, (Rating, bool)>,
    params: AlsParams,
    partition: Partition,
    options: AlsLoop,
    resumed: Option<Vec<ItemBlock>>,
    failure: Failure,
    index: usize,
) -> StreamVec<'s, BatchTime, String> {
    let scope = ratings.scope();
    let rank = params.rank;
    let layout: Rc<RefCell<Layout>> = Rc::default();
    let kept: Rc<RefCell<Kept>> = Rc::default();
    let start = setup::start(
        ratings, params, partition, resumed, &layout, &failure, index,
    );
    let AlsLoop {
        first,
        max_iterations,
        tolerance,
        report,
        checkpoints,
    } = options;
    let done = scope.iterative::<u64, _, _>(|inner| {
        let (handle, cycle) = inner.loop_variable::<Vec<ItemBlock>>(1);
        let blocks = start.enter(inner).concat(cycle);

        // 2. items -> the workers whose users rated them
        let ship_layout = Rc::clone(&layout);
        let to_users = blocks.unary::<CapacityContainerBuilder<Vec<(u64, Flow)>>, _, _, _>(
            Pipeline,
            "ShipItems",
            move |_, _| {
                move |input, output| {
                    input.for_each_stamp(|cap, data| {
                        let layout = ship_layout.borrow();
                        let mut session = output.session(&cap);
                        for batch in data {
                            for block in batch.drain(..) {
                                for to in 0..layout.items.ship.len() {
                                    if let Some(f) =
                                        factors_for(&layout.items, &block.factors, to, rank)
                                    {
                                        session.give((to as u64, f));
                                    }
                                }
                                session.give((index as u64, Flow::State(block)));
                            }
                        }
                    });
                }
            },
        );

        // 3. solve the users; their factors -> the items' owners
        let users_layout = Rc::clone(&layout);
        let users_kept = Rc::clone(&kept);
        let users_failure = failure.clone();
        let failed_users: Rc<Cell<u64>> = Rc::default();
        let users_failed = Rc::clone(&failed_users);
        let to_items = to_users
            .unary_frontier::<CapacityContainerBuilder<Vec<(u64, Flow)>>, _, _, _>(
                Exchange::new(|(to, _): &(u64, Flow)| *to),
                "SolveUsers",
                move |_, _| {
                    let mut inbox = Inbox::new(rank);
                    let mut solver = Solver::new(rank, params.lambda);
                    move |(input, frontier), output| {
                        let layout = users_layout.borrow();
                        input.for_each_stamp(|cap, data| {
                            if let Some(&time) = cap.stamp().iter().next() {
                                let flows = data.flat_map(|b| b.drain(..).map(|(_, f)| f));
                                inbox.take(time, || cap.delayed(&time, 0), &layout.users, flows);
                            }
                        });
                        for (cap, block, table) in inbox.ready(|t| !frontier.less_equal(t)) {
                            let (users, failed) = solve_side(
                                &layout.users,
                                &table,
                                &mut solver,
                                "user",
                                &users_failure,
                            );
                            let mut session = output.session(&cap);
                            for to in 0..layout.users.ship.len() {
                                if let Some(f) = factors_for(&layout.users, &users, to, rank) {
                                    session.give((to as u64, f));
                                }
                            }
                            // counted in the items' half, where errors are summed
                            users_failed.set(users_failed.get() + failed);
                            session.give((index as u64, Flow::State(block)));
                            users_kept.borrow_mut().users = Some((layout.users.ids.clone(), users));
                            inbox.recycle(table);
                        }
                    }
                },
            );

        // 4. solve the items and measure the errors
        let items_layout = Rc::clone(&layout);
        let items_kept = Rc::clone(&kept);
        let items_failure = failure.clone();
        let solved = to_items
            .unary_frontier::<CapacityContainerBuilder<Vec<Result<ItemBlock, Errors>>>, _, _, _>(
                Exchange::new(|(to, _): &(u64, Flow)| *to),
                "SolveItems",
                move |_, _| {
                    let mut inbox = Inbox::new(rank);
                    let mut solver = Solver::new(rank, params.lambda);
                    move |(input, frontier), output| {
                        let layout = items_layout.borrow();
                        input.for_each_stamp(|cap, data| {
                            if let Some(&time) = cap.stamp().iter().next() {
                                let flows = data.flat_map(|b| b.drain(..).map(|(_, f)| f));
                                inbox.take(time, || cap.delayed(&time, 0), &layout.items, flows);
                            }
                        });
                        for (cap, mut block, table) in inbox.ready(|t| !frontier.less_equal(t)) {
                            let (items, failed) = solve_side(
                                &layout.items,
                                &table,
                                &mut solver,
                                "item",
                                &items_failure,
                            );
                            let mut e = errors(&layout, &items, &table);
                            e.previous_train_sse = block.train_sse;
                            e.failed = (failed + failed_users.replace(0)) as f64;
                            block.factors = items;
                            block.train_sse = e.train_sse;
                            items_kept.borrow_mut().items = Some(block.clone());
                            let mut session = output.session(&cap);
                            session.give(Ok(block));
                            session.give(Err(e));
                            inbox.recycle(table);
                        }
                    }
                },
            );
        let convergence = Convergence {
            first,
            max_iterations,
            stop: move |_, e: Errors| e.stops(tolerance),
        };
        close_loop(
            solved,
            handle,
            convergence,
            report,
            index == 0,
            checkpoints.as_ref(),
        )
        .leave(scope)
    });

    // 5. the final factors, once the loop is over
    done.when_done("EmitFactors", kept, move |kept: Kept| {
        let k = rank.max(1);
        let users = kept.users.into_iter();
        let items = kept.items.into_iter().map(|b| (b.ids, b.factors));
        let users = users.flat_map(move |(ids, factors)| factor_lines("user", ids, factors, k));
        users.chain(items.flat_map(move |(ids, factors)| factor_lines("item", ids, factors, k)))
    })
}

/// Lines `side<TAB>id<TAB>f1 ... fK` of a block of factors.
fn factor_lines(
    side: &'static str,
    ids: Vec<u64>,
    factors: Vec<f64>,
    k: usize,
) -> impl Iterator<Item = String> {
    (0..ids.len()).map(move |l| {
        let factor = &factors[l * k..(l + 1) * k];
        format!("{side}\t{}\t{}", ids[l], join(factor))
    })
}

/// A factor as space-separated numbers (shortest exact form).
pub fn join(factor: &[f64]) -> String {
    factor
        .iter()
        .map(|x| x.to_string())
        .collect::<Vec<_>>()
        .join(" ")
}
