//! Isolation forest.
