//! Iterative machine learning on weir: blocked ALS and CoCoA as timely
//! iterations.
//!
//! How the modules depend on each other:
//! - [`ratings`] reads rating files (or generates synthetic ratings on the
//!   workers) and splits them into train and test, the same way at any
//!   worker count.
//! - [`als`] is blocked ALS: [`als::layout`] places each worker's share of
//!   the ratings once, [`als::solve`] is one least-squares solve, and the
//!   loop converges through `weir-progress`'s gate and checkpoints through
//!   its loop state; [`als::reference`] is the sequential version.
//! - [`model`] writes and reads trained factors and recommends items.
//! - [`libsvm`] reads labelled sparse examples (or generates them); [`cocoa`]
//!   is CoCoA/CoCoA+ for the hinge-loss SVM on them, with its sequential
//!   reference and the mini-batch SGD baseline.
//! - [`jobs`] are what the CLI runs, on `weir-dataflows`' job runner.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod als;
pub mod cocoa;
pub mod jobs;
pub mod libsvm;
pub mod model;
pub mod ratings;
