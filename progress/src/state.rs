//! Keyed state with incremental, asynchronous snapshots.
//!
//! [`KeyedState`] is a map that remembers which keys changed since its last
//! snapshot. At a checkpoint, the operator hands only those entries (a *delta*)
//! to its [`SnapshotWriter`], whose thread serializes and writes them while the
//! data path goes on: the pause on the data path is copying the changed entries.
//! A worker's files for one operator form a chain, base first, then deltas; when
//! the chain grows past a limit the writer thread compacts it into a new base
//! (reading the old files, not the live state). Restoring replays a chain; with a
//! different number of workers, every worker reads all chains of the operator and
//! keeps the keys that now route to it.
//!
//! Besides its keys, an operator may keep a few *shared* values that every
//! worker holds alike (a window operator's event-time watermark): they go into
//! each snapshot's [`PartChain`](crate::store::PartChain), and a restore at any worker count gives every
//! worker the largest value of each over all the operator's parts.

use std::collections::BTreeMap;
use std::hash::Hash;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::error::CheckpointError;
use crate::route::key_hash;
use crate::store::{CheckpointStore, FileRef, Manifest};

pub use crate::snapshot::{SnapshotWriter, Written};

/// The maps of state: hashed by foldhash (seeded per map), several times
/// faster than the standard library's SipHash on short byte keys. Routing
/// does not use it (see [`crate::route`]).
pub type StateMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;

type StateSet<K> = std::collections::HashSet<K, foldhash::fast::RandomState>;

/// Deltas a chain may hold before the writer compacts it into a new base.
pub const MAX_DELTAS: usize = 8;

/// A map that tracks which keys changed since its last snapshot.
#[derive(Debug, Clone)]
pub struct KeyedState<K, V> {
    map: StateMap<K, V>,
    dirty: StateSet<K>,
    full: bool,
    pub(crate) shared: BTreeMap<String, u64>,
}

/// What a snapshot must write.
#[derive(Debug, Clone, PartialEq)]
pub enum Changes<K, V> {
    /// Every entry (the first snapshot, or after a rescaling restore).
    Base(Vec<(K, V)>),
    /// The entries that changed: `None` for a removed key.
    Delta(Vec<(K, Option<V>)>),
}

/// One file of a chain: a base (every entry) or a delta.
#[derive(Serialize, Deserialize)]
pub(crate) struct Part<K, V> {
    pub(crate) base: bool,
    pub(crate) entries: Vec<(K, Option<V>)>,
}

impl<K: Hash + Eq + Clone, V: Clone> Default for KeyedState<K, V> {
    fn default() -> Self {
        KeyedState {
            map: StateMap::default(),
            dirty: StateSet::default(),
            full: true,
            shared: BTreeMap::new(),
        }
    }
}

impl<K: Hash + Eq + Clone, V: Clone> KeyedState<K, V> {
    /// An empty state; its first snapshot is a base.
    pub fn new() -> Self {
        Self::default()
    }

