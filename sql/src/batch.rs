//! A record batch that can cross processes: within a process timely moves it
//! as it is; between processes it travels as Arrow IPC (a stream of one
//! batch, schema included).

use std::io::Cursor;

use arrow::array::RecordBatch;
use arrow::ipc::reader::StreamReader;
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
        let mut reader =
            StreamReader::try_new(Cursor::new(bytes), None).map_err(D::Error::custom)?;
        match reader.next() {
            Some(batch) => batch.map(Batch).map_err(D::Error::custom),
            None => Err(D::Error::custom("an IPC stream without a batch")),
        }
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
    }
}
