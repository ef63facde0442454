//! How keys map to workers: the same in every process, so that exchange routing
//! and the repartitioning of restored state agree.

/// A hash of `key` that is the same in every process and every run (no
/// per-process random state). Timely's exchange sends a record to worker
/// `key_hash(key) % peers`.
pub fn key_hash<K: std::hash::Hash + ?Sized>(key: &K) -> u64 {
    use std::hash::Hasher;
    let mut hasher = std::hash::DefaultHasher::new();
    key.hash(&mut hasher);
    hasher.finish()
}
