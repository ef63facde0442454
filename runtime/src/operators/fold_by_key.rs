//! Folds a bounded input into one value per key, emitted when the input is complete.

use std::collections::HashMap;
use std::hash::Hash;

use timely::dataflow::StreamVec;
use timely::dataflow::channels::pact::{Exchange, ParallelizationContract, Pipeline};
use timely::dataflow::operators::generic::Operator;

use super::{EMIT_BATCH, key_hash};
use crate::time::BatchTime;

/// Folds records into a per-key map and emits its entries at [`BatchTime::End`].
pub trait FoldByKey<'s, D> {
    /// Folds every record of this worker (no exchange) into a map with `fold`, and
    /// emits the map's entries once the input is complete. Use it as a combiner
    /// before [`SumByKey::sum_by_key`].
    ///
    /// ```
    /// use timely::dataflow::operators::{ToStream, Capture};
    /// use timely::dataflow::operators::capture::Extract;
    /// use weir_runtime::operators::FoldByKey;
    /// use weir_runtime::time::BatchTime;
    ///
    /// let captured = timely::execute_directly(|worker| worker.dataflow::<BatchTime, _, _>(|scope| {
    ///     ["a b", "b"].into_iter().map(String::from).to_stream(scope)
    ///         .container::<Vec<String>>()
    ///         .fold_by_key("Words", |map, line: String| {
    ///             for w in line.split(' ') { *map.entry(w.to_string()).or_insert(0u64) += 1; }
    ///         })
    ///         .capture()
    /// }));
    /// let mut out: Vec<_> = captured.extract().into_iter().flat_map(|(_, v)| v).collect();
    /// out.sort();
    /// assert_eq!(out, vec![("a".to_string(), 1), ("b".to_string(), 2)]);
    /// ```
    fn fold_by_key<K, V, F>(self, name: &str, fold: F) -> StreamVec<'s, BatchTime, (K, V)>
    where
        K: Eq + Hash + Clone + 'static,
        V: Clone + 'static,
        F: FnMut(&mut HashMap<K, V>, D) + 'static;
}

/// Sums values per key across all workers.
pub trait SumByKey<'s, K, V> {
    /// Routes each `(key, value)` to the worker that owns `key` and emits each key
    /// once, with the sum of its values, when the input is complete.
    ///
    /// ```
    /// use timely::dataflow::operators::{ToStream, Capture};
    /// use timely::dataflow::operators::capture::Extract;
    /// use weir_runtime::operators::SumByKey;
    /// use weir_runtime::time::BatchTime;
    ///
    /// let captured = timely::execute_directly(|worker| worker.dataflow::<BatchTime, _, _>(|scope| {
    ///     [("x", 1u64), ("y", 2), ("x", 3)].map(|(k, v)| (k.to_string(), v)).to_stream(scope)
    ///         .container::<Vec<(String, u64)>>()
    ///         .sum_by_key()
    ///         .capture()
    /// }));
    /// let mut out: Vec<_> = captured.extract().into_iter().flat_map(|(_, v)| v).collect();
    /// out.sort();
    /// assert_eq!(out, vec![("x".to_string(), 4), ("y".to_string(), 2)]);
    /// ```
    fn sum_by_key(self) -> StreamVec<'s, BatchTime, (K, V)>;
}

fn fold_with<'s, D, K, V, F, P>(
    stream: StreamVec<'s, BatchTime, D>,
    pact: P,
    name: &str,
    mut fold: F,
) -> StreamVec<'s, BatchTime, (K, V)>
where
    D: 'static,
    K: Eq + Hash + Clone + 'static,
    V: Clone + 'static,
    F: FnMut(&mut HashMap<K, V>, D) + 'static,
    P: ParallelizationContract<BatchTime, Vec<D>>,
{
    let scope = stream.scope();
    stream.unary_frontier(pact, name, move |cap, info| {
        let activator = scope.activator_for(info.address);
        let mut cap = Some(cap.delayed(&BatchTime::End));
        let mut map = HashMap::new();
        let mut draining: Option<std::collections::hash_map::IntoIter<K, V>> = None;
        move |(input, frontier), output| {
            input.for_each_stamp(|_, data| {
                for batch in data {
                    for record in batch.drain(..) {
                        fold(&mut map, record);
                    }
                }
            });
            if !frontier.is_empty() {
                return;
            }
            let Some(time) = cap.as_ref() else { return };
            let entries = draining.get_or_insert_with(|| std::mem::take(&mut map).into_iter());
            let mut session = output.session(time);
            session.give_iterator(entries.by_ref().take(EMIT_BATCH));
            drop(session);
            if entries.len() == 0 {
                cap = None;
                draining = None;
            } else {
                activator.activate();
            }
        }
    })
}

impl<'s, D: 'static> FoldByKey<'s, D> for StreamVec<'s, BatchTime, D> {
    fn fold_by_key<K, V, F>(self, name: &str, fold: F) -> StreamVec<'s, BatchTime, (K, V)>
    where
        K: Eq + Hash + Clone + 'static,
        V: Clone + 'static,
        F: FnMut(&mut HashMap<K, V>, D) + 'static,
    {
        fold_with(self, Pipeline, name, fold)
    }
}

impl<'s, K, V> SumByKey<'s, K, V> for StreamVec<'s, BatchTime, (K, V)>
where
    K: timely::ExchangeData + Eq + Hash + Clone,
    V: timely::ExchangeData + Clone + std::ops::AddAssign + Default,
{
    fn sum_by_key(self) -> StreamVec<'s, BatchTime, (K, V)> {
        let pact = Exchange::new(|(k, _): &(K, V)| key_hash(k));
        fold_with(self, pact, "SumByKey", |map, (k, v)| {
            *map.entry(k).or_default() += v;
        })
    }
}
