//! Unnest: one row per element of a row's list columns, the other columns
//! repeated, as DataFusion's `UnnestExec` does. Several list columns unnest
//! side by side, the shorter ones padded with nulls; a null or empty list
//! gives no row, or one row with a null, as the query's null handling says.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, GenericListArray, OffsetSizeTrait, RecordBatch, UInt32Array};
use arrow::compute::take;
use arrow::datatypes::{DataType, SchemaRef};
use datafusion_common::NullHandling;

use crate::error::{Result, SqlError};

/// What an unnest does, in terms of its input's columns.
#[derive(Debug)]
pub struct UnnestSpec {
    /// The input columns that are lists to unnest (depth 1).
    pub lists: Vec<usize>,
    /// For each output column, the input column it comes from.
    pub sources: Vec<usize>,
    /// What a null or empty list gives.
    pub nulls: NullHandling,
    /// The output columns.
    pub schema: SchemaRef,
}

/// A list column's offsets and nulls, whatever its offset width.
struct Lists {
    /// Start and length of each row's list.
    spans: Vec<(usize, usize)>,
    nulls: Option<arrow::buffer::NullBuffer>,
    values: ArrayRef,
}

impl Lists {
    fn of(array: &ArrayRef) -> Result<Lists> {
        fn spans<O: OffsetSizeTrait>(list: &GenericListArray<O>) -> Lists {
            let offsets = list.value_offsets();
            Lists {
                spans: offsets
                    .windows(2)
                    .map(|w| (w[0].as_usize(), (w[1] - w[0]).as_usize()))
                    .collect(),
                nulls: list.nulls().cloned(),
                values: Arc::clone(list.values()),
            }
        }
        Ok(match array.data_type() {
            DataType::List(_) => spans(
                array
                    .as_any()
                    .downcast_ref::<GenericListArray<i32>>()
                    .ok_or_else(not_list)?,
            ),
            DataType::LargeList(_) => spans(
                array
                    .as_any()
                    .downcast_ref::<GenericListArray<i64>>()
                    .ok_or_else(not_list)?,
            ),
            DataType::FixedSizeList(field, _) => {
                let list = arrow::compute::cast(array, &DataType::List(Arc::clone(field)))?;
                return Lists::of(&list);
            }
            other => {
                return Err(SqlError::Unsupported(format!(
                    "unnesting a column of type {other}"
                )));
            }
        })
    }

    fn is_null(&self, row: usize) -> bool {
        self.nulls.as_ref().is_some_and(|n| n.is_null(row))
    }

    /// The rows that `row`'s list gives under `nulls`.
    fn rows(&self, row: usize, nulls: NullHandling) -> usize {
        let len = self.spans[row].1;
        match (self.is_null(row), len, nulls) {
            (true, _, NullHandling::Drop)
            | (false, 0, NullHandling::Drop | NullHandling::Preserve) => 0,
            (true, _, _) | (false, 0, NullHandling::PreserveAndExpandEmpty) => 1,
            (false, len, _) => len,
        }
    }
}

fn not_list() -> SqlError {
    SqlError::Execution("a list column that is not a list array".into())
}

/// The rows of `batch`, unnested.
pub fn unnest(batch: &RecordBatch, spec: &UnnestSpec) -> Result<RecordBatch> {
    let lists = spec
        .lists
        .iter()
        .map(|&c| Ok((c, Lists::of(batch.column(c))?)))
        .collect::<Result<Vec<_>>>()?;
    // each output row: the input row it repeats, and its element index
    let mut repeated = Vec::new();
    let mut element = Vec::new();
    for row in 0..batch.num_rows() {
        let n = lists
            .iter()
            .map(|(_, l)| l.rows(row, spec.nulls))
            .max()
            .unwrap_or(0);
        for k in 0..n {
            repeated.push(row as u32);
            element.push(k);
        }
    }
    let repeated_rows = UInt32Array::from_iter_values(repeated.iter().copied());
    let columns = spec
        .sources
        .iter()
        .map(|&source| match lists.iter().find(|(c, _)| *c == source) {
            Some((_, list)) => {
                let indices: UInt32Array = repeated
                    .iter()
                    .zip(&element)
                    .map(|(&row, &k)| {
                        let (start, len) = list.spans[row as usize];
                        (!list.is_null(row as usize) && k < len).then(|| (start + k) as u32)
                    })
                    .collect();
                Ok(take(list.values.as_ref(), &indices, None)?)
            }
            None => Ok(take(batch.column(source).as_ref(), &repeated_rows, None)?),
        })
        .collect::<Result<Vec<_>>>()?;
    let options = arrow::array::RecordBatchOptions::new().with_row_count(Some(repeated.len()));
    Ok(RecordBatch::try_new_with_options(
        Arc::clone(&spec.schema),
        columns,
        &options,
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Int32Array, ListArray, StringArray};
    use arrow::datatypes::Int32Type;
    use arrow::datatypes::{Field, Schema};

    fn input() -> RecordBatch {
        let lists = ListArray::from_iter_primitive::<Int32Type, _, _>(vec![
            Some(vec![Some(1), Some(2)]),
            None,
            Some(vec![]),
            Some(vec![Some(3)]),
        ]);
        let names = StringArray::from(vec!["a", "b", "d", "e"]);
        RecordBatch::try_from_iter(vec![
            ("c1", Arc::new(lists) as ArrayRef),
            ("c2", Arc::new(names) as ArrayRef),
        ])
        .unwrap()
    }

    fn run(nulls: NullHandling) -> Vec<(Option<i32>, String)> {
        let schema = Arc::new(Schema::new(vec![
            Field::new("c1", DataType::Int32, true),
            Field::new("c2", DataType::Utf8, true),
        ]));
        let spec = UnnestSpec {
            lists: vec![0],
            sources: vec![0, 1],
            nulls,
            schema,
        };
        let out = unnest(&input(), &spec).unwrap();
        let values = out.column(0).as_any().downcast_ref::<Int32Array>().unwrap();
        let names = out
            .column(1)
            .as_any()
            .downcast_ref::<StringArray>()
            .unwrap();
        (0..out.num_rows())
            .map(|i| {
                (
                    values.is_valid(i).then(|| values.value(i)),
                    names.value(i).to_string(),
                )
            })
            .collect()
    }

    #[test]
    fn null_and_empty_lists_follow_the_null_handling() {
        let row = |v: Option<i32>, n: &str| (v, n.to_string());
        assert_eq!(
            run(NullHandling::Drop),
            vec![row(Some(1), "a"), row(Some(2), "a"), row(Some(3), "e")]
        );
        assert_eq!(
            run(NullHandling::Preserve),
            vec![
                row(Some(1), "a"),
                row(Some(2), "a"),
                row(None, "b"),
                row(Some(3), "e")
            ]
        );
        assert_eq!(
            run(NullHandling::PreserveAndExpandEmpty),
            vec![
                row(Some(1), "a"),
                row(Some(2), "a"),
                row(None, "b"),
                row(None, "d"),
                row(Some(3), "e")
            ]
        );
    }
}
