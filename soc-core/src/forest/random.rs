//! Random forest.
