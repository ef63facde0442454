//! An aggregation over updates: a `-U` or `-D` row takes back a row given
//! before, so each group's aggregates are DataFusion's retractable
//! accumulators (`retract_batch`), one set per group, restored from and
//! saved to the group's state every epoch it changes. Only aggregates whose
//! state takes rows back exactly stream here: COUNT, SUM and AVG without
//! DISTINCT, and MIN and MAX, which keep every value they hold
//! (`extremum`); the others are refused at plan time.
//!
//! A group's state counts its rows; a group whose rows are all taken back
//! is gone (its result is withdrawn with `-D`). As in Flink, a group that
//! has no state (it expired) ignores the rows taken back from it, and a
//! group asked to take back more rows than it holds starts afresh from the
//! epoch's new rows.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch, UInt32Array, UInt64Array};
use arrow::compute::{cast, take};
use arrow::datatypes::{DataType, SchemaRef};
use arrow::row::RowConverter;
use datafusion_common::ScalarValue;
use datafusion_expr::Accumulator;
use datafusion_physical_expr::PhysicalExpr;
use weir_progress::byte_string::ByteString;

use super::extremum::{End, Extremum};
use super::{Epoch, GroupState};
use crate::error::{Result, SqlError};
use crate::exec::{Folding, arguments, evaluate, row_converter};
use crate::plan::Aggregate;
use crate::stream::aggregate::key_rows;
use crate::stream::keyed::Keyed;

/// Whether `aggregate` takes rows back exactly from its state (COUNT, SUM
/// and AVG without DISTINCT, as DataFusion's accumulators do it).
pub(crate) fn retractable(aggregate: &Aggregate) -> bool {
    let function = &aggregate.function;
    matches!(
        function.fun().name(),
        "count" | "sum" | "avg" | "min" | "max"
    ) && !function.is_distinct()
        && accumulator(aggregate).is_ok_and(|a| a.supports_retract_batch())
}

/// A fresh accumulator of `aggregate` that takes rows back: DataFusion's
/// sliding one, or for MIN and MAX one that keeps every value.
fn accumulator(aggregate: &Aggregate) -> Result<Box<dyn Accumulator>> {
    let function = &aggregate.function;
    let of = || function.field().data_type().clone();
    Ok(match function.fun().name() {
        "min" => Box::new(Extremum::new(End::Min, of())?),
        "max" => Box::new(Extremum::new(End::Max, of())?),
        _ => function.create_sliding_accumulator()?,
    })
}

/// How an aggregation over updates folds its groups.
pub(super) struct Retractor {
    group: Vec<Arc<dyn PhysicalExpr>>,
    aggregates: Vec<Aggregate>,
    /// Group keys as bytes.
    keys: RowConverter,
    /// Every aggregate's state, then the group's row count, as bytes.
    states: RowConverter,
    /// How many state columns each aggregate has.
    widths: Vec<usize>,
    output: SchemaRef,
}

/// The rows of a group an epoch gives, and those it takes back.
type Signs = (Vec<u32>, Vec<u32>);

/// An aggregate's arguments, and which rows its filter keeps.
type Arguments = (Vec<ArrayRef>, Option<Vec<bool>>);

/// A group's accumulators and how many rows it holds.
struct Group {
    accumulators: Vec<Box<dyn Accumulator>>,
    rows: u64,
}

impl Retractor {
    pub(super) fn new(folding: &Folding) -> Result<Retractor> {
        let aggregates = folding.aggregates().to_vec();
        let mut types: Vec<DataType> = Vec::new();
        let mut widths = Vec::new();
        for a in &aggregates {
            let state = accumulator(a)?.state()?;
            widths.push(state.len());
            types.extend(state.iter().map(ScalarValue::data_type));
        }
        types.push(DataType::UInt64);
        let output = Arc::clone(folding.output());
        let k = folding.keys();
        Ok(Retractor {
            group: folding.group().to_vec(),
            keys: row_converter(output.fields()[..k].iter().map(|f| f.data_type()))?,
            states: row_converter(&types)?,
            aggregates,
            widths,
            output,
        })
    }

    /// Folds `batch` (updates: the input's columns, then `op`) into the
    /// groups of `state`.
    pub(super) fn apply(&self, batch: &RecordBatch, state: &Keyed<GroupState>) -> Result<Epoch> {
        let (order, signs) = self.split(batch)?;
        let arguments = self.arguments(batch)?;
        let mut epoch = Epoch::default();
        let (mut before, mut after) = (Vec::new(), Vec::new());
        for (key, (adds, retracts)) in order.into_iter().zip(signs) {
            let held = match state.get(&key) {
                Some((_, bytes)) => Some(self.restore(bytes)?),
                None => None,
            };
            let mut group = match held {
                Some(mut g) => {
                    before.push((key.clone(), self.results(&mut g)?));
                    g
                }
                None => self.fresh()?,
            };
            // what the epoch gives counts (a join gives a pair and takes it
            // back in one epoch when both its rows change); a group asked
            // for more starts afresh from the epoch's new rows
            let retracts = match group.rows + adds.len() as u64 >= retracts.len() as u64 {
                true => retracts,
                false => {
                    group = self.fresh()?;
                    Vec::new()
                }
            };
            self.feed(&mut group, &arguments, &adds, false)?;
            self.feed(&mut group, &arguments, &retracts, true)?;
            group.rows = group.rows + adds.len() as u64 - retracts.len() as u64;
            if group.rows == 0 {
                epoch.states.push((key, None));
                continue;
            }
            let saved = self.save(&mut group)?;
            after.push((key.clone(), self.results(&mut group)?));
            epoch.states.push((key, Some(saved)));
        }
        epoch.before = self.batch(before)?;
        epoch.after = self.batch(after)?;
        Ok(epoch)
    }

