//! [`ByteString`]: a key or value of state that is a string of bytes (an
//! encoded row, an aggregate's encoded state).
//!
//! A `Vec<u8>` goes through serde one byte at a time; a `ByteString` is
//! written and read as one slice. The encoding is the same (bincode 1 writes
//! a `u64` length then the bytes either way), so snapshots written with
//! `Vec<u8>` keys restore as `ByteString`s, and [`key_hash`](crate::route::key_hash)
//! routes both alike. It hashes, compares and borrows as a `[u8]`, so a map
//! keyed by it is looked up by a slice.

use std::borrow::Borrow;
use std::fmt;
use std::ops::Deref;

use serde::de::{self, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A string of bytes, serialized as one slice (see the module doc).
///
/// ```
/// use weir_progress::byte_string::ByteString;
/// use weir_progress::route::key_hash;
/// let key = ByteString::from(&b"row"[..]);
/// assert_eq!(bincode::serialize(&key).unwrap(), bincode::serialize(&b"row".to_vec()).unwrap());
/// assert_eq!(key_hash(&key), key_hash(&b"row".to_vec()));
/// let back: ByteString = bincode::deserialize(&bincode::serialize(&key).unwrap()).unwrap();
/// assert_eq!(&*back, b"row");
/// ```
#[derive(Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ByteString(Vec<u8>);

impl ByteString {
    /// The bytes.
    pub fn into_vec(self) -> Vec<u8> {
        self.0
    }
}

impl fmt::Debug for ByteString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ByteString({:02x?})", self.0)
    }
}

impl From<Vec<u8>> for ByteString {
    fn from(bytes: Vec<u8>) -> Self {
        ByteString(bytes)
    }
}

impl From<&[u8]> for ByteString {
    fn from(bytes: &[u8]) -> Self {
        ByteString(bytes.to_vec())
    }
}

impl Deref for ByteString {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.0
    }
}

impl Borrow<[u8]> for ByteString {
    fn borrow(&self) -> &[u8] {
        &self.0
    }
}

impl Serialize for ByteString {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(&self.0)
    }
}

impl<'de> Deserialize<'de> for ByteString {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_byte_buf(BytesVisitor)
    }
}

struct BytesVisitor;

impl<'de> Visitor<'de> for BytesVisitor {
    type Value = ByteString;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a string of bytes")
    }

    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<ByteString, E> {
        Ok(ByteString(v.to_vec()))
    }

    fn visit_byte_buf<E: de::Error>(self, v: Vec<u8>) -> Result<ByteString, E> {
        Ok(ByteString(v))
    }

    // formats without bytes (JSON) write a sequence of numbers
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<ByteString, A::Error> {
        let mut bytes = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1 << 16));
        while let Some(b) = seq.next_element()? {
            bytes.push(b);
        }
        Ok(ByteString(bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshots_of_byte_vectors_read_back_as_byte_strings() {
        type Entry<B> = (B, Option<(i64, B)>);
        let old: Vec<Entry<Vec<u8>>> = vec![(vec![1, 2], Some((-3, vec![9; 300]))), (vec![], None)];
        let bytes = bincode::serialize(&old).unwrap();
        let new: Vec<Entry<ByteString>> = bincode::deserialize(&bytes).unwrap();
        assert_eq!(bincode::serialize(&new).unwrap(), bytes);
        assert_eq!(&*new[0].0, &[1, 2]);
        assert_eq!(
            new[0].1.as_ref().map(|(t, s)| (*t, s.len())),
            Some((-3, 300))
        );
        let json = serde_json::to_string(&ByteString::from(vec![7u8, 8])).unwrap();
        let back: ByteString = serde_json::from_str(&json).unwrap();
        assert_eq!(back.into_vec(), vec![7, 8]);
    }

    #[test]
    fn a_truncated_byte_string_is_an_error() {
        let mut bytes = bincode::serialize(&ByteString::from(vec![1u8; 10])).unwrap();
        bytes.truncate(12);
        assert!(bincode::deserialize::<ByteString>(&bytes).is_err());
    }
}
