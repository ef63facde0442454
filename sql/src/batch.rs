//! A record batch that can cross processes: within a process timely moves it
//! as it is; between processes it travels as Arrow IPC (a stream of one
//! batch, schema included).

use arrow::array::RecordBatch;
use arrow::buffer::Buffer;
use arrow::ipc::reader::StreamDecoder;
use arrow::ipc::writer::StreamWriter;
use serde::de::Error as _;
use serde::ser::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// An Arrow record batch as timely data.
#[derive(Clone, Debug, PartialEq)]
pub struct Batch(pub RecordBatch);

impl Serialize for Batch {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut bytes = Vec::new();
        let mut writer =
            StreamWriter::try_new(&mut bytes, &self.0.schema()).map_err(S::Error::custom)?;
        writer.write(&self.0).map_err(S::Error::custom)?;
        writer.finish().map_err(S::Error::custom)?;
        drop(writer);
        serializer.serialize_bytes(&bytes)
    }
}

/// Takes the bytes of a batch whole (not byte by byte, as `Vec<u8>` would).
struct Bytes;

impl<'de> serde::de::Visitor<'de> for Bytes {
    type Value = Vec<u8>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("the Arrow IPC bytes of a batch")
    }

    fn visit_byte_buf<E: serde::de::Error>(self, bytes: Vec<u8>) -> Result<Vec<u8>, E> {
        Ok(bytes)
    }

    fn visit_bytes<E: serde::de::Error>(self, bytes: &[u8]) -> Result<Vec<u8>, E> {
        Ok(bytes.to_vec())
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<u8>, A::Error> {
        let mut bytes = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(b) = seq.next_element()? {
            bytes.push(b);
        }
        Ok(bytes)
    }
}

impl<'de> Deserialize<'de> for Batch {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let bytes = deserializer.deserialize_byte_buf(Bytes)?;
        // the arrays point into the received bytes rather than copies (where
        // aligned: the decoder copies what is not)
        let mut buffer = Buffer::from_vec(bytes);
        let mut decoder = StreamDecoder::new();
        while !buffer.is_empty() {
            let before = buffer.len();
            if let Some(batch) = decoder.decode(&mut buffer).map_err(D::Error::custom)? {
                return Ok(Batch(batch));
            }
            if buffer.len() == before {
                break;
            }
        }
        Err(D::Error::custom("an IPC stream without a whole batch"))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{Int64Array, StringArray};

    use super::*;

    #[test]
    fn a_batch_survives_bincode_as_timely_sends_it_between_processes() {
        let batch = RecordBatch::try_from_iter(vec![
            ("k", Arc::new(Int64Array::from(vec![1, 2, 3])) as _),
            (
                "v",
                Arc::new(StringArray::from(vec![Some("a"), None, Some("c")])) as _,
            ),
        ])
        .unwrap();
        let bytes = bincode::serialize(&Batch(batch.clone())).unwrap();
        let back: Batch = bincode::deserialize(&bytes).unwrap();
        assert_eq!(back.0, batch);
        // bytes cut short of the batch (its last 8 bytes end the stream):
        // an error, not a batch, nor a hang
        let ipc = &bytes[8..];
        for cut in [0, 8, ipc.len() / 2, ipc.len() - 9] {
            let short = bincode::serialize(&serde_bytes(&ipc[..cut])).unwrap();
            assert!(
                bincode::deserialize::<Batch>(&short).is_err(),
                "cut at {cut}"
            );
        }
    }

    /// Bytes serialized as serde bytes (as `Batch` serializes its IPC).
    fn serde_bytes(bytes: &[u8]) -> impl Serialize + '_ {
        struct Raw<'a>(&'a [u8]);
        impl Serialize for Raw<'_> {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_bytes(self.0)
            }
        }
        Raw(bytes)
    }
}
