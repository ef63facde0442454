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

pub mod layout;
pub mod reference;
pub mod solve;

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap};
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
use timely::dataflow::operators::vec::{Map, ToStream};
use timely::dataflow::operators::{Capability, Concat, Enter, Leave, LoopVariable};
use weir_progress::convergence::Convergence;
use weir_progress::loop_state::{LoopCheckpoints, close_loop};
use weir_runtime::exec::Failure;
use weir_runtime::operators::WhenDone;

use self::layout::{Layout, Partition, Placed, Placement, Side};
use self::solve::{Solver, dot};
use crate::ratings::Rating;
use weir_runtime::time::{BatchTime, Iteration};

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

/// What a worker tells the others once it has built its share of the ratings.
#[derive(Clone, Debug, Serialize, Deserialize)]
enum Built {
    /// Built; `clean`: its input had no malformed record.
    Ready {
        /// Whether its input parsed without error.
        clean: bool,
    },
    /// Its first item block (to itself).
    Block(ItemBlock),
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

/// What goes into a worker's setup: its ratings, and resumed factors.
#[derive(Clone, Debug, Serialize, Deserialize)]
enum Setup {
    Place(Placed),
    Resume(u64, Vec<f64>),
    Sse(f64),
}

/// What a worker sends to a worker within an iteration.
#[derive(Clone, Debug, Serialize, Deserialize)]
enum Flow {
    /// The receiver's own item block, passed along to the items' half.
    State(ItemBlock),
    /// Factors of the sender's entities that the receiver needs.
    Factors { ids: Vec<u64>, values: Vec<f64> },
}

/// The other side's factors a worker has received for an iteration.
struct Table {
    rank: usize,
    values: Vec<f64>,
    filled: Vec<bool>,
}

impl Table {
    fn new(side: &Side, rank: usize) -> Table {
        Table {
            rank,
            values: vec![0.0; side.remote.len() * rank],
            filled: vec![false; side.remote.len()],
        }
    }

    fn fill(&mut self, side: &Side, ids: &[u64], values: &[f64]) {
        for (j, &id) in ids.iter().enumerate() {
            if let Some(slot) = side.slot(id) {
                let k = self.rank;
                self.values[slot * k..(slot + 1) * k].copy_from_slice(&values[j * k..(j + 1) * k]);
                self.filled[slot] = true;
            }
        }
    }

    #[inline]
    fn get(&self, slot: usize) -> &[f64] {
        &self.values[slot * self.rank..(slot + 1) * self.rank]
    }

    fn reset(&mut self) {
        self.filled.iter_mut().for_each(|f| *f = false);
    }
}

/// What a half-iteration has received for each iteration, until the
/// frontier passes it: this worker's item block and a table of the other
/// side's factors (one table is reused from iteration to iteration).
struct Inbox {
    pending: BTreeMap<Iteration, (Capability<Iteration>, Option<ItemBlock>, Table)>,
    spare: Option<Table>,
    rank: usize,
}

impl Inbox {
    fn new(rank: usize) -> Inbox {
        Inbox {
            pending: BTreeMap::new(),
            spare: None,
            rank,
        }
    }

    /// Takes in `flows` of iteration `time`; `cap` makes its capability.
    fn take(
        &mut self,
        time: Iteration,
        cap: impl FnOnce() -> Capability<Iteration>,
        side: &Side,
        flows: impl Iterator<Item = Flow>,
    ) {
        let (spare, rank) = (&mut self.spare, self.rank);
        let entry = self.pending.entry(time).or_insert_with(|| {
            let table = spare.take().unwrap_or_else(|| Table::new(side, rank));
            (cap(), None, table)
        });
        for flow in flows {
            match flow {
                Flow::State(block) => entry.1 = Some(block),
                Flow::Factors { ids, values } => entry.2.fill(side, &ids, &values),
            }
        }
    }

    /// The iterations that are `complete`, with their block and table (give
    /// the table back with [`Inbox::recycle`]).
    fn ready(
        &mut self,
        complete: impl Fn(&Iteration) -> bool,
    ) -> Vec<(Capability<Iteration>, ItemBlock, Table)> {
        let times: Vec<Iteration> = self
            .pending
            .keys()
            .filter(|t| complete(t))
            .copied()
            .collect();
        times
            .into_iter()
            .filter_map(|t| self.pending.remove(&t))
            .map(|(cap, block, table)| (cap, block.unwrap_or_default(), table))
            .collect()
    }

    fn recycle(&mut self, mut table: Table) {
        table.reset();
        self.spare = Some(table);
    }
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
    let peers = partition.peers;
    let rank = params.rank;
    let layout: Rc<RefCell<Layout>> = Rc::default();
    let kept: Rc<RefCell<Kept>> = Rc::default();

