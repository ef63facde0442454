//! A worker's side of a streaming join: its held rows' encodings and
//! expiry index, and the join of one epoch's new rows.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch, UInt32Array};
use arrow::compute::{cast, concat_batches, take};
use arrow::datatypes::{DataType, Int64Type, SchemaRef};
use arrow::row::RowConverter;
use datafusion_common::JoinType;
use weir_progress::byte_string::ByteString;
use weir_streaming::window::{Frontier, Watermark};

use super::{Expire, Held, Item, Routed, SIDES, Side, StreamJoin};
use crate::batch::Batch;
use crate::error::Result;
use crate::exec::{meeting, row_converter};
use crate::stream::keyed::{ByTime, Keyed};

/// A worker's encodings and index of its held rows.
pub(super) struct Worker {
    join: Arc<StreamJoin>,
    /// Each side's rows (columns and keys) as bytes.
    rows: [RowConverter; 2],
    /// Keys as bytes (as they route).
    keys: RowConverter,
    /// Each side's held keys by the expiry of their rows.
    expiring: [ByTime; 2],
}

impl Worker {
    pub(super) fn new(join: &Arc<StreamJoin>, state: &Keyed<Held>) -> Result<Worker> {
        let converter = |schema: &SchemaRef, from: usize| {
            row_converter(schema.fields()[from..].iter().map(|f| f.data_type()))
        };
        let [left, right] = &join.keyed;
        let k = join.spec.keys.left.len();
        let mut expiring: [ByTime; 2] = Default::default();
        for (key, Held(sides)) in state.iter() {
            for (side, rows) in sides.iter().enumerate() {
                for (expiry, _) in rows {
                    expiring[side]
                        .entry(*expiry)
                        .or_default()
                        .insert(key.clone());
                }
            }
        }
        Ok(Worker {
            join: Arc::clone(join),
            rows: [converter(left, 0)?, converter(right, 0)?],
            keys: converter(left, left.fields().len() - k)?,
            expiring,
        })
    }

    pub(super) fn apply(
        &mut self,
        epoch: u64,
        items: Vec<Routed>,
        state: &mut Keyed<Held>,
        out: &mut Vec<Batch>,
    ) -> Result<()> {
        if let Expire::After(_) = self.join.expiry {
            // rows whose time ran out before this epoch meet nothing more,
            // whether or not this worker ran in between
            for side in SIDES {
                self.expire(state, side, epoch.checked_sub(1));
            }
        }
        let mut new: [Vec<RecordBatch>; 2] = Default::default();
        let mut marks: [Vec<Watermark>; 2] = Default::default();
        for routed in items {
            let side = routed.side.index();
            match routed.item {
                Item::Rows(Batch(b)) if b.num_rows() > 0 => new[side].push(b),
                Item::Rows(_) => {}
                Item::Watermark(w) => marks[side].push(w),
            }
        }
        let [left, right] = new;
        let new = [
            self.concat(Side::Left, left)?,
            self.concat(Side::Right, right)?,
        ];
        let keys = [self.keys_of(&new[0])?, self.keys_of(&new[1])?];
        // the held rows each side's new rows meet
        let held = [
            self.held(state, Side::Left, &keys[1])?,
            self.held(state, Side::Right, &keys[0])?,
        ];
        let met = self.meet(&new, &held, out)?;
        for side in SIDES {
            let s = side.index();
            if let Some(rows) = &held[s] {
                let done: Vec<&(ByteString, usize)> = met[s]
                    .held
                    .iter()
                    .map(|&i| &rows.places[i as usize])
                    .collect();
                remove(state, s, &done);
            }
            if let Some(batch) = &new[s] {
                self.hold(state, (side, epoch), batch, &keys[s], &met[s].new)?;
            }
        }
        // how far each side's event time has come (its end is not kept: a
        // restored run with more input goes on from the last time)
        let mut reached = [None; 2];
        for side in SIDES {
            let s = side.index();
            reached[s] = match Watermark::combine(std::mem::take(&mut marks[s])) {
                Some(Frontier::At(moved)) => {
                    let at = state
                        .shared(side.watermark())
                        .map_or(moved, |w| w.max(moved));
                    state.set_shared(side.watermark(), at);
                    Some(at)
                }
                Some(Frontier::End) => Some(u64::MAX),
                None => state.shared(side.watermark()),
            };
        }
        for side in SIDES {
            let clock = match &self.join.expiry {
                Expire::EventTime(_) => reached[side.other().index()],
                Expire::After(_) => Some(epoch),
            };
            self.expire(state, side, clock);
        }
        Ok(())
    }

