//! What the exactly-once sink keeps for recovery, and the recovery itself:
//! the marks that name prepared transactions in checkpoints, the store files
//! that record which commits happened, and [`recover_transactions`], which
//! settles what a crashed run left in Kafka (see [`super::sink`]).

use std::collections::{BTreeMap, BTreeSet};

use weir_progress::recovery::Recovery;
use weir_progress::store::{CheckpointStore, SourceMark};
use weir_runtime::JobError;

use super::producer::TxnProducer;
use super::retry::with_retries;
use super::sink::{Guarantee, KafkaSink};
use super::txn_pool::POOL;
use super::wire::end_transaction;

/// A transaction a checkpoint recorded as prepared (in the broker's log, not
/// known to be committed).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PreparedTxn {
    /// The worker whose pool it is in.
    pub worker: usize,
    /// Its slot in that pool.
    pub slot: usize,
    /// Producer id.
    pub producer_id: i64,
    /// Producer epoch.
    pub epoch: i16,
    /// The last data epoch in it.
    pub through: u64,
}

/// Mark keys of a prepared transaction: `<slot>/<field>`.
const PRODUCER_ID: &str = "producer_id";
const PRODUCER_EPOCH: &str = "producer_epoch";
const THROUGH: &str = "through";

/// The mark of `worker`'s sink `sink` naming `prepared` (`None` when empty).
pub fn encode_marks(sink: &str, worker: usize, prepared: &[PreparedTxn]) -> Option<SourceMark> {
    let through = prepared.iter().map(|p| p.through).max()?;
    let mut positions = BTreeMap::new();
    for p in prepared {
        let slot = p.slot;
        positions.insert(format!("{slot}/{PRODUCER_ID}"), p.producer_id as u64);
        positions.insert(format!("{slot}/{PRODUCER_EPOCH}"), p.epoch as u64);
        positions.insert(format!("{slot}/{THROUGH}"), p.through);
    }
    Some(SourceMark {
        operator: sink.to_string(),
        worker,
        next: through + 1,
        positions,
    })
}

/// The transactions a mark names.
pub fn decode_marks(mark: &SourceMark) -> Result<Vec<PreparedTxn>, String> {
    let mut fields: BTreeMap<usize, BTreeMap<&str, u64>> = BTreeMap::new();
    for (key, &value) in &mark.positions {
        let parsed = key
            .split_once('/')
            .and_then(|(slot, field)| Some((slot.parse::<usize>().ok()?, field)));
        match parsed {
            Some((slot, field @ (PRODUCER_ID | PRODUCER_EPOCH | THROUGH))) => {
                fields.entry(slot).or_default().insert(field, value);
            }
            _ => {
                return Err(format!(
                    "unknown key {key:?} (a checkpoint of an older weir, whose sink had one \
                     transaction per worker: restore it with the weir that wrote it)"
                ));
            }
        }
    }
    fields
        .into_iter()
        .map(|(slot, f)| {
            let get = |field: &str| {
                f.get(field)
                    .copied()
                    .ok_or_else(|| format!("slot {slot} has no {field}"))
            };
            Ok(PreparedTxn {
                worker: mark.worker,
                slot,
                producer_id: i64::try_from(get(PRODUCER_ID)?)
                    .map_err(|_| format!("slot {slot}: producer id out of range"))?,
                epoch: i16::try_from(get(PRODUCER_EPOCH)?)
                    .map_err(|_| format!("slot {slot}: producer epoch out of range"))?,
                through: get(THROUGH)?,
            })
        })
        .collect()
}

/// The store file recording that transactional id `id` committed through an epoch.
fn committed_meta(sink: &str, id: &str) -> String {
    format!("kafka-{sink}-{id}.committed")
}

/// The store file listing every transactional id runs of this sink used.
fn ids_meta(sink: &str) -> String {
    format!("kafka-{sink}-ids.json")
}

fn read_committed_through(
    store: &CheckpointStore,
    sink: &str,
    id: &str,
) -> Result<Option<u64>, JobError> {
    let name = committed_meta(sink, id);
    let Some(bytes) = store.read_meta(&name)? else {
        return Ok(None);
    };
    String::from_utf8_lossy(&bytes)
        .trim()
        .parse()
        .map(Some)
        .map_err(|_| {
            JobError::Checkpoint(format!(
                "{}/{name}: not an epoch number: the record of committed transactions is damaged",
                store.describe()
            ))
        })
}

/// Records, durably, that transactional id `id` of sink `sink` committed
/// through data epoch `epoch`.
pub fn write_committed_through(
    store: &CheckpointStore,
    sink: &str,
    id: &str,
    epoch: u64,
) -> Result<(), JobError> {
    store
        .write_meta(&committed_meta(sink, id), epoch.to_string().as_bytes())
        .map_err(JobError::from)
}