    /// The value of `key` (looked up by any borrowed form of it, as a
    /// `&[u8]` for a `Vec<u8>` key).
    pub fn get<Q>(&self, key: &Q) -> Option<&V>
    where
        K: std::borrow::Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.map.get(key)
    }

    /// Sets `key` to `value`; returns the value it had.
    pub fn insert(&mut self, key: K, value: V) -> Option<V> {
        if !self.full {
            self.dirty.insert(key.clone());
        }
        self.map.insert(key, value)
    }

    /// Changes the value of `key` (starting from `default()` when absent) and
    /// returns the new value.
    pub fn update(&mut self, key: K, default: impl FnOnce() -> V, f: impl FnOnce(&mut V)) -> &V {
        if !self.full && !self.dirty.contains(&key) {
            self.dirty.insert(key.clone());
        }
        let value = self.map.entry(key).or_insert_with(default);
        f(value);
        value
    }

    /// Changes the value of `key`, if it has one, in place (without
    /// copying it out and back); `f` says whether to keep it: `false`
    /// removes the key.
    pub fn change<Q>(&mut self, key: &Q, f: impl FnOnce(&mut V) -> bool)
    where
        K: std::borrow::Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let Some((owned, _)) = self.map.get_key_value(key) else {
            return;
        };
        if !self.full && !self.dirty.contains(key) {
            self.dirty.insert(owned.clone());
        }
        let keep = self.map.get_mut(key).is_some_and(f);
        if !keep {
            self.map.remove(key);
        }
    }

    /// Removes `key` (given in any borrowed form of it).
    pub fn remove<Q>(&mut self, key: &Q) -> Option<V>
    where
        K: std::borrow::Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let (key, old) = self.map.remove_entry(key)?;
        if !self.full {
            self.dirty.insert(key);
        }
        Some(old)
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether there are no keys.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// All entries.
    pub fn iter(&self) -> impl Iterator<Item = (&K, &V)> {
        self.map.iter()
    }

    /// The shared value `name` (see the module doc).
    pub fn shared(&self, name: &str) -> Option<u64> {
        self.shared.get(name).copied()
    }

    /// Sets the shared value `name`: a value every worker of the operator
    /// holds alike, restored on every worker (the largest over all parts when
    /// the worker count changes).
    pub fn set_shared(&mut self, name: &str, value: u64) {
        self.shared.insert(name.to_string(), value);
    }

    /// Keys changed since the last snapshot.
    pub fn changed(&self) -> usize {
        if self.full {
            self.map.len()
        } else {
            self.dirty.len()
        }
    }

    /// Takes what the next snapshot must write and starts tracking anew.
    pub fn take_changes(&mut self) -> Changes<K, V> {
        if self.full {
            self.full = false;
            self.dirty.clear();
            return Changes::Base(
                self.map
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
            );
        }
        let delta = self
            .dirty
            .drain()
            .map(|k| {
                let v = self.map.get(&k).cloned();
                (k, v)
            })
            .collect();
        Changes::Delta(delta)
    }
}

pub(crate) fn encode<K: Serialize, V: Serialize>(
    part: &Part<K, V>,
) -> Result<Vec<u8>, CheckpointError> {
    bincode::serialize(part).map_err(|e| CheckpointError::Io {
        path: "snapshot".into(),
        message: format!("encoding: {e}"),
    })
}

/// Replays a chain of files into a map, checking every file.
pub fn load_chain<K, V>(
    store: &CheckpointStore,
    files: &[FileRef],
) -> Result<StateMap<K, V>, CheckpointError>
where
    K: DeserializeOwned + Hash + Eq,
    V: DeserializeOwned,
{
    let mut map = StateMap::default();
    for file in files {
        let bytes = store.read(file)?;
        let part: Part<K, V> =
            bincode::deserialize(&bytes).map_err(|e| CheckpointError::Corrupt {
                path: store.describe_file(file),
                reason: format!("undecodable snapshot: {e}"),
            })?;
        if part.base {
            map.clear();
        }
        for (k, v) in part.entries {
            match v {
                Some(v) => map.insert(k, v),
                None => map.remove(&k),
            };
        }
    }
    Ok(map)
}

/// A worker's restored state of one operator.
#[derive(Debug)]
pub struct Restored<K, V> {
    /// The state.
    pub state: KeyedState<K, V>,
    /// The chain to continue (empty when the state was repartitioned: then the
    /// next snapshot is a base).
    pub chain: Vec<FileRef>,
}

