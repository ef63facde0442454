//! Algorithms built from timely operators, apart from the operators
//! themselves (as differential-dataflow keeps them): each has a sequential
//! reference next to it, which the tests compare it with.

pub mod graphs;