/// Settles what crashed runs of sink `name` left in Kafka; runs once, on
/// worker 0, before any worker opens its producers. `workers` is the worker
/// count of the run about to start.
///
/// For every transaction the restored checkpoint (and newer complete ones a
/// fallback replays) names, the newest per transactional id, the recorded
/// "committed through" tells whether its commit happened. If not, the crash
/// came between "checkpoint complete" and "commit", the transaction is still
/// open, and it is committed here with its producer id and epoch
/// ([`end_transaction`]). Then every transactional id a run may have used is
/// initialised again, which fences zombies and aborts what they left open
/// (epochs after the checkpoint, which the restored run produces again).
pub fn recover_transactions(
    store: &CheckpointStore,
    recovery: &Recovery,
    name: &str,
    sink: &KafkaSink,
    workers: usize,
) -> Result<(), JobError> {
    if sink.guarantee == Guarantee::AtLeastOnce {
        return Ok(());
    }
    let mut ids: BTreeSet<String> = match store.read_meta(&ids_meta(name))? {
        Some(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
            JobError::Checkpoint(format!("{}/{}: {e}", store.describe(), ids_meta(name)))
        })?,
        None => BTreeSet::new(),
    };
    if recovery.fresh_restore.is_some() {
        // no checkpoint ever completed, so no transaction can have committed:
        // a record of one means the checkpoints were lost, and starting over
        // would write the committed output again
        for id in &ids {
            if let Some(epoch) = read_committed_through(store, name, id)? {
                return Err(JobError::Checkpoint(format!(
                    "{}: transactional id {id} committed output through epoch {epoch}, \
                     but no complete checkpoint is left: the checkpoints were deleted, \
                     and starting over would write that output again \
                     (start in an empty checkpoint directory to do so on purpose)",
                    store.describe()
                )));
            }
        }
    }
    if recovery.manifest.is_none() {
        // a fresh start: no commit of an earlier run is pending
        for id in &ids {
            store.delete_meta(&committed_meta(name, id))?;
        }
    }
    let marks = recovery
        .manifest
        .iter()
        .flat_map(|m| m.sources.iter())
        .chain(recovery.replay.iter())
        .filter(|m| m.operator == name);
    let mut newest: BTreeMap<(usize, usize), PreparedTxn> = BTreeMap::new();
    for mark in marks {
        let prepared = decode_marks(mark).map_err(|reason| {
            JobError::Checkpoint(format!(
                "{}: the mark of sink {name} (worker {}): {reason}",
                store.describe(),
                mark.worker
            ))
        })?;
        for p in prepared {
            let slot = newest
                .entry((p.worker, p.slot))
                .or_insert_with(|| p.clone());
            if p.through > slot.through {
                *slot = p;
            }
        }
    }
    for p in newest.values() {
        let id = sink.transactional_id(p.worker, p.slot);
        let done = read_committed_through(store, name, &id)?;
        if done.is_none_or(|d| d < p.through) {
            with_retries(&sink.brokers, sink.broker_timeout, || {
                end_transaction(&sink.brokers, &id, p.producer_id, p.epoch, true)
            })?;
            write_committed_through(store, name, &id, p.through)?;
        }
        ids.insert(id);
    }
    // ids of earlier, wider runs: fence them and abort what they left open
    // (each current worker does the same for its own pool when it starts)
    let current: BTreeSet<String> = (0..workers)
        .flat_map(|w| (0..POOL).map(move |slot| sink.transactional_id(w, slot)))
        .collect();
    for id in ids.difference(&current) {
        with_retries(&sink.brokers, sink.broker_timeout, || {
            TxnProducer::open(&sink.brokers, id)
        })?;
    }
    ids.extend(current);
    let bytes = serde_json::to_vec(&ids).map_err(|e| JobError::Checkpoint(e.to_string()))?;
    store.write_meta(&ids_meta(name), &bytes)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn txn(slot: usize, through: u64) -> PreparedTxn {
        PreparedTxn {
            worker: 2,
            slot,
            producer_id: 7000 + slot as i64,
            epoch: 3,
            through,
        }
    }

    #[test]
    fn marks_name_every_prepared_transaction() {
        let prepared = vec![txn(0, 11), txn(2, 14)];
        let mark = encode_marks("out", 2, &prepared);
        let Some(mark) = mark else {
            panic!("two transactions make a mark");
        };
        assert_eq!(mark.next, 15);
        assert_eq!(decode_marks(&mark), Ok(prepared));
        assert_eq!(encode_marks("out", 2, &[]), None);
    }

    #[test]
    fn a_mark_of_the_one_transaction_sink_is_refused() {
        let mark = SourceMark {
            operator: "out".into(),
            worker: 0,
            next: 5,
            positions: BTreeMap::from([
                ("producer_id".to_string(), 1000),
                ("producer_epoch".to_string(), 0),
            ]),
        };
        let Err(reason) = decode_marks(&mark) else {
            panic!("an old mark must not pass for an empty one");
        };
        assert!(reason.contains("older weir"), "{reason}");
    }
}
