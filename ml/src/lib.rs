//! Iterative machine learning on weir: blocked ALS and CoCoA as timely iterations.
//!
//! Depends on `weir-progress` (convergence detection, loop checkpoints) and
//! `weir-dataflows` (inputs, job runner). Algorithms will live here, each beside a
//! small sequential reference that the tests compare against.
#![forbid(unsafe_code)]
#![deny(missing_docs)]
