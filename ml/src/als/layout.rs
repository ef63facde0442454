//! Each worker's share of the rating matrix, built once before the loop, as
//! Spark's and Flink's blocked ALS do: every rating is held twice, by its
//! user's owner (to solve users) and by its item's owner (to solve items).
//!
//! A worker also knows, from its own ratings alone, which of its factors
//! each other worker needs (its "out-blocks") and which factors it receives
//! (its "in-blocks"): a factor travels only to the workers that hold a rating
//! of it, never to all of them.

use serde::{Deserialize, Serialize};

use crate::ratings::{Rating, splitmix};

/// Who owns an id: its block (a hash of the id modulo the number of blocks),
/// and the block's worker (block modulo workers).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Partition {
    /// Blocks per side.
    pub blocks: u64,
    /// Workers.
    pub peers: usize,
}

impl Partition {
    /// The worker owning `id` (users and items alike).
    #[inline]
    pub fn owner(&self, id: u64) -> usize {
        ((splitmix(id) % self.blocks.max(1)) % self.peers.max(1) as u64) as usize
    }
}

/// A rating placed at a worker, for one side.
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
pub enum Placed {
    /// A training rating at its user's owner.
    UserTrain(Rating),
    /// A test rating at its user's owner (to know whom to send the factor).
    UserTest(Rating),
    /// A training rating at its item's owner.
    ItemTrain(Rating),
    /// A test rating at its item's owner (where errors are measured).
    ItemTest(Rating),
}

/// The entities of one side that a worker owns, with their ratings.
#[derive(Clone, Debug, Default)]
pub struct Side {
    /// Ids of the owned entities that have training ratings, ascending (the
    /// local index is the position).
    pub ids: Vec<u64>,
    /// The ratings of local entity `l` are `offsets[l]..offsets[l + 1]`.
    pub offsets: Vec<usize>,
    /// Per rating: the slot of the other side's entity in [`Side::remote`].
    pub others: Vec<u32>,
    /// Per rating: its value.
    pub values: Vec<f32>,
    /// The other side's ids whose factors this worker receives, ascending.
    pub remote: Vec<u64>,
    /// Per worker: the local entities whose factors it needs, ascending.
    pub ship: Vec<Vec<u32>>,
}

impl Side {
    /// The slot of the other side's `id`, if this worker receives its factor.
    #[inline]
    pub fn slot(&self, id: u64) -> Option<usize> {
        self.remote.binary_search(&id).ok()
    }

    /// The local index of owned `id`.
    #[inline]
    pub fn local(&self, id: u64) -> Option<usize> {
        self.ids.binary_search(&id).ok()
    }

    /// Number of ratings.
    pub fn ratings(&self) -> usize {
        self.values.len()
    }
}

/// A worker's share of the rating matrix.
#[derive(Clone, Debug, Default)]
pub struct Layout {
    /// Owned users; remote slots are items.
    pub users: Side,
    /// Owned items; remote slots are users (of training and test ratings).
    pub items: Side,
    /// Test ratings of owned, trained items: (local item, user slot, value).
    pub tests: Vec<(u32, u32, f32)>,
    /// Test ratings at this worker that no model can predict (their item has
    /// no training rating).
    pub untrained_tests: u64,
}

/// `(owned id, other id, value)` triples, sorted, as a side with its CSR.
fn side(mut triples: Vec<(u64, u64, f32)>, extra_remote: &[u64]) -> Side {
    triples.sort_unstable_by_key(|t| (t.0, t.1, t.2.to_bits()));
    let mut remote: Vec<u64> = triples
        .iter()
        .map(|t| t.1)
        .chain(extra_remote.iter().copied())
        .collect();
    remote.sort_unstable();
    remote.dedup();
    let mut s = Side {
        remote,
        ..Side::default()
    };
    s.others.reserve(triples.len());
    s.values.reserve(triples.len());
    for (i, &(own, other, value)) in triples.iter().enumerate() {
        if s.ids.last() != Some(&own) {
            s.ids.push(own);
            s.offsets.push(i);
        }
        let slot = s
            .remote
            .binary_search(&other)
            .unwrap_or_else(|_| unreachable!("collected above"));
        s.others.push(slot as u32);
        s.values.push(value);
    }
    s.offsets.push(triples.len());
    s
}

/// For each worker, the local indices (ascending, distinct) of the pairs
/// `(local, worker)`.
fn ship(pairs: impl Iterator<Item = (usize, usize)>, peers: usize) -> Vec<Vec<u32>> {
    let mut out = vec![Vec::new(); peers];
    for (local, worker) in pairs {
        out[worker].push(local as u32);
    }
    for list in &mut out {
        list.sort_unstable();
        list.dedup();
    }
    out
}

impl Layout {
    /// Builds a worker's share from the ratings placed at it.
    pub fn build(placed: Vec<Placed>, partition: Partition) -> Layout {
        let (mut user_train, mut user_test, mut item_train, mut item_test) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for p in placed {
            match p {
                Placed::UserTrain(r) => user_train.push((r.user, r.item, r.value)),
                Placed::UserTest(r) => user_test.push(r),
                Placed::ItemTrain(r) => item_train.push((r.item, r.user, r.value)),
                Placed::ItemTest(r) => item_test.push(r),
            }
        }
        let peers = partition.peers;
        let mut users = side(user_train, &[]);
        // test ratings of untrained items are unpredictable: drop them here
        item_train.sort_unstable_by_key(|t| t.0);
        let trained = |item: u64| item_train.binary_search_by_key(&item, |t| t.0).is_ok();
        let (predictable, unpredictable): (Vec<Rating>, Vec<Rating>) =
            item_test.into_iter().partition(|r| trained(r.item));
        let test_users: Vec<u64> = predictable.iter().map(|r| r.user).collect();
        let mut items = side(item_train, &test_users);
        let tests = predictable
            .iter()
            .filter_map(|r| {
                let item = items.local(r.item)?;
                let user = items.slot(r.user)?;
                Some((item as u32, user as u32, r.value))
            })
            .collect();
        // a user's factor goes to the owners of the items it rated, and of
        // the items of its test ratings (where its errors are measured)
        let user_pairs: Vec<(usize, usize)> = (0..users.ids.len())
            .flat_map(|l| {
                let users = &users;
                (users.offsets[l]..users.offsets[l + 1])
                    .map(move |k| (l, partition.owner(users.remote[users.others[k] as usize])))
            })
            .chain(
                user_test
                    .iter()
                    .filter_map(|r| Some((users.local(r.user)?, partition.owner(r.item)))),
            )
            .collect();
        users.ship = ship(user_pairs.into_iter(), peers);
        let item_pairs: Vec<(usize, usize)> = (0..items.ids.len())
            .flat_map(|l| {
                let items = &items;
                (items.offsets[l]..items.offsets[l + 1])
                    .map(move |k| (l, partition.owner(items.remote[items.others[k] as usize])))
            })
            .collect();
        items.ship = ship(item_pairs.into_iter(), peers);
        Layout {
            users,
            items,
            tests,
            untrained_tests: unpredictable.len() as u64,
        }
    }
}
