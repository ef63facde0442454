//! The loop's start: every rating placed at its user's and its item's owner,
//! each worker's layout built, and the first item blocks, released once
//! every worker has built its share (and only if every input was clean).

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use serde::{Deserialize, Serialize};
use timely::container::CapacityContainerBuilder;
use timely::dataflow::StreamVec;
use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::Concat;
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::operators::vec::{Map, ToStream};
use weir_runtime::exec::Failure;
use weir_runtime::time::BatchTime;

use super::layout::{Layout, Partition, Placed, Placement};
use super::{AlsParams, ItemBlock, initial_factor};
use crate::ratings::Rating;

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

/// What goes into a worker's setup: its ratings, and resumed factors.
#[derive(Clone, Debug, Serialize, Deserialize)]
enum Setup {
    Place(Placed),
    Resume(u64, Vec<f64>),
    Sse(f64),
}

/// The first item block of this worker, once every worker has built its
/// layout (into `layout`) from `ratings` (each flagged `true` when held out
/// for testing) and the `resumed` blocks of a loop checkpoint.
pub(super) fn start<'s>(
    ratings: StreamVec<'s, BatchTime, (Rating, bool)>,
    params: AlsParams,
    partition: Partition,
    resumed: Option<Vec<ItemBlock>>,
    layout: &Rc<RefCell<Layout>>,
    failure: &Failure,
    index: usize,
) -> StreamVec<'s, BatchTime, ItemBlock> {
    let scope = ratings.scope();
    let (peers, rank) = (partition.peers, params.rank);
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
    let built = Rc::clone(layout);
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
    built_blocks.unary_frontier::<CapacityContainerBuilder<Vec<ItemBlock>>, _, _, _>(
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
    )
}
