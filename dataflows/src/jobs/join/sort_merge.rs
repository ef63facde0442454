//! Sort-merge join: each side is sorted by key in memory while it fits half the
//! budget, otherwise in sorted runs on disk that are merged at the end; the two
//! sorted streams are then merged, key group by key group. A build-side group
//! larger than the budget goes to disk and is re-read for each probe row.

use std::cell::Cell;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::path::PathBuf;
use std::rc::Rc;

use super::spill::{SpillDir, SpillFile, SpillReader, create as create_spill, row_bytes};
use super::{Emit, LocalStrategy, Row};
use weir_runtime::error::JobError;

#[derive(Default)]
struct Sorter {
    rows: Vec<Row>,
    bytes: usize,
    runs: Vec<SpillFile>,
}

impl Sorter {
    fn push(&mut self, row: Row, limit: usize, spill: &mut SpillDir) -> Result<(), JobError> {
        self.bytes += row_bytes(&row);
        self.rows.push(row);
        if self.bytes > limit {
            self.write_run(spill)?;
        }
        Ok(())
    }

    fn write_run(&mut self, spill: &mut SpillDir) -> Result<(), JobError> {
        let mut rows = std::mem::take(&mut self.rows);
        rows.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        let mut writer = create_spill(spill)?;
        for (key, text) in rows {
            writer.push(&key, &text)?;
        }
        self.runs.push(writer.finish()?);
        self.bytes = 0;
        Ok(())
    }

    fn into_stream(mut self, spill: &mut SpillDir) -> Result<RowStream, JobError> {
        if self.runs.is_empty() {
            self.rows.sort_unstable_by(|a, b| a.0.cmp(&b.0));
            return Ok(RowStream::Memory(self.rows.into_iter().peekable()));
        }
        if !self.rows.is_empty() {
            self.write_run(spill)?;
        }
        let mut readers = Vec::with_capacity(self.runs.len());
        let mut heap = BinaryHeap::new();
        for (index, run) in self.runs.iter().enumerate() {
            let mut reader = run.read()?;
            if let Some((key, text)) = reader.next_row()? {
                heap.push(Reverse((key, text, index)));
            }
            readers.push(reader);
        }
        Ok(RowStream::Merge { heap, readers })
    }
}

/// Rows in key order, from memory or merged from sorted runs.
enum RowStream {
    Memory(std::iter::Peekable<std::vec::IntoIter<Row>>),
    Merge {
        heap: BinaryHeap<Reverse<(String, String, usize)>>,
        readers: Vec<SpillReader>,
    },
}

impl RowStream {
    fn peek_key(&mut self) -> Option<&str> {
        match self {
            RowStream::Memory(rows) => rows.peek().map(|r| r.0.as_str()),
            RowStream::Merge { heap, .. } => heap.peek().map(|Reverse(r)| r.0.as_str()),
        }
    }

    fn next_row(&mut self) -> Result<Option<Row>, JobError> {
        match self {
            RowStream::Memory(rows) => Ok(rows.next()),
            RowStream::Merge { heap, readers } => {
                let Some(Reverse((key, text, index))) = heap.pop() else {
                    return Ok(None);
                };
                if let Some((k, t)) = readers[index].next_row()? {
                    heap.push(Reverse((k, t, index)));
                }
                Ok(Some((key, text)))
            }
        }
    }
}

/// The build-side rows of the current key.
enum Group {
    Memory(Vec<String>),
    Disk(SpillFile),
}

struct Merging {
    build: RowStream,
    probe: RowStream,
    key: Option<String>,
    group: Group,
}

/// The sort-merge join of one worker.
pub struct SortMerge {
    budget: usize,
    build: Sorter,
    probe: Sorter,
    spill: SpillDir,
    merging: Option<Merging>,
}

impl SortMerge {
    /// A join that keeps at most about `budget` bytes of rows in memory,
    /// spilling below `spill_dir` and counting spilled bytes in `spilled`.
    pub fn new(budget: usize, spill_dir: Option<PathBuf>, spilled: Rc<Cell<u64>>) -> Self {
        SortMerge {
            budget,
            build: Sorter::default(),
            probe: Sorter::default(),
            spill: SpillDir::new(spill_dir, spilled),
            merging: None,
        }
    }
}

impl Merging {
    /// Loads the build rows of `key` (the build stream is positioned at them).
    fn load_group(
        &mut self,
        key: &str,
        budget: usize,
        spill: &mut SpillDir,
    ) -> Result<(), JobError> {
        let mut rows = Vec::new();
        let mut bytes = 0;
        let mut writer: Option<super::spill::SpillWriter> = None;
        while self.build.peek_key() == Some(key) {
            let Some(row) = self.build.next_row()? else {
                break;
            };
            if let Some(w) = &mut writer {
                w.push(&row.0, &row.1)?;
                continue;
            }
            bytes += row_bytes(&row);
            rows.push(row.1);
            if bytes > budget {
                let mut w = create_spill(spill)?;
                for text in rows.drain(..) {
                    w.push(key, &text)?;
                }
                writer = Some(w);
            }
        }
        self.group = match writer {
            Some(w) => Group::Disk(w.finish()?),
            None => Group::Memory(rows),
        };
        self.key = Some(key.to_owned());
        Ok(())
    }
}

impl LocalStrategy for SortMerge {
    fn build(&mut self, row: Row) -> Result<(), JobError> {
        self.build.push(row, self.budget / 2, &mut self.spill)
    }

    fn build_done(&mut self) -> Result<(), JobError> {
        Ok(())
    }

    fn probe(&mut self, row: Row, _emit: &mut Emit) -> Result<(), JobError> {
        self.probe.push(row, self.budget / 2, &mut self.spill)
    }

    fn finish(&mut self, emit: &mut Emit, max: usize) -> Result<bool, JobError> {
        if self.merging.is_none() {
            let build = std::mem::take(&mut self.build).into_stream(&mut self.spill)?;
            let probe = std::mem::take(&mut self.probe).into_stream(&mut self.spill)?;
            self.merging = Some(Merging {
                build,
                probe,
                key: None,
                group: Group::Memory(Vec::new()),
            });
        }
        let Some(m) = self.merging.as_mut() else {
            return Ok(true);
        };
        let mut emitted = 0;
        loop {
            let Some(probe_key) = m.probe.peek_key() else {
                return Ok(true);
            };
            if m.key.as_deref() == Some(probe_key) {
                let Some((_, text)) = m.probe.next_row()? else {
                    continue;
                };
                match &m.group {
                    Group::Memory(rows) => {
                        for build in rows {
                            emit(build, &text);
                        }
                        emitted += rows.len();
                    }
                    Group::Disk(file) => {
                        let mut reader = file.read()?;
                        while let Some((_, build)) = reader.next_row()? {
                            emit(&build, &text);
                            emitted += 1;
                        }
                    }
                }
                if emitted >= max {
                    return Ok(false);
                }
                continue;
            }
            let probe_key = probe_key.to_owned();
            while m.build.peek_key().is_some_and(|k| k < probe_key.as_str()) {
                m.build.next_row()?;
            }
            if m.build.peek_key() == Some(probe_key.as_str()) {
                m.load_group(&probe_key, self.budget / 2, &mut self.spill)?;
            } else {
                while m.probe.peek_key() == Some(probe_key.as_str()) {
                    m.probe.next_row()?;
                }
            }
        }
    }

    fn spilled(&self) -> bool {
        self.spill.used()
    }
}