    // 1. place every rating at its user's and its item's owner; resumed
    //    factors at their item's (new) owner
    let placed = ratings.flat_map(move |(r, test)| {
        let (user_side, item_side) = if test {
            (Placed::UserTest(r), Placed::ItemTest(r))
        } else {
            (Placed::UserTrain(r), Placed::ItemTrain(r))
        };
        [
            (partition.owner(r.user) as u64, Setup::Place(user_side)),
            (partition.owner(r.item) as u64, Setup::Place(item_side)),
        ]
    });
    let resuming = resumed.is_some();
    let resumed = resumed
        .unwrap_or_default()
        .into_iter()
        .flat_map(move |block| {
            let sse = (0u64, Setup::Sse(block.train_sse));
            let k = rank.max(1);
            let factors: Vec<(u64, Setup)> = block
                .ids
                .iter()
                .zip(block.factors.chunks_exact(k))
                .map(|(&id, f)| (partition.owner(id) as u64, Setup::Resume(id, f.to_vec())))
                .collect();
            factors.into_iter().chain(std::iter::once(sse))
        })
        .to_stream(scope);
    let built = Rc::clone(&layout);
    let build_failure = failure.clone();
    let built_blocks = placed
        .concat(resumed)
        .unary_frontier::<CapacityContainerBuilder<Vec<(u64, Built)>>, _, _, _>(
            Exchange::new(|(to, _): &(u64, Setup)| *to),
            "BuildRatings",
            move |cap, _| {
                let mut cap = Some(cap);
                let mut placed = Placement::default();
                let mut factors: HashMap<u64, Vec<f64>> = HashMap::new();
                let mut sse: Option<f64> = None;
                move |(input, frontier), output| {
                    input.for_each(|_, data| {
                        for (_, setup) in data.drain(..) {
                            match setup {
                                Setup::Place(p) => placed.push(p),
                                Setup::Resume(id, f) => {
                                    factors.insert(id, f);
                                }
                                Setup::Sse(s) => *sse.get_or_insert(0.0) += s,
                            }
                        }
                    });
                    if frontier.is_empty()
                        && let Some(cap) = cap.take()
                    {
                        let built_layout =
                            match Layout::build(std::mem::take(&mut placed), partition) {
                                Ok(layout) => layout,
                                Err(error) => {
                                    build_failure.set(error);
                                    Layout::default()
                                }
                            };
                        let ids = built_layout.items.ids.clone();
                        let mut block = ItemBlock {
                            factors: vec![0.0; ids.len() * rank],
                            ids,
                            // a resumed loop knows the error before it; a fresh one does not
                            train_sse: if resuming {
                                sse.unwrap_or(0.0)
                            } else {
                                f64::NAN
                            },
                        };
                        for (l, f) in block.factors.chunks_exact_mut(rank.max(1)).enumerate() {
                            let id = block.ids[l];
                            match factors.remove(&id) {
                                Some(old) if old.len() == f.len() => f.copy_from_slice(&old),
                                _ => initial_factor(params.seed, id, f),
                            }
                        }
                        *built.borrow_mut() = built_layout;
                        // every worker learns that this one is ready, and
                        // whether its input was clean (a worker's own input
                        // errors are in its failure slot by now)
                        let clean = !build_failure.is_set();
                        let mut session = output.session(&cap);
                        for to in 0..peers as u64 {
                            session.give((to, Built::Ready { clean }));
                        }
                        session.give((index as u64, Built::Block(block)));
                    }
                }
            },
        );
    // the loop starts once every worker has built its layout: a worker
    // that ships factors to one that has not would find no table for them
    let start = built_blocks.unary_frontier::<CapacityContainerBuilder<Vec<ItemBlock>>, _, _, _>(
        Exchange::new(|(to, _): &(u64, Built)| *to),
        "AllBuilt",
        move |cap, _| {
            let mut cap = Some(cap);
            let mut block = None;
            let mut clean = true;
            move |(input, frontier), output| {
                input.for_each(|_, data| {
                    for (_, b) in data.drain(..) {
                        match b {
                            Built::Ready { clean: c } => clean &= c,
                            Built::Block(b) => block = Some(b),
                        }
                    }
                });
                // a malformed input anywhere: no iteration runs (the job
                // fails with the input's error, not after a loop over part
                // of the ratings)
                if frontier.is_empty()
                    && let Some(cap) = cap.take()
                    && let Some(block) = block.take()
                    && clean
                {
                    output.session(&cap).give(block);
                }
            }
        },
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