    /// The groups of `batch`'s rows in order of first appearance, and each
    /// group's rows given and taken back.
    fn split(&self, batch: &RecordBatch) -> Result<(Vec<ByteString>, Vec<Signs>)> {
        let n = batch.num_rows();
        let op = batch
            .column(batch.num_columns() - 1)
            .as_string_opt::<i32>()
            .ok_or_else(|| SqlError::Plan("updates without an op column".into()))?;
        let keys: Vec<ArrayRef> = self
            .group
            .iter()
            .map(|e| evaluate(e, batch))
            .collect::<Result<_>>()?;
        let mut at: HashMap<ByteString, usize> = HashMap::new();
        let (mut order, mut signs) = (Vec::new(), Vec::<Signs>::new());
        for (i, key) in key_rows(&self.keys, &keys, n)?.into_iter().enumerate() {
            let g = *at.entry(key.clone()).or_insert_with(|| {
                order.push(key);
                signs.push(Default::default());
                signs.len() - 1
            });
            match op.is_valid(i).then(|| op.value(i)) {
                Some("+I") | Some("+U") => signs[g].0.push(i as u32),
                Some("-U") | Some("-D") => signs[g].1.push(i as u32),
                other => {
                    return Err(SqlError::Execution(format!(
                        "an update of kind {other:?} (+I, -U, +U or -D expected)"
                    )));
                }
            }
        }
        Ok((order, signs))
    }

    /// Every aggregate's arguments over `batch`, with the rows its filter
    /// keeps.
    fn arguments(&self, batch: &RecordBatch) -> Result<Vec<Arguments>> {
        self.aggregates
            .iter()
            .map(|a| {
                let (values, filter) = arguments(a, batch)?;
                let kept = match filter {
                    Some(mask) => {
                        let mask = mask.as_boolean_opt().ok_or_else(|| {
                            SqlError::Plan("an aggregate's filter is not boolean".into())
                        })?;
                        Some(
                            (0..mask.len())
                                .map(|i| mask.is_valid(i) && mask.value(i))
                                .collect(),
                        )
                    }
                    None => None,
                };
                Ok((values, kept))
            })
            .collect()
    }

    /// Gives (or takes back, if `retract`) rows `at` to the group.
    fn feed(
        &self,
        group: &mut Group,
        arguments: &[Arguments],
        at: &[u32],
        retract: bool,
    ) -> Result<()> {
        if at.is_empty() {
            return Ok(());
        }
        for (acc, (values, kept)) in group.accumulators.iter_mut().zip(arguments) {
            let at: UInt32Array = match kept {
                Some(kept) => at.iter().copied().filter(|&i| kept[i as usize]).collect(),
                None => at.iter().copied().collect(),
            };
            let values = values
                .iter()
                .map(|v| Ok(take(v, &at, None)?))
                .collect::<Result<Vec<_>>>()?;
            match retract {
                true => acc.retract_batch(&values)?,
                false => acc.update_batch(&values)?,
            }
        }
        Ok(())
    }

    fn fresh(&self) -> Result<Group> {
        let accumulators = self
            .aggregates
            .iter()
            .map(accumulator)
            .collect::<Result<_>>()?;
        Ok(Group {
            accumulators,
            rows: 0,
        })
    }

    /// The group saved as `bytes`.
    fn restore(&self, bytes: &[u8]) -> Result<Group> {
        let parser = self.states.parser();
        let columns = self.states.convert_rows([parser.parse(bytes)])?;
        let mut group = self.fresh()?;
        let mut at = 0;
        for (acc, width) in group.accumulators.iter_mut().zip(&self.widths) {
            acc.merge_batch(&columns[at..at + width])?;
            at += width;
        }
        let rows = columns
            .get(at)
            .and_then(|c| c.as_any().downcast_ref::<UInt64Array>())
            .filter(|c| c.len() == 1)
            .ok_or_else(|| SqlError::Plan("a group's state without its row count".into()))?;
        group.rows = rows.value(0);
        Ok(group)
    }

    /// The group as bytes.
    fn save(&self, group: &mut Group) -> Result<ByteString> {
        let mut columns = Vec::new();
        for acc in &mut group.accumulators {
            for value in acc.state()? {
                columns.push(value.to_array()?);
            }
        }
        columns.push(Arc::new(UInt64Array::from(vec![group.rows])));
        let rows = self.states.convert_columns(&columns)?;
        Ok(ByteString::from(rows.row(0).as_ref()))
    }

    /// The group's aggregates' values.
    fn results(&self, group: &mut Group) -> Result<Vec<ScalarValue>> {
        group
            .accumulators
            .iter_mut()
            .map(|a| Ok(a.evaluate()?))
            .collect()
    }

    /// The results of groups (keys as bytes, aggregates' values) as a batch
    /// of the aggregation's output.
    fn batch(&self, groups: Vec<(ByteString, Vec<ScalarValue>)>) -> Result<Option<RecordBatch>> {
        if groups.is_empty() {
            return Ok(None);
        }
        let fields = self.output.fields();
        let k = fields.len() - self.aggregates.len();
        let mut columns: Vec<ArrayRef> = match k {
            0 => Vec::new(),
            _ => {
                let parser = self.keys.parser();
                let rows: Vec<_> = groups.iter().map(|(key, _)| parser.parse(key)).collect();
                self.keys.convert_rows(rows)?
            }
        };
        for (j, field) in fields[k..].iter().enumerate() {
            let values = groups.iter().map(|(_, v)| v[j].clone());
            let column = ScalarValue::iter_to_array(values)?;
            columns.push(cast(&column, field.data_type())?);
        }
        Ok(Some(RecordBatch::try_new(
            Arc::clone(&self.output),
            columns,
        )?))
    }
}
