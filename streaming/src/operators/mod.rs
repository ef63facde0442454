//! Stream operators that are not windows: a lookup join against a static
//! table, and `key_by`, which routes records to the worker owning their key.
//! (`map`, `filter` and `inspect` are timely's own.)

mod key_by;
mod lookup_join;

pub use key_by::KeyBy;
pub use lookup_join::LookupJoin;
