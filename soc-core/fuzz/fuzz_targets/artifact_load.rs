//! Feeds arbitrary bytes to every artifact loader and scores a few lines with whatever loads.
//!
//! Random mutations almost never get past the artifact's CRC-32s, so each input is also tried
//! re-sealed (lengths and checksums recomputed) with each kind written in its header: that way
//! the fuzzer explores the postcard decoder and every model's validation. A panic anywhere,
//! or a load error other than `Error::InvalidModel`, is a crash.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../../tests/artifact_harness/mod.rs"]
mod artifact_harness;

fuzz_target!(|data: &[u8]| {
    artifact_harness::load_and_score(data);
    for resealed in artifact_harness::reseal_as_every_kind(data) {
        artifact_harness::load_and_score(&resealed);
    }
});
