//! Criterion benches of the detection hot paths on the seeded synthetic corpus:
//! TF-IDF transform, isolation-forest and random-forest scoring, `Detector::score` (batch),
//! `Detector::score_one` and `DetectorParams::fit`. `cargo bench -p soc-core --bench detector`.

#[path = "common/mod.rs"]
mod common;

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use soc_core::{DetectorParams, IsolationForestParams, Matrix, RandomForestParams, TfidfParams};

const TRAIN_LINES: usize = 20_000;
const TEST_LINES: usize = 2_000;
const SEED: u64 = 42;

fn benches(c: &mut Criterion) {
    let (texts, labels) = common::synthetic_corpus(TRAIN_LINES + TEST_LINES, SEED);
    let (train, test) = texts.split_at(TRAIN_LINES);
    let train_labels = &labels[..TRAIN_LINES];
    let y: Vec<i64> = train_labels.iter().map(|&l| i64::from(l)).collect();

    let (vectorizer, x) = TfidfParams::default()
        .fit_transform(train)
        .expect("fit TF-IDF");
    let iso = IsolationForestParams {
        random_state: Some(SEED),
        ..Default::default()
    }
    .fit(Matrix::from(&x))
    .expect("fit isolation forest");
    let rf = RandomForestParams {
        random_state: Some(SEED),
        ..Default::default()
    }
    .fit(Matrix::from(&x), &y)
    .expect("fit random forest");
    let detector = DetectorParams {
        random_state: Some(SEED),
        ..Default::default()
    }
    .fit(train, Some(train_labels))
    .expect("fit detector");
    let x_test = vectorizer.transform(test);

    let mut group = c.benchmark_group("batch");
    group.throughput(Throughput::Elements(TEST_LINES as u64));
    group.measurement_time(Duration::from_secs(5));
    group.sample_size(20);
    group.bench_function("tfidf_transform", |b| {
        b.iter(|| vectorizer.transform(black_box(test)))
    });
    group.bench_function("isolation_forest_score_samples", |b| {
        b.iter(|| iso.score_samples(Matrix::from(black_box(&x_test))))
    });
    group.bench_function("random_forest_predict_proba", |b| {
        b.iter(|| rf.predict_proba(Matrix::from(black_box(&x_test))))
    });
    group.bench_function("detector_score", |b| {
        b.iter(|| detector.score(black_box(test)))
    });
    group.finish();

    let mut group = c.benchmark_group("single");
    group.throughput(Throughput::Elements(1));
    let mut i = 0;
    group.bench_function("detector_score_one", |b| {
        b.iter(|| {
            i = (i + 1) % test.len();
            detector.score_one(black_box(&test[i]))
        })
    });
    group.finish();

    let mut group = c.benchmark_group("fit");
    group.throughput(Throughput::Elements(TRAIN_LINES as u64));
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(20));
    group.bench_function("detector_fit", |b| {
        b.iter(|| {
            DetectorParams {
                random_state: Some(SEED),
                ..Default::default()
            }
            .fit(black_box(train), Some(train_labels))
        })
    });
    group.finish();
}

criterion_group!(detector_benches, benches);
criterion_main!(detector_benches);
