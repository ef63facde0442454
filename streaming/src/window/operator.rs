//! The window operator: events and watermarks in, fired windows out, the
//! windows of each key in checkpointed keyed state (see the module above).

use std::collections::{BTreeMap, BTreeSet};
use std::hash::Hash;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use timely::container::CapacityContainerBuilder;
use timely::dataflow::StreamVec;
use timely::dataflow::channels::pact::{Exchange, Pipeline};
use timely::dataflow::operators::generic::Operator;
use weir_progress::checkpoint::{Ack, Checkpoints, StatefulUnary};
use weir_progress::route::key_hash;
use weir_runtime::exec::RecordCounter;

use super::{Acc, Frontier, Watermark, Windows};

/// The name of the window state's shared value that holds its event-time
/// frontier (ms), so that a restore goes on from it.
const WATERMARK: &str = "watermark";

/// What a window operator reads: events, and the source workers' watermarks.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum WindowInput<K> {
    /// An event of `key` at event time `time` with `value`.
    Event {
        /// Key.
        key: K,
        /// Event time (ms).
        time: u64,
        /// Value to aggregate (1.0 for counts).
        value: f64,
    },
    /// A source worker's watermark at the end of this epoch, addressed to
    /// window worker `to`.
    Watermark {
        /// Destination worker.
        to: usize,
        /// The source worker's watermark.
        watermark: Watermark,
    },
}

/// A fired window.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WindowResult<K> {
    /// Key.
    pub key: K,
    /// Start (inclusive, ms).
    pub start: u64,
    /// End (exclusive, ms).
    pub end: u64,
    /// The window's values.
    pub acc: Acc,
}

/// Sends each source watermark to every one of `peers` window workers.
pub fn fan_out<'s, K: Clone + 'static>(
    watermarks: StreamVec<'s, u64, Watermark>,
    peers: usize,
) -> StreamVec<'s, u64, WindowInput<K>> {
    watermarks.unary::<CapacityContainerBuilder<Vec<WindowInput<K>>>, _, _, _>(
        Pipeline,
        "FanOutWatermarks",
        move |_, _| {
            move |input, output| {
                input.for_each_stamp(|stamp, data| {
                    let mut session = output.session(&stamp);
                    for &watermark in data.flat_map(|b| b.iter()) {
                        for to in 0..peers {
                            session.give(WindowInput::Watermark { to, watermark });
                        }
                    }
                });
            }
        },
    )
}

/// The windows of one key: `(start, end) -> values`.
type KeyWindows = BTreeMap<(u64, u64), Acc>;

/// Aggregates events into event-time windows.
pub trait WindowAggregate<'s, K> {
    /// Windows the events by key (see the module doc); counts late events in
    /// `late`. Returns the fired windows and the state's acks.
    fn window_aggregate(
        self,
        name: &str,
        windows: Windows,
        checkpoints: &Checkpoints,
        late: &RecordCounter,
    ) -> (StreamVec<'s, u64, WindowResult<K>>, StreamVec<'s, u64, Ack>);
}

impl<'s, K> WindowAggregate<'s, K> for StreamVec<'s, u64, WindowInput<K>>
where
    K: Serialize + DeserializeOwned + Hash + Eq + Ord + Clone + Send + 'static,
{
    fn window_aggregate(
        self,
        name: &str,
        windows: Windows,
        checkpoints: &Checkpoints,
        late: &RecordCounter,
    ) -> (StreamVec<'s, u64, WindowResult<K>>, StreamVec<'s, u64, Ack>) {
        let late = late.clone();
        let peers = checkpoints.peers as u64;
        let route = move |input: &WindowInput<K>| match input {
            WindowInput::Event { key, .. } => key_hash(key),
            WindowInput::Watermark { to, .. } => {
                // a hash whose remainder is `to` (timely routes by hash % peers)
                *to as u64 % peers.max(1)
            }
        };
        // an index of window ends (rebuilt from the state after a restore)
        let mut ends: Option<BTreeMap<u64, BTreeSet<K>>> = None;
        self.stateful_unary(
            Exchange::new(route),
            name,
            checkpoints,
            move |_epoch,
                  records,
                  state: &mut weir_progress::state::KeyedState<K, KeyWindows>,
                  out: &mut Vec<WindowResult<K>>| {
                let ends = ends.get_or_insert_with(|| {
                    let mut index: BTreeMap<u64, BTreeSet<K>> = BTreeMap::new();
                    for (key, windows) in state.iter() {
                        for &(_, end) in windows.keys() {
                            index.entry(end).or_default().insert(key.clone());
                        }
                    }
                    index
                });
                let mut watermarks = Vec::new();
                for record in records {
                    match record {
                        WindowInput::Watermark { watermark, .. } => watermarks.push(watermark),
                        WindowInput::Event { key, time, value } => {
                            let watermark = state.shared(WATERMARK);
                            add(state, ends, windows, watermark, key, time, value, &late);
                        }
                    }
                }
                let fire_to = match Watermark::combine(watermarks) {
                    // the end of the input fires everything but is not kept:
                    // a later run restored from here starts new windows
                    Some(Frontier::End) => Frontier::End,
                    Some(Frontier::At(w)) => {
                        let w = state.shared(WATERMARK).map_or(w, |old| old.max(w));
                        state.set_shared(WATERMARK, w);
                        Frontier::At(w)
                    }
                    None => match state.shared(WATERMARK) {
                        Some(w) => Frontier::At(w),
                        None => return,
                    },
                };
                fire(state, ends, fire_to, out);
            },
        )
    }
}

