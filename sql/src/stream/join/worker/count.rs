//! What a side of a join without a time bound owes as the rows its rows
//! meet come and go (Flink's regular joins keep the same count per row):
//! each held row counts the rows of the other side it meets. A semi
//! join's row is owed while its count is above zero, an anti or outer
//! join's while it is zero (padded with nulls for an outer join); when an
//! epoch moves a row across that line, what it owes goes out (`+I`) or is
//! taken back (`-D`). A new row owed goes out at once; a row taken back
//! (`-U`, `-D` of an updating side) takes back what it owed.

use std::collections::BTreeMap;

use arrow::array::RecordBatch;
use weir_progress::byte_string::ByteString;

use super::super::held::{Held, set_matches, take_back};
use super::super::{Owes, Side};
use super::{HeldRows, Met, Worker};
use crate::batch::Batch;
use crate::error::Result;
use crate::stream::keyed::Keyed;

/// One side's rows of an epoch: new and taken back (each with its keys),
/// held (those the other side's rows may meet), and the rows among them
/// that met new rows of the other side (`met`) and rows it took back
/// (`unmet`), as often as they met one.
pub(super) struct Rows<'a> {
    pub(super) new: (Option<&'a RecordBatch>, &'a [ByteString]),
    pub(super) gone: (Option<&'a RecordBatch>, &'a [ByteString]),
    pub(super) held: Option<&'a HeldRows>,
    pub(super) met: &'a Met,
    pub(super) unmet: &'a Met,
}

impl Owes {
    /// Whether a row that meets `count` rows owes its row.
    fn owed_at(self, count: u32) -> bool {
        match self {
            Owes::Nothing => false,
            Owes::Semi => count > 0,
            Owes::Anti | Owes::Padded => count == 0,
        }
    }
}

impl Worker {
    /// Counts the rows that `side`'s rows of `epoch` meet, giving out and
    /// taking back what they owe as their counts cross the line, and holds
    /// the new rows and takes back those gone.
    pub(super) fn count(
        &mut self,
        state: &mut Keyed<Held>,
        (side, epoch): (Side, u64),
        rows: Rows<'_>,
        out: &mut Vec<Batch>,
    ) -> Result<()> {
        let (s, owes) = (side.index(), self.owes[side.index()]);
        if let Some(held) = rows.held {
            let mut moved: BTreeMap<u32, i64> = BTreeMap::new();
            for &i in &rows.met.held {
                *moved.entry(i).or_default() += 1;
            }
            for &i in &rows.unmet.held {
                *moved.entry(i).or_default() -= 1;
            }
            let (mut given, mut taken, mut counts) = (Vec::new(), Vec::new(), Vec::new());
            for (i, by) in moved {
                let before = held.matches[i as usize];
                let after = clamp(i64::from(before) + by);
                match (owes.owed_at(before), owes.owed_at(after)) {
                    (false, true) => given.push(i),
                    (true, false) => taken.push(i),
                    _ => {}
                }
                counts.push((&held.places[i as usize], after));
            }
            set_matches(state, s, &counts);
            self.give(side, &held.batch, (&given, "+I"), out)?;
            self.give(side, &held.batch, (&taken, "-D"), out)?;
        }
        if let (Some(batch), keys) = rows.new {
            let mut counts = vec![0i64; batch.num_rows()];
            for &i in &rows.met.new {
                counts[i as usize] += 1;
            }
            for &i in &rows.unmet.new {
                counts[i as usize] -= 1;
            }
            let counts: Vec<u32> = counts.into_iter().map(clamp).collect();
            let owed: Vec<u32> = (0..batch.num_rows() as u32)
                .filter(|&i| owes.owed_at(counts[i as usize]))
                .collect();
            self.hold(state, (side, epoch), (batch, keys), &counts)?;
            self.give(side, batch, (&owed, "+I"), out)?;
        }
        if let (Some(batch), keys) = rows.gone {
            let bytes = self.rows[s].convert_columns(batch.columns())?;
            let owed: Vec<u32> = take_back(state, s, &bytes, keys)
                .into_iter()
                .enumerate()
                .filter(|(_, matches)| matches.is_some_and(|m| owes.owed_at(m)))
                .map(|(i, _)| i as u32)
                .collect();
            self.give(side, batch, (&owed, "-D"), out)?;
        }
        Ok(())
    }

    /// What the rows at `rows` of `batch` (of `side`) owe, as updates of
    /// kind `op`.
    fn give(
        &self,
        side: Side,
        batch: &RecordBatch,
        (rows, op): (&[u32], &str),
        out: &mut Vec<Batch>,
    ) -> Result<()> {
        if let Some(owed) = self.owed(side, batch, rows)? {
            out.push(self.signed(owed, op)?);
        }
        Ok(())
    }
}

/// A count of rows met, never below zero.
fn clamp(count: i64) -> u32 {
    u32::try_from(count.max(0)).unwrap_or(u32::MAX)
}
