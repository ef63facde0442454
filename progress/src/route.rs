//! How keys map to workers: the same in every process, every run and every
//! build, so that exchange routing and the repartitioning of restored state
//! agree — also when a checkpoint is restored by a binary built with another
//! toolchain.
//!
//! The hash is specified rather than borrowed from the standard library
//! (whose `DefaultHasher` and `Hash` impls Rust does not promise to keep): a
//! key is encoded with bincode 1's default encoding (fixed-width
//! little-endian integers, strings and sequences as a `u64` length and their
//! items) and the bytes are hashed with XXH3-64, seed 0. Every manifest
//! records [`KEY_HASH`], and a restore refuses a checkpoint whose keys were
//! routed by another hash.

use std::cell::RefCell;

use serde::Serialize;

/// The name of the routing hash, recorded in every manifest.
pub const KEY_HASH: &str = "xxh3-64/bincode-1";

thread_local! {
    /// The encoding buffer, reused: routing a record allocates nothing.
    static ENCODED: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// The routing hash of `key` (see the module doc). Timely's exchange sends a
/// record to worker `key_hash(key) % peers`.
///
/// ```
/// use weir_progress::route::key_hash;
/// // specified: these values hold for every build, on every platform
/// assert_eq!(key_hash(&7u64), twox_hash::XxHash3_64::oneshot(&7u64.to_le_bytes()));
/// assert_eq!(key_hash("ab"), key_hash(&String::from("ab")));
/// ```
pub fn key_hash<K: Serialize + ?Sized>(key: &K) -> u64 {
    hash_encoded(|buffer| {
        // writing to a Vec fails only if the key's own Serialize impl fails;
        // the bytes written until then still hash the same in every build
        let _ = bincode::serialize_into(buffer, key);
    })
}

/// The routing hash of a key that is a byte string: [`key_hash`] of it as a
/// `[u8]` (or `Vec<u8>`), whose encoding is its length and its bytes, built
/// without going through serde byte by byte.
///
/// ```
/// use weir_progress::route::{bytes_hash, key_hash};
/// let key = vec![1u8, 2, 250];
/// assert_eq!(bytes_hash(&key), key_hash(&key));
/// assert_eq!(bytes_hash(&[]), key_hash(&Vec::<u8>::new()));
/// ```
pub fn bytes_hash(bytes: &[u8]) -> u64 {
    hash_encoded(|buffer| {
        buffer.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
        buffer.extend_from_slice(bytes);
    })
}

/// XXH3-64 of what `encode` writes into the reused buffer (into a new one
/// while it is in use: only if a key's Serialize impl routes another key).
fn hash_encoded(encode: impl FnOnce(&mut Vec<u8>)) -> u64 {
    let hash = |buffer: &mut Vec<u8>| {
        buffer.clear();
        encode(buffer);
        twox_hash::XxHash3_64::oneshot(buffer)
    };
    ENCODED.with(|cell| match cell.try_borrow_mut() {
        Ok(mut buffer) => hash(&mut buffer),
        Err(_) => hash(&mut Vec::new()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hash_is_the_specified_one() {
        // bincode 1: a string is its u64 little-endian length, then its bytes
        let mut bytes = 3u64.to_le_bytes().to_vec();
        bytes.extend_from_slice(b"ads");
        assert_eq!(key_hash("ads"), twox_hash::XxHash3_64::oneshot(&bytes));
        // pinned values, computed by the reference implementation (python's
        // xxhash.xxh3_64): a change of the encoding or the hash fails here
        assert_eq!(key_hash("ads"), 0xb663_343a_6523_2c41);
        assert_eq!(key_hash(&0u64), 0xc77b_3abb_6f87_acd9);
        assert_eq!(key_hash(&(1u32, "a")), key_hash(&(1u32, String::from("a"))));
        for len in [0, 1, 16, 17, 128, 129, 240, 241, 1000] {
            let key: Vec<u8> = (0..len).map(|i| (i * 7) as u8).collect();
            assert_eq!(bytes_hash(&key), key_hash(&key), "{len} bytes");
        }
    }
}
