//! Flink's `keyBy`: each record goes to the worker that owns its key.

use std::hash::Hash;

use timely::ExchangeData;
use timely::dataflow::StreamVec;
use timely::dataflow::operators::Exchange;
use timely::dataflow::operators::vec::Map;
use weir_progress::route::key_hash;

/// Routes records by key.
pub trait KeyBy<'s, D: ExchangeData> {
    /// Pairs each record with `key(record)` and sends it to the worker owning
    /// the key (`key_hash(key) % peers`, the routing keyed state uses, so
    /// state restored on another worker count lands with its records).
    ///
    /// ```
    /// use timely::dataflow::operators::{Capture, ToStream};
    /// use timely::dataflow::operators::capture::Extract;
    /// use weir_streaming::operators::KeyBy;
    ///
    /// let keyed = timely::example(|scope| {
    ///     (0..6u64).to_stream(scope).container::<Vec<_>>().key_by(|x| x % 2).capture()
    /// });
    /// let mut records = keyed.extract()[0].1.clone();
    /// records.sort();
    /// assert_eq!(records, vec![(0, 0), (0, 2), (0, 4), (1, 1), (1, 3), (1, 5)]);
    /// ```
    fn key_by<K: ExchangeData + Hash>(
        self,
        key: impl Fn(&D) -> K + 'static,
    ) -> StreamVec<'s, u64, (K, D)>;
}

impl<'s, D: ExchangeData> KeyBy<'s, D> for StreamVec<'s, u64, D> {
    fn key_by<K: ExchangeData + Hash>(
        self,
        key: impl Fn(&D) -> K + 'static,
    ) -> StreamVec<'s, u64, (K, D)> {
        self.map(move |record| (key(&record), record))
            .exchange(|(k, _): &(K, D)| key_hash(k))
    }
}