/// Restores worker `index` of `peers` for `operator` from `manifest`. With the
/// worker count of the manifest it replays that worker's chain; with another, it
/// replays every chain and keeps the keys with `key_hash(key) % peers == index`,
/// the rule by which timely's exchange routes them.
pub fn restore<K, V>(
    store: &CheckpointStore,
    manifest: &Manifest,
    operator: &str,
    index: usize,
    peers: usize,
) -> Result<Restored<K, V>, CheckpointError>
where
    K: Serialize + DeserializeOwned + Hash + Eq + Clone,
    V: DeserializeOwned + Clone,
{
    let chains = manifest.parts.iter().filter(|c| c.operator == operator);
    let mut shared: BTreeMap<String, u64> = BTreeMap::new();
    for (name, &value) in chains.clone().flat_map(|c| c.shared.iter()) {
        let slot = shared.entry(name.clone()).or_insert(value);
        *slot = (*slot).max(value);
    }
    if manifest.workers == peers {
        let chain: Vec<FileRef> = chains
            .filter(|c| c.worker == index)
            .flat_map(|c| c.files.clone())
            .collect();
        let map = load_chain(store, &chain)?;
        return Ok(Restored {
            state: KeyedState {
                map,
                dirty: StateSet::default(),
                full: chain.is_empty(),
                shared,
            },
            chain,
        });
    }
    let mut map = StateMap::default();
    for chain in chains {
        let part: StateMap<K, V> = load_chain(store, &chain.files)?;
        map.extend(
            part.into_iter()
                .filter(|(k, _)| key_hash(k) % peers as u64 == index as u64),
        );
    }
    Ok(Restored {
        state: KeyedState {
            map,
            dirty: StateSet::default(),
            full: true,
            shared,
        },
        chain: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::store::PartChain;

    fn checkpoint(
        store: &CheckpointStore,
        epoch: u64,
        workers: usize,
        parts: Vec<PartChain>,
    ) -> Manifest {
        let m = Manifest {
            format: 1,
            epoch,
            workers,
            key_hash: crate::route::KEY_HASH.into(),
            parts,
            sources: Vec::new(),
        };
        store.commit(&m).unwrap();
        m
    }

    #[test]
    fn deltas_hold_only_changed_keys() {
        let mut s: KeyedState<String, u64> = KeyedState::new();
        s.insert("a".into(), 1);
        s.insert("b".into(), 2);
        assert!(matches!(s.take_changes(), Changes::Base(ref e) if e.len() == 2));
        s.update("a".into(), || 0, |v| *v += 10);
        s.remove(&"b".to_string());
        s.remove(&"zz".to_string());
        let Changes::Delta(mut d) = s.take_changes() else {
            panic!("a delta")
        };
        d.sort();
        assert_eq!(
            d,
            vec![("a".to_string(), Some(11)), ("b".to_string(), None)]
        );
        assert_eq!(s.take_changes(), Changes::Delta(vec![]));
        // changed in place: kept, or removed when `f` says so
        s.insert("c".into(), 5);
        s.take_changes();
        s.change("a", |v| {
            *v += 1;
            true
        });
        s.change("c", |_| false);
        s.change("zz", |_| unreachable!("no value"));
        let Changes::Delta(mut d) = s.take_changes() else {
            panic!("a delta")
        };
        d.sort();
        assert_eq!(
            d,
            vec![("a".to_string(), Some(12)), ("c".to_string(), None)]
        );
    }

    #[test]
    fn chains_restore_every_epoch_and_compact() {
        let dir = tempfile::tempdir().unwrap();
        let store = CheckpointStore::local(dir.path()).unwrap();
        let writer = SnapshotWriter::<u64, u64>::spawn(store.clone(), "op".into(), 0, Vec::new());
        let mut state = KeyedState::new();
        let mut truth = Vec::new();
        for epoch in 0..25u64 {
            for k in 0..20 {
                if (k + epoch) % 4 == 0 {
                    state.update(k, || 0, |v| *v += epoch);
                }
            }
            if epoch % 5 == 3 {
                state.remove(&(epoch % 20));
            }
            writer.submit(epoch, state.take_changes()).unwrap();
            truth.push(
                state
                    .iter()
                    .map(|(k, v)| (*k, *v))
                    .collect::<HashMap<_, _>>(),
            );
        }
        let results = writer.finish();
        assert_eq!(results.len(), 25);
        for result in results {
            let (epoch, chain) = result.unwrap();
            assert!(
                chain.files.len() <= MAX_DELTAS + 1,
                "compacted: {}",
                chain.files.len()
            );
            let m = checkpoint(&store, epoch, 1, vec![chain]);
            let restored = restore::<u64, u64>(&store, &m, "op", 0, 1).unwrap();
            let got: HashMap<u64, u64> = restored.state.iter().map(|(k, v)| (*k, *v)).collect();
            assert_eq!(got, truth[epoch as usize], "epoch {epoch}");
        }
        let bases = std::fs::read_dir(dir.path())
            .unwrap()
            .flat_map(|d| std::fs::read_dir(d.unwrap().path()).unwrap())
            .filter(|f| {
                f.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .ends_with(".base")
            })
            .count();
        assert!(
            bases >= 3,
            "the chain was compacted into new bases ({bases})"
        );
    }

    #[test]
    fn rescaling_moves_every_key_to_its_new_owner() {
        let dir = tempfile::tempdir().unwrap();
        let store = CheckpointStore::local(dir.path()).unwrap();
        let keys: Vec<String> = (0..500).map(|i| format!("word{i}")).collect();
        let mut parts = Vec::new();
        for worker in 0..2 {
            let mut s = KeyedState::new();
            for (i, k) in keys.iter().enumerate() {
                if key_hash(k) % 2 == worker as u64 {
                    s.insert(k.clone(), i as u64);
                }
            }
            let w = SnapshotWriter::spawn(store.clone(), "counts".into(), worker, Vec::new());
            w.submit(7, s.take_changes()).unwrap();
            parts.push(w.finish().remove(0).unwrap().1);
        }
        let m = checkpoint(&store, 7, 2, parts);
        let mut seen = HashMap::new();
        for index in 0..3 {
            let r = restore::<String, u64>(&store, &m, "counts", index, 3).unwrap();
            assert!(r.chain.is_empty(), "a rescaled worker starts a new chain");
            for (k, v) in r.state.iter() {
                assert_eq!(key_hash(k) % 3, index as u64, "{k} on worker {index}");
                assert!(seen.insert(k.clone(), *v).is_none(), "{k} twice");
            }
        }
        let want: HashMap<String, u64> = keys
            .iter()
            .enumerate()
            .map(|(i, k)| (k.clone(), i as u64))
            .collect();
        assert_eq!(seen, want);
        // same worker count: the chain continues
        let r = restore::<String, u64>(&store, &m, "counts", 1, 2).unwrap();
        assert_eq!(r.chain.len(), 1);
    }

    #[test]
    fn shared_values_reach_every_worker_at_any_worker_count() {
        let dir = tempfile::tempdir().unwrap();
        let store = CheckpointStore::local(dir.path()).unwrap();
        let mut parts = Vec::new();
        for worker in 0..2u64 {
            let mut s: KeyedState<u64, u64> = KeyedState::new();
            s.insert(worker, worker);
            s.set_shared("watermark", 100 + worker);
            let w = SnapshotWriter::spawn(store.clone(), "op".into(), worker as usize, Vec::new());
            w.snapshot(3, &mut s).unwrap();
            // later changes are not in the snapshot
            s.set_shared("watermark", 999);
            parts.push(w.finish().remove(0).unwrap().1);
        }
        let m = checkpoint(&store, 3, 2, parts);
        for peers in [1, 2, 3] {
            for index in 0..peers {
                let r = restore::<u64, u64>(&store, &m, "op", index, peers).unwrap();
                assert_eq!(r.state.shared("watermark"), Some(101), "{index} of {peers}");
                assert_eq!(r.state.shared("other"), None);
            }
        }
    }

    #[test]
    fn a_damaged_snapshot_names_its_file() {
        let dir = tempfile::tempdir().unwrap();
        let store = CheckpointStore::local(dir.path()).unwrap();
        let w = SnapshotWriter::<u64, u64>::spawn(store.clone(), "op".into(), 0, Vec::new());
        let mut s = KeyedState::new();
        s.insert(1, 1);
        w.submit(1, s.take_changes()).unwrap();
        let chain = w.finish().remove(0).unwrap().1;
        let m = checkpoint(&store, 1, 1, vec![chain.clone()]);
        let path = dir.path().join(&chain.files[0].path);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[0] ^= 0xff;
        std::fs::write(&path, bytes).unwrap();
        let err = restore::<u64, u64>(&store, &m, "op", 0, 1)
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with(&path.display().to_string()) && err.contains("checksum"),
            "{err}"
        );
    }
}
