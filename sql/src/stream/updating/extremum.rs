//! MIN and MAX over updates: taking back the current minimum needs the next
//! one, so the accumulator keeps every value it holds with its count (as
//! Flink's retracting MIN/MAX keep a map view), ordered by the value's
//! bytes in Arrow's row format, which sort as the values do. DataFusion's
//! sliding MIN/MAX assume values leave in the order they came (a window
//! frame), which updates do not.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, BinaryArray, ListArray, UInt64Array};
use arrow::datatypes::{DataType, UInt64Type};
use arrow::row::{RowConverter, SortField};
use datafusion_common::{DataFusionError, ScalarValue};
use datafusion_expr::Accumulator;

/// Which end of the values.
#[derive(Clone, Copy, Debug)]
pub(super) enum End {
    Min,
    Max,
}

/// The multiset of a group's values, for its minimum or maximum.
#[derive(Debug)]
pub(super) struct Extremum {
    end: End,
    data_type: DataType,
    /// A value as row bytes.
    converter: RowConverter,
    /// Values as row bytes, with how many times each is held.
    values: BTreeMap<Vec<u8>, u64>,
}

impl Extremum {
    pub(super) fn new(end: End, data_type: DataType) -> datafusion_common::Result<Extremum> {
        Ok(Extremum {
            end,
            converter: RowConverter::new(vec![SortField::new(data_type.clone())])?,
            data_type,
            values: BTreeMap::new(),
        })
    }

    /// Adds `by` to the count of each non-null value of `values`.
    fn count(&mut self, values: &ArrayRef, by: i64) -> datafusion_common::Result<()> {
        let rows = self
            .converter
            .convert_columns(std::slice::from_ref(values))?;
        for (i, row) in rows.iter().enumerate() {
            if values.is_null(i) {
                continue;
            }
            let key = row.as_ref().to_vec();
            let n = self.values.get(&key).copied().unwrap_or(0) as i64 + by;
            match n > 0 {
                true => self.values.insert(key, n as u64),
                false => self.values.remove(&key),
            };
        }
        Ok(())
    }
}

fn list(values: ArrayRef) -> ScalarValue {
    ScalarValue::List(Arc::new(ListArray::new(
        Arc::new(arrow::datatypes::Field::new_list_field(
            values.data_type().clone(),
            true,
        )),
        arrow::buffer::OffsetBuffer::from_lengths([values.len()]),
        values,
        None,
    )))
}

impl Accumulator for Extremum {
    fn update_batch(&mut self, values: &[ArrayRef]) -> datafusion_common::Result<()> {
        self.count(&values[0], 1)
    }

    fn retract_batch(&mut self, values: &[ArrayRef]) -> datafusion_common::Result<()> {
        self.count(&values[0], -1)
    }

    fn supports_retract_batch(&self) -> bool {
        true
    }

    fn evaluate(&mut self) -> datafusion_common::Result<ScalarValue> {
        let end = match self.end {
            End::Min => self.values.keys().next(),
            End::Max => self.values.keys().next_back(),
        };
        let Some(bytes) = end else {
            return ScalarValue::try_from(&self.data_type);
        };
        let parser = self.converter.parser();
        let columns = self.converter.convert_rows([parser.parse(bytes)])?;
        ScalarValue::try_from_array(&columns[0], 0)
    }

    /// The values' bytes and their counts, as two lists.
    fn state(&mut self) -> datafusion_common::Result<Vec<ScalarValue>> {
        let keys = BinaryArray::from_iter_values(self.values.keys());
        let counts = UInt64Array::from_iter_values(self.values.values().copied());
        Ok(vec![list(Arc::new(keys)), list(Arc::new(counts))])
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> datafusion_common::Result<()> {
        let bad = || DataFusionError::Internal("a MIN/MAX state of another shape".into());
        let (keys, counts) = match states {
            [keys, counts] => (
                keys.as_list_opt::<i32>().ok_or_else(bad)?,
                counts.as_list_opt::<i32>().ok_or_else(bad)?,
            ),
            _ => return Err(bad()),
        };
        for row in 0..keys.len() {
            let (k, c) = (keys.value(row), counts.value(row));
            let k = k.as_binary_opt::<i32>().ok_or_else(bad)?;
            let c = c.as_primitive_opt::<UInt64Type>().ok_or_else(bad)?;
            for (key, n) in k.iter().zip(c.iter()) {
                if let (Some(key), Some(n)) = (key, n) {
                    *self.values.entry(key.to_vec()).or_insert(0) += n;
                }
            }
        }
        Ok(())
    }

    fn size(&self) -> usize {
        size_of_val(self) + self.values.keys().map(|k| k.len() + 32).sum::<usize>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::Int64Array;

    fn ints(v: &[Option<i64>]) -> ArrayRef {
        Arc::new(Int64Array::from(v.to_vec()))
    }

    #[test]
    fn taking_back_the_minimum_leaves_the_next_one() {
        let mut min = Extremum::new(End::Min, DataType::Int64).unwrap();
        let mut max = Extremum::new(End::Max, DataType::Int64).unwrap();
        for acc in [&mut min, &mut max] {
            acc.update_batch(&[ints(&[Some(5), Some(-3), None, Some(9), Some(-3)])])
                .unwrap();
        }
        assert_eq!(min.evaluate().unwrap(), ScalarValue::Int64(Some(-3)));
        assert_eq!(max.evaluate().unwrap(), ScalarValue::Int64(Some(9)));
        // -3 came twice: once taken back, it is still the minimum
        min.retract_batch(&[ints(&[Some(-3)])]).unwrap();
        assert_eq!(min.evaluate().unwrap(), ScalarValue::Int64(Some(-3)));
        min.retract_batch(&[ints(&[Some(-3)])]).unwrap();
        assert_eq!(min.evaluate().unwrap(), ScalarValue::Int64(Some(5)));
        max.retract_batch(&[ints(&[Some(9)])]).unwrap();
        assert_eq!(max.evaluate().unwrap(), ScalarValue::Int64(Some(5)));
        // through its state, into another accumulator
        let state = min.state().unwrap();
        let arrays: Vec<ArrayRef> = state.iter().map(|s| s.to_array().unwrap()).collect();
        let mut restored = Extremum::new(End::Min, DataType::Int64).unwrap();
        restored.merge_batch(&arrays).unwrap();
        assert_eq!(restored.evaluate().unwrap(), ScalarValue::Int64(Some(5)));
        restored
            .retract_batch(&[ints(&[Some(5), Some(9)])])
            .unwrap();
        assert_eq!(restored.evaluate().unwrap(), ScalarValue::Int64(None));
    }
}