    /// Joins the new rows of each side with the other side's held and new
    /// rows (each pair once): the inner join's pairs, or a semi join's rows
    /// of its side that meet a row for the first time. Returns, per side,
    /// the rows done with (a semi join's emitted rows, which are not held).
    fn meet(
        &self,
        new: &[Option<RecordBatch>; 2],
        held: &[Option<HeldRows>; 2],
        out: &mut Vec<Batch>,
    ) -> Result<[Met; 2]> {
        let spec = &self.join.spec;
        let held = [
            held[0].as_ref().map(|h| &h.batch),
            held[1].as_ref().map(|h| &h.batch),
        ];
        // (left, right, whether each is new)
        let pairs = [
            (new[0].as_ref(), held[1], true, false),
            (held[0], new[1].as_ref(), false, true),
            (new[0].as_ref(), new[1].as_ref(), true, true),
        ];
        let mut met: [Met; 2] = Default::default();
        for (l, r, l_new, r_new) in pairs {
            let (Some(l), Some(r)) = (l, r) else { continue };
            let (li, ri) = meeting(l, r, spec)?;
            if li.is_empty() {
                continue;
            }
            match spec.join_type {
                JoinType::LeftSemi => met[0].add(l_new, li),
                JoinType::RightSemi => met[1].add(r_new, ri),
                _ => out.push(Batch(self.pairs(l, &li, r, &ri)?)),
            }
        }
        let semi = match spec.join_type {
            JoinType::LeftSemi => Some(0),
            JoinType::RightSemi => Some(1),
            _ => None,
        };
        if let Some(s) = semi {
            for (batch, rows) in [
                (new[s].as_ref(), &mut met[s].new),
                (held[s], &mut met[s].held),
            ] {
                rows.sort_unstable();
                rows.dedup();
                if let Some(batch) = batch
                    && !rows.is_empty()
                {
                    out.push(Batch(self.rows_of(batch, rows)?));
                }
            }
        }
        Ok(met)
    }

    /// The output of the pairs at `li` of `l` and `ri` of `r`.
    fn pairs(
        &self,
        l: &RecordBatch,
        li: &[u32],
        r: &RecordBatch,
        ri: &[u32],
    ) -> Result<RecordBatch> {
        let mut columns = columns_of(l, li, self.k())?;
        columns.extend(columns_of(r, ri, self.k())?);
        Ok(RecordBatch::try_new(
            Arc::clone(&self.join.spec.schema),
            columns,
        )?)
    }

    /// The output of the rows at `rows` of `batch` (a semi join's).
    fn rows_of(&self, batch: &RecordBatch, rows: &[u32]) -> Result<RecordBatch> {
        Ok(RecordBatch::try_new(
            Arc::clone(&self.join.spec.schema),
            columns_of(batch, rows, self.k())?,
        )?)
    }

    /// How many key columns each side's rows end with.
    fn k(&self) -> usize {
        self.join.spec.keys.left.len()
    }

    /// The new rows of `side`, as one batch.
    fn concat(&self, side: Side, batches: Vec<RecordBatch>) -> Result<Option<RecordBatch>> {
        if batches.is_empty() {
            return Ok(None);
        }
        Ok(Some(concat_batches(
            &self.join.keyed[side.index()],
            &batches,
        )?))
    }

    /// The key bytes of each row of `batch`.
    fn keys_of(&self, batch: &Option<RecordBatch>) -> Result<Vec<ByteString>> {
        let Some(b) = batch else {
            return Ok(Vec::new());
        };
        let rows = self
            .keys
            .convert_columns(&b.columns()[b.num_columns() - self.k()..])?;
        Ok(rows.iter().map(|r| ByteString::from(r.as_ref())).collect())
    }

    /// The rows of `side` held under any of `keys`, as one batch, with the
    /// place of each (its key, its index among the key's rows).
    fn held(
        &self,
        state: &Keyed<Held>,
        side: Side,
        keys: &[ByteString],
    ) -> Result<Option<HeldRows>> {
        let wanted: BTreeSet<&ByteString> = keys.iter().collect();
        let parser = self.rows[side.index()].parser();
        let mut rows = Vec::new();
        let mut places = Vec::new();
        for key in wanted {
            let Some(Held(sides)) = state.get(key) else {
                continue;
            };
            for (i, (_, bytes)) in sides[side.index()].iter().enumerate() {
                rows.push(parser.parse(bytes));
                places.push((key.clone(), i));
            }
        }
        if rows.is_empty() {
            return Ok(None);
        }
        let columns = self.rows[side.index()].convert_rows(rows)?;
        let batch = RecordBatch::try_new(Arc::clone(&self.join.keyed[side.index()]), columns)?;
        Ok(Some(HeldRows { batch, places }))
    }

