//! Each worker's share of the rating matrix, built once before the loop, as
//! Spark's and Flink's blocked ALS do: every rating is held twice, by its
//! user's owner (to solve users) and by its item's owner (to solve items).
//!
//! A worker also knows, from its own ratings alone, which of its factors
//! each other worker needs (its "out-blocks") and which factors it receives
//! (its "in-blocks"): a factor travels only to the workers that hold a rating
//! of it, never to all of them.

use serde::{Deserialize, Serialize};
use weir_runtime::JobError;
use weir_runtime::local_index::fits_u32;

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

/// The ratings placed at a worker, by kind, as they arrive (24 bytes per
/// rating and side: the layout is built from these, and they are dropped
/// side by side while it is).
#[derive(Debug, Default)]
pub struct Placement {
    user_train: Vec<Rating>,
    user_test: Vec<Rating>,
    item_train: Vec<Rating>,
    item_test: Vec<Rating>,
}

impl Placement {
    /// Keeps a placed rating.
    pub fn push(&mut self, placed: Placed) {
        match placed {
            Placed::UserTrain(r) => self.user_train.push(r),
            Placed::UserTest(r) => self.user_test.push(r),
            Placed::ItemTrain(r) => self.item_train.push(r),
            Placed::ItemTest(r) => self.item_test.push(r),
        }
    }
}

/// Ratings as a side with its CSR: `own` gives a rating's entity on this
/// side, `other` the one on the other side (whose factor it needs).
fn side(
    mut ratings: Vec<Rating>,
    own: impl Fn(&Rating) -> u64 + Copy,
    other: impl Fn(&Rating) -> u64 + Copy,
    extra_remote: &[u64],
) -> Result<Side, JobError> {
    ratings.sort_unstable_by_key(|r| (own(r), other(r), r.value.to_bits()));
    let mut remote: Vec<u64> = ratings
        .iter()
        .map(other)
        .chain(extra_remote.iter().copied())
        .collect();
    remote.sort_unstable();
    remote.dedup();
    // local ids are at most the ratings, slots at most the remote ids: with
    // both bounded, every `as u32` of a local index or slot below is exact
    fits_u32(ratings.len(), "ratings")?;
    fits_u32(remote.len(), "remote entities")?;
    let mut s = Side {
        remote,
        ..Side::default()
    };
    s.others.reserve_exact(ratings.len());
    s.values.reserve_exact(ratings.len());
    for (i, r) in ratings.iter().enumerate() {
        if s.ids.last() != Some(&own(r)) {
            s.ids.push(own(r));
            s.offsets.push(i);
        }
        let slot = s
            .remote
            .binary_search(&other(r))
            .unwrap_or_else(|_| unreachable!("collected above"));
        s.others.push(slot as u32);
        s.values.push(r.value);
    }
    s.offsets.push(ratings.len());
    Ok(s)
}

/// For each worker, the local entities (ascending, distinct) whose factor
/// it needs: those with a rating of an entity it owns, and `extra` pairs
/// `(local, worker)`.
fn ship(
    side: &Side,
    partition: Partition,
    extra: impl Iterator<Item = (usize, usize)>,
) -> Vec<Vec<u32>> {
    let mut out = vec![Vec::new(); partition.peers];
    // the owner of each remote slot, computed once rather than per rating
    let owners: Vec<usize> = side.remote.iter().map(|&id| partition.owner(id)).collect();
    for l in 0..side.ids.len() {
        for &slot in &side.others[side.offsets[l]..side.offsets[l + 1]] {
            let list: &mut Vec<u32> = &mut out[owners[slot as usize]];
            if list.last() != Some(&(l as u32)) {
                list.push(l as u32);
            }
        }
    }
    for (local, worker) in extra {
        out[worker].push(local as u32);
    }
    for list in &mut out {
        list.sort_unstable();
        list.dedup();
        list.shrink_to_fit();
    }
    out
}

impl Layout {
    /// Builds a worker's share from the ratings placed at it.
    pub fn build(placement: Placement, partition: Partition) -> Result<Layout, JobError> {
        let Placement {
            user_train,
            user_test,
            mut item_train,
            item_test,
        } = placement;
        let mut users = side(user_train, |r| r.user, |r| r.item, &[])?;
        // test ratings of untrained items are unpredictable: drop them here
        item_train.sort_unstable_by_key(|r| r.item);
        let trained = |item: u64| item_train.binary_search_by_key(&item, |r| r.item).is_ok();
        let (predictable, unpredictable): (Vec<Rating>, Vec<Rating>) =
            item_test.into_iter().partition(|r| trained(r.item));
        let test_users: Vec<u64> = predictable.iter().map(|r| r.user).collect();
        let mut items = side(item_train, |r| r.item, |r| r.user, &test_users)?;
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
        let test_pairs = user_test
            .iter()
            .filter_map(|r| Some((users.local(r.user)?, partition.owner(r.item))));
        users.ship = ship(&users, partition, test_pairs);
        items.ship = ship(&items, partition, std::iter::empty());
        Ok(Layout {
            users,
            items,
            tests,
            untrained_tests: unpredictable.len() as u64,
        })
    }
}
