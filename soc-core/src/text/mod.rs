//! Text features.