    /// Holds the new rows of `side` of `epoch` (of keys `keys`) but those
    /// at `done`; those the other side's event time has passed (or, with a
    /// time to live, whose epochs have passed) go at the next `expire`.
    fn hold(
        &mut self,
        state: &mut Keyed<Held>,
        (side, epoch): (Side, u64),
        batch: &RecordBatch,
        keys: &[ByteString],
        done: &[u32],
    ) -> Result<()> {
        let expiries = match &self.join.expiry {
            Expire::EventTime(bounds) => match side {
                Side::Left => expiries(batch, &bounds.left)?,
                Side::Right => expiries(batch, &bounds.right)?,
            },
            Expire::After(epochs) => {
                let at = i64::try_from(epoch.saturating_add(*epochs)).unwrap_or(i64::MAX);
                vec![Some(at); batch.num_rows()]
            }
        };
        let rows = self.rows[side.index()].convert_columns(batch.columns())?;
        let mut done = done.iter().peekable();
        for (i, ((row, key), expiry)) in rows.iter().zip(keys).zip(expiries).enumerate() {
            if done.next_if(|&&d| d as usize == i).is_some() {
                continue;
            }
            let Some(expiry) = expiry else { continue };
            state.update(key.clone(), Held::default, |Held(sides)| {
                sides[side.index()].push((expiry, ByteString::from(row.as_ref())))
            });
            self.expiring[side.index()]
                .entry(expiry)
                .or_default()
                .insert(key.clone());
        }
        Ok(())
    }

    /// Drops the rows of `side` whose expiry the other side's event time
    /// (or, with a time to live, the epoch), `other`, has reached.
    fn expire(&mut self, state: &mut Keyed<Held>, side: Side, other: Option<u64>) {
        let Some(w) = other else {
            return;
        };
        let w = i64::try_from(w).unwrap_or(i64::MAX);
        let s = side.index();
        while let Some(entry) = self.expiring[s].first_entry() {
            if *entry.key() > w {
                break;
            }
            for key in entry.remove() {
                state.change(&key, |Held(sides)| {
                    sides[s].retain(|(expiry, _)| *expiry > w);
                    !sides.iter().all(Vec::is_empty)
                });
            }
        }
    }
}

/// Held rows of one side as a batch, and the place of each in the state
/// (its key, its index among the key's rows).
struct HeldRows {
    batch: RecordBatch,
    places: Vec<(ByteString, usize)>,
}

/// A semi join's rows of one side that met a row: among its new rows, and
/// among its held rows.
#[derive(Default)]
struct Met {
    new: Vec<u32>,
    held: Vec<u32>,
}

impl Met {
    fn add(&mut self, new: bool, rows: Vec<u32>) {
        match new {
            true => self.new.extend(rows),
            false => self.held.extend(rows),
        }
    }
}

/// Drops the held rows at `places` (key, index) of side `s`.
fn remove(state: &mut Keyed<Held>, s: usize, places: &[&(ByteString, usize)]) {
    let mut by_key: BTreeMap<&ByteString, BTreeSet<usize>> = BTreeMap::new();
    for (key, i) in places {
        by_key.entry(key).or_default().insert(*i);
    }
    for (key, gone) in by_key {
        state.change(key, |Held(sides)| {
            let mut i = 0;
            sides[s].retain(|_| {
                i += 1;
                !gone.contains(&(i - 1))
            });
            !sides.iter().all(Vec::is_empty)
        });
    }
}

/// The columns of `batch` but its last `k` (its keys), at `rows`.
fn columns_of(batch: &RecordBatch, rows: &[u32], k: usize) -> Result<Vec<ArrayRef>> {
    let indices = UInt32Array::from(rows.to_vec());
    batch.columns()[..batch.num_columns() - k]
        .iter()
        .map(|c| Ok(take(c, &indices, None)?))
        .collect()
}

/// Each row's expiry: the smallest of its `column + offset` over `rules`
/// (`None` for a row with a null time, which meets no row).
fn expiries(batch: &RecordBatch, rules: &[(usize, i64)]) -> Result<Vec<Option<i64>>> {
    let mut least: Vec<Option<i64>> = vec![Some(i64::MAX); batch.num_rows()];
    for (column, offset) in rules {
        let ticks: ArrayRef = cast(batch.column(*column), &DataType::Int64)?;
        let ticks = ticks.as_primitive::<Int64Type>();
        for (i, at) in least.iter_mut().enumerate() {
            *at = match (*at, ticks.is_valid(i)) {
                (Some(a), true) => Some(a.min(ticks.value(i).saturating_add(*offset))),
                _ => None,
            };
        }
    }
    Ok(least)
}