/// Fires every window whose end `frontier` has reached.
fn fire<K: Serialize + DeserializeOwned + Hash + Eq + Ord + Clone + Send + 'static>(
    state: &mut weir_progress::state::KeyedState<K, KeyWindows>,
    ends: &mut BTreeMap<u64, BTreeSet<K>>,
    frontier: Frontier,
    out: &mut Vec<WindowResult<K>>,
) {
    while let Some(entry) = ends.first_entry() {
        if Frontier::At(*entry.key()) > frontier {
            break;
        }
        let end = *entry.key();
        for key in entry.remove() {
            let Some(mut key_windows) = state.get(&key).cloned() else {
                continue;
            };
            let fired: Vec<(u64, u64)> = key_windows
                .keys()
                .filter(|&&(_, e)| e == end)
                .copied()
                .collect();
            for window in fired {
                if let Some(acc) = key_windows.remove(&window) {
                    out.push(WindowResult {
                        key: key.clone(),
                        start: window.0,
                        end: window.1,
                        acc,
                    });
                }
            }
            if key_windows.is_empty() {
                state.remove(&key);
            } else {
                state.insert(key, key_windows);
            }
        }
    }
}

/// Adds an event to its key's windows (merging sessions), unless each of its
/// windows has fired (`end <= watermark`): then it is late.
#[allow(clippy::too_many_arguments)]
fn add<K: Serialize + DeserializeOwned + Hash + Eq + Ord + Clone + Send + 'static>(
    state: &mut weir_progress::state::KeyedState<K, KeyWindows>,
    ends: &mut BTreeMap<u64, BTreeSet<K>>,
    windows: Windows,
    watermark: Option<u64>,
    key: K,
    time: u64,
    value: f64,
    late: &RecordCounter,
) {
    let open = |end: u64| watermark.is_none_or(|w| end > w);
    let assigned: Vec<(u64, u64)> = windows
        .assign(time)
        .into_iter()
        .filter(|&(_, end)| open(end))
        .collect();
    if assigned.is_empty() {
        late.add(1);
        return;
    }
    let mut key_windows = state.get(&key).cloned().unwrap_or_default();
    let acc = Acc::of(value);
    match windows {
        Windows::Session { .. } => {
            let (mut start, mut end) = assigned[0];
            let mut merged = acc;
            let overlapping: Vec<(u64, u64)> = key_windows
                .keys()
                .filter(|&&(s, e)| s < end && start < e)
                .copied()
                .collect();
            for window in overlapping {
                if let Some(other) = key_windows.remove(&window) {
                    merged.merge(&other);
                    start = start.min(window.0);
                    end = end.max(window.1);
                    if let Some(keys) = ends.get_mut(&window.1) {
                        // the key may still have another window ending there
                        if !key_windows.keys().any(|&(_, e)| e == window.1) {
                            keys.remove(&key);
                        }
                    }
                }
            }
            key_windows.insert((start, end), merged);
            ends.entry(end).or_default().insert(key.clone());
        }
        _ => {
            for window in assigned {
                key_windows
                    .entry(window)
                    .and_modify(|a| a.merge(&acc))
                    .or_insert(acc);
                ends.entry(window.1).or_default().insert(key.clone());
            }
        }
    }
    state.insert(key, key_windows);
}
