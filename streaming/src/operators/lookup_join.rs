//! A stream–table join against a static table loaded before the dataflow
//! starts (Flink's lookup join on a table that does not change).

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Arc;

use timely::container::CapacityContainerBuilder;
use timely::dataflow::StreamVec;
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::generic::OutputBuilder;
use timely::dataflow::operators::generic::builder_rc::OperatorBuilder;

/// Joins each record with the row of a static table that its key names.
pub trait LookupJoin<'s, D: Clone + 'static> {
    /// Looks up `key(record)` in `table`: a hit becomes `join(record, row)` on
    /// the first stream, a miss leaves the record unchanged on the second, so
    /// that the caller can count it, send it to a dead-letter topic, or drop
    /// it. The table is shared by the workers of a process (an `Arc`), and
    /// records stay on their worker: no exchange.
    ///
    /// ```
    /// use std::collections::HashMap;
    /// use std::sync::Arc;
    /// use timely::dataflow::operators::{Capture, ToStream};
    /// use timely::dataflow::operators::capture::Extract;
    /// use weir_streaming::operators::LookupJoin;
    ///
    /// let table = Arc::new(HashMap::from([(1u32, "one"), (2, "two")]));
    /// let (hits, misses) = timely::example(move |scope| {
    ///     let (hits, misses) = vec![(1u32, 'a'), (3, 'b'), (2, 'c')]
    ///         .to_stream(scope)
    ///         .container::<Vec<_>>()
    ///         .lookup_join(table, |r: &(u32, char)| &r.0, |r, name: &&str| (r.1, *name));
    ///     (hits.capture(), misses.capture())
    /// });
    /// assert_eq!(hits.extract()[0].1, vec![('a', "one"), ('c', "two")]);
    /// assert_eq!(misses.extract()[0].1, vec![(3, 'b')]);
    /// ```
    fn lookup_join<K, V, R>(
        self,
        table: Arc<HashMap<K, V>>,
        key: fn(&D) -> &K,
        join: impl Fn(D, &V) -> R + 'static,
    ) -> (StreamVec<'s, u64, R>, StreamVec<'s, u64, D>)
    where
        K: Eq + Hash + 'static,
        V: 'static,
        R: Clone + 'static;
}

impl<'s, D: Clone + 'static> LookupJoin<'s, D> for StreamVec<'s, u64, D> {
    fn lookup_join<K, V, R>(
        self,
        table: Arc<HashMap<K, V>>,
        key: fn(&D) -> &K,
        join: impl Fn(D, &V) -> R + 'static,
    ) -> (StreamVec<'s, u64, R>, StreamVec<'s, u64, D>)
    where
        K: Eq + Hash + 'static,
        V: 'static,
        R: Clone + 'static,
    {
        let mut builder = OperatorBuilder::new("LookupJoin".to_string(), self.scope());
        let mut input = builder.new_input(self, Pipeline);
        let (hits_out, hits) = builder.new_output();
        let (misses_out, misses) = builder.new_output();
        let mut hits_out = OutputBuilder::<u64, CapacityContainerBuilder<Vec<R>>>::from(hits_out);
        let mut misses_out =
            OutputBuilder::<u64, CapacityContainerBuilder<Vec<D>>>::from(misses_out);
        builder.build(move |_caps| {
            move |_frontiers| {
                input.for_each_stamp(|stamp, data| {
                    let mut hits = hits_out.activate();
                    let mut hits = hits.session(&stamp);
                    let mut misses = misses_out.activate();
                    let mut misses = misses.session(&stamp);
                    for record in data.flat_map(|batch| batch.drain(..)) {
                        match table.get(key(&record)) {
                            Some(row) => hits.give(join(record, row)),
                            None => misses.give(record),
                        }
                    }
                });
            }
        });
        (hits, misses)
    }
}
