//! What the benchmarks share with the integration tests, compiled from the tests' own copy
//! (`tests/it/support`), so there is one of each: synthetic journals (what a worker writes, with
//! no training) and a local single-node Slurm cluster.
#![allow(dead_code)]

#[path = "../../tests/it/support/cluster.rs"]
pub mod cluster;
#[path = "../../tests/it/support/synthetic.rs"]
mod synthetic;

pub use synthetic::*;
