//! Batch operators, one per file, each an extension trait named after its method:
//! [`ReadLines`] (this worker's share of a line input, with flow control),
//! [`GenerateChunks`] (seeded generated input, chunk by chunk), [`FoldByKey`]
//! and [`SumByKey`] (a combiner per worker, then the owner of each key), and
//! [`WhenDone`] (act once a stream's frontier is empty).
//!
//! Time in a batch dataflow: sources stamp each chunk of input with its own time
//! (0, 1, 2, ...), which lets them read ahead of the consuming operator by a
//! bounded number of chunks (see [`crate::exec::WorkerCtx::flow`]). Operators whose
//! result depends on the whole input emit it at [`BatchTime::End`](crate::time::BatchTime::End), once their input
//! frontier is empty.

pub mod fold_by_key;
pub mod generate_chunks;
pub mod read_lines;
pub mod when_done;

pub use fold_by_key::{FoldByKey, SumByKey};
pub use generate_chunks::GenerateChunks;
pub use read_lines::ReadLines;
pub use when_done::WhenDone;

pub use weir_progress::route::key_hash;

/// Records an operator emits per activation before it yields, so that downstream
/// operators (and their memory) keep up.
pub const EMIT_BATCH: usize = 8 * 1024;
