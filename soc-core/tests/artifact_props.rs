//! Properties of model artifact loading: every kind round-trips exactly; a truncated, corrupt
//! or hostile file is an `Error::InvalidModel`, never a panic, a hang or a memory blow-up; and
//! a hostile model that loads can be used to score without panicking.
//!
//! Random byte damage almost never gets past the CRC-32s, so most properties re-seal the damaged
//! file (recomputing lengths and checksums) to reach the postcard decoder and each model's
//! `after_load` validation. The structured properties go further: they decode the payload into
//! mirror structs of the serialized layout, break one field (tree links, feature indices,
//! thresholds, lengths, parameters) and encode it again.

mod artifact_harness;

use std::sync::OnceLock;
use std::sync::mpsc;
use std::time::Duration;

use artifact_harness::{KINDS, LINES, load_and_score, reseal, seal, split};
use ndarray::Array2;
use proptest::prelude::*;
use serde::{Deserialize, Serialize};
use soc_core::{
    Detector, DetectorParams, Error, IsolationForest, IsolationForestParams, Matrix,
    RandomForestClassifier, RandomForestParams, RiskParams, RiskScorer, TfidfParams,
    TfidfVectorizer,
};

// ---------------------------------------------------------------------------------------------
// Small fitted models, one of each kind, fitted once.

fn corpus() -> (Vec<String>, Vec<bool>) {
    let mut lines: Vec<String> = (0..120)
        .map(|i| {
            format!(
                "GET /catalog/item?id={} HTTP/1.1 200 {}",
                i % 17,
                900 + i % 31
            )
        })
        .collect();
    lines.extend((0..12).map(|i| format!("GET /item?id={i} UNION SELECT pass FROM users--")));
    let labels = (0..lines.len()).map(|i| i >= 120).collect();
    (lines, labels)
}

fn dense_rows() -> Array2<f64> {
    Array2::from_shape_fn((64, 5), |(r, c)| {
        ((r * 7 + c * 13) % 11) as f64 + if r >= 60 { 40.0 } else { 0.0 }
    })
}

fn class_labels() -> Vec<i64> {
    (0..64).map(|r| i64::from(r % 3 == 0) * 2).collect()
}

struct Models {
    tfidf: TfidfVectorizer,
    isolation: IsolationForest,
    forest: RandomForestClassifier,
    risk: RiskScorer,
    detector: Detector,
}

fn models() -> &'static Models {
    static MODELS: OnceLock<Models> = OnceLock::new();
    MODELS.get_or_init(|| {
        let (lines, labels) = corpus();
        let x = dense_rows();
        let isolation = IsolationForestParams {
            n_estimators: 6,
            random_state: Some(1),
            n_jobs: Some(1),
            ..IsolationForestParams::default()
        }
        .fit(Matrix::from(&x))
        .expect("isolation forest fits");
        let training_scores = isolation.score_samples(Matrix::from(&x)).unwrap();
        Models {
            tfidf: TfidfParams {
                ngram_range: (1, 2),
                ..TfidfParams::default()
            }
            .fit(&lines)
            .expect("vectorizer fits"),
            forest: RandomForestParams {
                n_estimators: 4,
                random_state: Some(2),
                n_jobs: Some(1),
                ..RandomForestParams::default()
            }
            .fit(Matrix::from(&x), &class_labels())
            .expect("random forest fits"),
            risk: RiskScorer::fit(RiskParams::default(), &training_scores)
                .expect("risk scorer fits")
                .with_anomaly_weight(0.9),
            isolation,
            detector: DetectorParams {
                isolation: IsolationForestParams {
                    n_estimators: 5,
                    ..IsolationForestParams::default()
                },
                forest: RandomForestParams {
                    n_estimators: 3,
                    ..RandomForestParams::default()
                },
                random_state: Some(3),
                n_jobs: Some(1),
                ..DetectorParams::default()
            }
            .fit(&lines, Some(&labels))
            .expect("detector fits"),
        }
    })
}

/// Every model's artifact, by kind.
fn artifacts() -> &'static [(&'static str, Vec<u8>)] {
    static ARTIFACTS: OnceLock<Vec<(&'static str, Vec<u8>)>> = OnceLock::new();
    ARTIFACTS.get_or_init(|| {
        let m = models();
        vec![
            ("tfidf_vectorizer", m.tfidf.to_bytes()),
            ("isolation_forest", m.isolation.to_bytes()),
            ("random_forest_classifier", m.forest.to_bytes()),
            ("risk_scorer", m.risk.to_bytes()),
            ("detector", m.detector.to_bytes()),
        ]
    })
}

// ---------------------------------------------------------------------------------------------
// Mirrors of the serialized layout (postcard is not self-describing, so the field order and
// types must match the crate's private structs; `mirrors_reencode_identically` checks that).

#[derive(Clone, Debug, Serialize, Deserialize)]
struct NodeM {
    feature: u32,
    threshold: f32,
    right: u32,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct TreeM {
    nodes: Vec<NodeM>,
    values: Vec<f64>,
    n_outputs: usize,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct IsolationM {
    params: IsolationForestParams,
    trees: Vec<TreeM>,
    n_features: usize,
    max_samples: usize,
    offset: f64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct ForestM {
    params: RandomForestParams,
    classes: Vec<i64>,
    n_features: usize,
    trees: Vec<TreeM>,
    feature_importances: Vec<f64>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct TfidfM {
    params: TfidfParams,
    feature_names: Vec<String>,
    idf: Vec<f64>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct RiskM {
    params: RiskParams,
    reference: Vec<f64>,
    anomaly_weight: f64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct StatsM {
    median: f64,
    spread: f64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct DetectorM {
    params: DetectorParams,
    tfidf: TfidfM,
    isolation: IsolationM,
    forest: Option<ForestM>,
    risk: RiskM,
    stats: Vec<StatsM>,
    unknown_idf: f64,
    n_samples: usize,
    n_malicious: usize,
}

/// A decoded payload of any kind.
#[derive(Clone, Debug)]
enum Payload {
    Tfidf(TfidfM),
    Isolation(IsolationM),
    Forest(ForestM),
    Risk(RiskM),
    Detector(Box<DetectorM>),
}

impl Payload {
    fn decode(kind: &str, bytes: &[u8]) -> Payload {
        fn de<T: for<'a> Deserialize<'a>>(bytes: &[u8]) -> T {
            postcard::from_bytes(bytes).expect("the mirror decodes a real payload")
        }
        match kind {
            "tfidf_vectorizer" => Payload::Tfidf(de(bytes)),
            "isolation_forest" => Payload::Isolation(de(bytes)),
            "random_forest_classifier" => Payload::Forest(de(bytes)),
            "risk_scorer" => Payload::Risk(de(bytes)),
            "detector" => Payload::Detector(Box::new(de(bytes))),
            other => panic!("unknown kind {other}"),
        }
    }

    fn encode(&self) -> Vec<u8> {
        match self {
            Payload::Tfidf(m) => postcard::to_allocvec(m),
            Payload::Isolation(m) => postcard::to_allocvec(m),
            Payload::Forest(m) => postcard::to_allocvec(m),
            Payload::Risk(m) => postcard::to_allocvec(m),
            Payload::Detector(m) => postcard::to_allocvec(m),
        }
        .expect("mirrors serialize")
    }

    /// Every tree, whichever model holds it.
    fn trees_mut(&mut self) -> Vec<&mut TreeM> {
        match self {
            Payload::Isolation(m) => m.trees.iter_mut().collect(),
            Payload::Forest(m) => m.trees.iter_mut().collect(),
            Payload::Detector(d) => d
                .isolation
                .trees
                .iter_mut()
                .chain(d.forest.iter_mut().flat_map(|f| f.trees.iter_mut()))
                .collect(),
            Payload::Tfidf(_) | Payload::Risk(_) => Vec::new(),
        }
    }

    /// Every float of the model.
    fn floats_mut(&mut self) -> Vec<FloatMut<'_>> {
        fn trees<'a>(trees: &'a mut [TreeM], out: &mut Vec<FloatMut<'a>>) {
            for t in trees {
                for n in &mut t.nodes {
                    out.push(FloatMut::F32(&mut n.threshold));
                }
                out.extend(t.values.iter_mut().map(FloatMut::F64));
            }
        }
        fn isolation<'a>(m: &'a mut IsolationM, out: &mut Vec<FloatMut<'a>>) {
            out.push(FloatMut::F64(&mut m.offset));
            trees(&mut m.trees, out);
        }
        fn forest<'a>(m: &'a mut ForestM, out: &mut Vec<FloatMut<'a>>) {
            out.extend(m.feature_importances.iter_mut().map(FloatMut::F64));
            trees(&mut m.trees, out);
        }
        fn tfidf<'a>(m: &'a mut TfidfM, out: &mut Vec<FloatMut<'a>>) {
            out.extend(m.idf.iter_mut().map(FloatMut::F64));
        }
        fn risk<'a>(m: &'a mut RiskM, out: &mut Vec<FloatMut<'a>>) {
            out.push(FloatMut::F64(&mut m.anomaly_weight));
            out.push(FloatMut::F64(&mut m.params.expected_anomaly_rate));
            out.push(FloatMut::F64(&mut m.params.threshold));
            out.extend(m.reference.iter_mut().map(FloatMut::F64));
        }
        let mut out = Vec::new();
        match self {
            Payload::Tfidf(m) => tfidf(m, &mut out),
            Payload::Isolation(m) => isolation(m, &mut out),
            Payload::Forest(m) => forest(m, &mut out),
            Payload::Risk(m) => risk(m, &mut out),
            Payload::Detector(d) => {
                let d = &mut **d;
                out.push(FloatMut::F64(&mut d.unknown_idf));
                for s in &mut d.stats {
                    out.push(FloatMut::F64(&mut s.median));
                    out.push(FloatMut::F64(&mut s.spread));
                }
                tfidf(&mut d.tfidf, &mut out);
                isolation(&mut d.isolation, &mut out);
                if let Some(f) = &mut d.forest {
                    forest(f, &mut out);
                }
                risk(&mut d.risk, &mut out);
            }
        }
        out
    }

    /// Every count, index and length-like integer of the model, widened to `u64`.
    fn ints_mut(&mut self) -> Vec<IntMut<'_>> {
        fn trees<'a>(trees: &'a mut [TreeM], out: &mut Vec<IntMut<'a>>) {
            for t in trees {
                out.push(IntMut::Usize(&mut t.n_outputs));
                for n in &mut t.nodes {
                    out.push(IntMut::U32(&mut n.feature));
                    out.push(IntMut::U32(&mut n.right));
                }
            }
        }
        fn isolation<'a>(m: &'a mut IsolationM, out: &mut Vec<IntMut<'a>>) {
            out.push(IntMut::Usize(&mut m.n_features));
            out.push(IntMut::Usize(&mut m.max_samples));
            out.push(IntMut::Usize(&mut m.params.n_estimators));
            trees(&mut m.trees, out);
        }
        fn forest<'a>(m: &'a mut ForestM, out: &mut Vec<IntMut<'a>>) {
            out.push(IntMut::Usize(&mut m.n_features));
            out.push(IntMut::Usize(&mut m.params.n_estimators));
            out.push(IntMut::Usize(&mut m.params.min_samples_split));
            out.push(IntMut::Usize(&mut m.params.min_samples_leaf));
            out.extend(m.classes.iter_mut().map(IntMut::I64));
            trees(&mut m.trees, out);
        }
        fn tfidf<'a>(m: &'a mut TfidfM, out: &mut Vec<IntMut<'a>>) {
            out.push(IntMut::Usize(&mut m.params.ngram_range.0));
            out.push(IntMut::Usize(&mut m.params.ngram_range.1));
        }
        let mut out = Vec::new();
        match self {
            Payload::Tfidf(m) => tfidf(m, &mut out),
            Payload::Isolation(m) => isolation(m, &mut out),
            Payload::Forest(m) => forest(m, &mut out),
            Payload::Risk(_) => {}
            Payload::Detector(d) => {
                let d = &mut **d;
                out.push(IntMut::Usize(&mut d.params.max_line_bytes));
                tfidf(&mut d.tfidf, &mut out);
                isolation(&mut d.isolation, &mut out);
                if let Some(f) = &mut d.forest {
                    forest(f, &mut out);
                }
            }
        }
        out
    }

    /// Every vector of the model, as something that can lose, gain or reorder elements.
    fn vecs_mut(&mut self) -> Vec<VecMut<'_>> {
        let mut out = Vec::new();
        match self {
            Payload::Tfidf(m) => {
                out.push(VecMut::Strings(&mut m.feature_names));
                out.push(VecMut::F64(&mut m.idf));
            }
            Payload::Isolation(m) => out.push(VecMut::Trees(&mut m.trees)),
            Payload::Forest(m) => {
                out.push(VecMut::I64(&mut m.classes));
                out.push(VecMut::F64(&mut m.feature_importances));
                out.push(VecMut::Trees(&mut m.trees));
            }
            Payload::Risk(m) => out.push(VecMut::F64(&mut m.reference)),
            Payload::Detector(d) => {
                let d = &mut **d;
                out.push(VecMut::Stats(&mut d.stats));
                out.push(VecMut::Strings(&mut d.tfidf.feature_names));
                out.push(VecMut::F64(&mut d.tfidf.idf));
                out.push(VecMut::Trees(&mut d.isolation.trees));
                out.push(VecMut::F64(&mut d.risk.reference));
                if let Some(f) = &mut d.forest {
                    out.push(VecMut::I64(&mut f.classes));
                    out.push(VecMut::F64(&mut f.feature_importances));
                    out.push(VecMut::Trees(&mut f.trees));
                }
            }
        }
        out
    }
}

enum FloatMut<'a> {
    F32(&'a mut f32),
    F64(&'a mut f64),
}

enum IntMut<'a> {
    U32(&'a mut u32),
    Usize(&'a mut usize),
    I64(&'a mut i64),
}

impl IntMut<'_> {
    fn get(&self) -> u64 {
        match self {
            IntMut::U32(v) => u64::from(**v),
            IntMut::Usize(v) => **v as u64,
            IntMut::I64(v) => **v as u64,
        }
    }

    fn set(&mut self, x: u64) {
        match self {
            IntMut::U32(v) => **v = x as u32,
            IntMut::Usize(v) => **v = x as usize,
            IntMut::I64(v) => **v = x as i64,
        }
    }
}

enum VecMut<'a> {
    F64(&'a mut Vec<f64>),
    I64(&'a mut Vec<i64>),
    Strings(&'a mut Vec<String>),
    Stats(&'a mut Vec<StatsM>),
    Trees(&'a mut Vec<TreeM>),
}

/// One way of breaking a decoded model; `pick` values select the target modulo the number of
/// candidates, so every strategy value applies to every model.
#[derive(Clone, Debug)]
enum Mutation {
    /// A float becomes NaN, ±infinity, zero, negative or huge.
    Float { pick: usize, value: f64 },
    /// An integer (tree link, feature index, count, class) becomes a hostile value, derived
    /// from the old one or absolute.
    Int { pick: usize, value: IntValue },
    /// A vector loses its last element, gains a copy of one, or has two elements swapped.
    Vec { pick: usize, op: VecOp },
    /// A tree node is turned into a leaf or a split.
    Flip { pick: usize, to_leaf: bool },
    /// A tree node's right child points back at an ancestor or itself (a cycle).
    Cycle { pick: usize, back: u32 },
    /// Parameters a hostile file could carry: thread counts, tokenizer settings, line limits.
    Param { pick: usize },
}

#[derive(Clone, Copy, Debug)]
enum IntValue {
    Plus(u64),
    Minus(u64),
    Abs(u64),
}

#[derive(Clone, Copy, Debug)]
enum VecOp {
    Pop,
    Duplicate(usize),
    Swap(usize, usize),
    Clear,
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let float = prop_oneof![
        Just(f64::NAN),
        Just(f64::INFINITY),
        Just(f64::NEG_INFINITY),
        Just(0.0),
        Just(-0.0),
        Just(-1.0),
        Just(1e300),
        Just(f64::MIN_POSITIVE),
        any::<f64>(),
    ];
    let int = prop_oneof![
        (0u64..4).prop_map(IntValue::Plus),
        (1u64..4).prop_map(IntValue::Minus),
        prop_oneof![
            Just(0u64),
            Just(1),
            Just(u64::from(u32::MAX)),
            Just(u64::from(u32::MAX) - 1),
            Just(u64::MAX),
            Just(1 << 40),
            any::<u64>(),
        ]
        .prop_map(IntValue::Abs),
    ];
    let vec_op = prop_oneof![
        Just(VecOp::Pop),
        Just(VecOp::Clear),
        any::<usize>().prop_map(VecOp::Duplicate),
        (any::<usize>(), any::<usize>()).prop_map(|(a, b)| VecOp::Swap(a, b)),
    ];
    prop_oneof![
        3 => (any::<usize>(), float).prop_map(|(pick, value)| Mutation::Float { pick, value }),
        4 => (any::<usize>(), int).prop_map(|(pick, value)| Mutation::Int { pick, value }),
        2 => (any::<usize>(), vec_op).prop_map(|(pick, op)| Mutation::Vec { pick, op }),
        1 => (any::<usize>(), any::<bool>())
            .prop_map(|(pick, to_leaf)| Mutation::Flip { pick, to_leaf }),
        2 => (any::<usize>(), 0u32..4).prop_map(|(pick, back)| Mutation::Cycle { pick, back }),
        1 => any::<usize>().prop_map(|pick| Mutation::Param { pick }),
    ]
}

/// Hostile parameter values, one per `pick`.
fn hostile_param(p: &mut Payload, pick: usize) {
    let huge_jobs = Some(1usize << 40);
    match p {
        Payload::Isolation(m) => match pick % 3 {
            0 => m.params.n_jobs = huge_jobs,
            1 => m.params.n_estimators = 0,
            _ => m.params.max_samples = soc_core::MaxSamples::Fraction(f64::NAN),
        },
        Payload::Forest(m) => match pick % 3 {
            0 => m.params.n_jobs = huge_jobs,
            1 => m.params.min_samples_split = 0,
            _ => m.params.max_features = soc_core::MaxFeatures::Fraction(-1.0),
        },
        Payload::Tfidf(m) => hostile_tfidf_param(&mut m.params, pick),
        Payload::Risk(m) => m.params.threshold = f64::NAN,
        Payload::Detector(d) => match pick % 6 {
            0 => d.params.n_jobs = huge_jobs,
            1 => d.params.max_line_bytes = 0,
            2 => d.isolation.params.n_jobs = huge_jobs,
            3 => {
                if let Some(f) = &mut d.forest {
                    f.params.n_jobs = huge_jobs;
                }
            }
            4 => d.risk.params.expected_anomaly_rate = 0.5,
            _ => hostile_tfidf_param(&mut d.tfidf.params, pick / 6),
        },
    }
}

fn hostile_tfidf_param(p: &mut TfidfParams, pick: usize) {
    match pick % 6 {
        0 => p.ngram_range = (0, 1),
        1 => p.ngram_range = (3, 1),
        2 => p.min_df = soc_core::DocFreq::Count(0),
        3 => p.token_pattern = "(a)(b)".into(),
        4 => p.token_pattern = "(?=look-ahead)".into(),
        _ => {
            p.analyzer = soc_core::Analyzer::Char;
            p.stem = true;
        }
    }
}

fn apply(p: &mut Payload, m: &Mutation) {
    match *m {
        Mutation::Float { pick, value } => {
            let mut floats = p.floats_mut();
            if floats.is_empty() {
                return;
            }
            let n = floats.len();
            match &mut floats[pick % n] {
                FloatMut::F32(x) => **x = value as f32,
                FloatMut::F64(x) => **x = value,
            }
        }
        Mutation::Int { pick, value } => {
            let mut ints = p.ints_mut();
            if ints.is_empty() {
                return;
            }
            let n = ints.len();
            let target = &mut ints[pick % n];
            let old = target.get();
            target.set(match value {
                IntValue::Plus(d) => old.wrapping_add(d),
                IntValue::Minus(d) => old.wrapping_sub(d),
                IntValue::Abs(v) => v,
            });
        }
        Mutation::Vec { pick, op } => {
            let mut vecs = p.vecs_mut();
            let n = vecs.len();
            match &mut vecs[pick % n] {
                VecMut::F64(v) => vec_op(v, op),
                VecMut::I64(v) => vec_op(v, op),
                VecMut::Strings(v) => vec_op(v, op),
                VecMut::Stats(v) => vec_op(v, op),
                VecMut::Trees(v) => {
                    // Either the tree list or the arrays of one of its trees.
                    if pick % 3 == 0 || v.is_empty() {
                        vec_op(v, op);
                    } else {
                        let n_trees = v.len();
                        let t = &mut v[(pick / 3) % n_trees];
                        if pick % 2 == 0 {
                            vec_op(&mut t.nodes, op);
                        } else {
                            vec_op(&mut t.values, op);
                        }
                    }
                }
            }
        }
        Mutation::Flip { pick, to_leaf } => {
            let mut trees = p.trees_mut();
            let Some(node) = nth_node(&mut trees, pick) else {
                return;
            };
            if to_leaf {
                node.feature = u32::MAX;
            } else if node.feature == u32::MAX {
                node.feature = 0;
            }
        }
        Mutation::Cycle { pick, back } => {
            let mut trees = p.trees_mut();
            let n_total: usize = trees.iter().map(|t| t.nodes.len()).sum();
            if n_total == 0 {
                return;
            }
            let mut i = pick % n_total;
            for t in trees.iter_mut() {
                if i < t.nodes.len() {
                    let target = (i as u32).saturating_sub(back);
                    if t.nodes[i].feature == u32::MAX {
                        // A leaf made into a split whose right child is at or before it.
                        t.nodes[i].feature = 0;
                    }
                    t.nodes[i].right = target;
                    return;
                }
                i -= t.nodes.len();
            }
        }
        Mutation::Param { pick } => hostile_param(p, pick),
    }
}

fn nth_node<'a>(trees: &'a mut [&mut TreeM], pick: usize) -> Option<&'a mut NodeM> {
    let n_total: usize = trees.iter().map(|t| t.nodes.len()).sum();
    if n_total == 0 {
        return None;
    }
    let mut i = pick % n_total;
    for t in trees.iter_mut() {
        if i < t.nodes.len() {
            return Some(&mut t.nodes[i]);
        }
        i -= t.nodes.len();
    }
    None
}

fn vec_op<T: Clone>(v: &mut Vec<T>, op: VecOp) {
    match op {
        VecOp::Pop => {
            v.pop();
        }
        VecOp::Clear => v.clear(),
        VecOp::Duplicate(i) if !v.is_empty() => {
            let i = i % v.len();
            let x = v[i].clone();
            v.insert(i, x);
        }
        VecOp::Swap(a, b) if !v.is_empty() => {
            let n = v.len();
            v.swap(a % n, b % n);
        }
        _ => {}
    }
}

// ---------------------------------------------------------------------------------------------
// Running untrusted bytes.

/// Loads and scores `bytes` as every kind on another thread, failing the test if that takes
/// more than a few seconds (a walk that does not end) or panics.
fn load_and_score_in_time(bytes: Vec<u8>) -> Vec<&'static str> {
    let (tx, rx) = mpsc::channel();
    let worker = std::thread::spawn(move || {
        let loaded = load_and_score(&bytes);
        let _ = tx.send(loaded);
    });
    match rx.recv_timeout(Duration::from_secs(20)) {
        Ok(loaded) => loaded,
        Err(mpsc::RecvTimeoutError::Timeout) => {
            panic!("loading or scoring took more than 20 s: a hang")
        }
        Err(mpsc::RecvTimeoutError::Disconnected) => match worker.join() {
            Err(panic) => std::panic::resume_unwind(panic),
            Ok(()) => unreachable!("the worker sends before it returns"),
        },
    }
}

/// Peak resident memory of this process in KiB (Linux), to catch a decoder that believes a
/// giant length prefix.
fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Fails when this process has ever held more than 1 GiB: every model here is a few KiB.
fn assert_memory_stayed_small() {
    if let Some(kib) = peak_rss_kib() {
        assert!(kib < 1 << 20, "peak RSS {kib} KiB: a huge allocation");
    }
}

fn is_invalid_model<T: std::fmt::Debug>(r: Result<T, Error>) -> bool {
    matches!(r, Err(Error::InvalidModel(_)))
}

// ---------------------------------------------------------------------------------------------
// Properties.

#[test]
fn every_kind_round_trips_and_scores_identically() {
    let m = models();
    let lines = LINES.map(String::from);

    let tfidf = TfidfVectorizer::from_bytes(&m.tfidf.to_bytes()).unwrap();
    assert_eq!(tfidf, m.tfidf);
    assert_eq!(tfidf.transform(&lines), m.tfidf.transform(&lines));

    let x = dense_rows();
    let isolation = IsolationForest::from_bytes(&m.isolation.to_bytes()).unwrap();
    assert_eq!(isolation, m.isolation);
    assert_eq!(
        isolation.score_samples(Matrix::from(&x)).unwrap(),
        m.isolation.score_samples(Matrix::from(&x)).unwrap()
    );

    let forest = RandomForestClassifier::from_bytes(&m.forest.to_bytes()).unwrap();
    assert_eq!(forest, m.forest);
    assert_eq!(
        forest.predict_proba(Matrix::from(&x)).unwrap(),
        m.forest.predict_proba(Matrix::from(&x)).unwrap()
    );

    let risk = RiskScorer::from_bytes(&m.risk.to_bytes()).unwrap();
    assert_eq!(risk, m.risk);
    for a in [0.0, 0.35, 0.5, 0.9] {
        assert_eq!(risk.score(a, Some(0.3)), m.risk.score(a, Some(0.3)));
    }

    let detector = Detector::from_bytes(&m.detector.to_bytes()).unwrap();
    assert_eq!(detector, m.detector);
    assert_eq!(detector.score(&lines), m.detector.score(&lines));
    for line in LINES {
        assert_eq!(detector.score_one(line), m.detector.score_one(line));
        assert_eq!(detector.explain(line), m.detector.explain(line));
    }
}

#[test]
fn mirrors_reencode_identically() {
    // The structured properties below are only meaningful while the mirrors match the crate's
    // serialized layout: decoding and re-encoding a real payload must give the same bytes.
    for (kind, bytes) in artifacts() {
        let (header, payload) = split(bytes).unwrap();
        assert_eq!(header["kind"], *kind);
        let decoded = Payload::decode(kind, payload);
        assert_eq!(decoded.encode(), payload, "{kind}: mirror out of date");
        // And an untouched, re-sealed artifact still loads.
        assert_eq!(load_and_score(&seal(&header, payload)), [*kind]);
    }
}

#[test]
fn hostile_thread_counts_are_rejected() {
    // A stored thread count is used when scoring: a hostile one must not make a scoring call
    // spawn thousands of threads.
    let m = models();
    for (kind, bytes) in artifacts() {
        let (header, payload) = split(bytes).unwrap();
        let mut decoded = Payload::decode(kind, payload);
        let set = |p: &mut Payload| match p {
            Payload::Isolation(m) => m.params.n_jobs = Some(1 << 20),
            Payload::Forest(m) => m.params.n_jobs = Some(1 << 20),
            Payload::Detector(d) => d.params.n_jobs = Some(1 << 20),
            Payload::Tfidf(_) | Payload::Risk(_) => {}
        };
        set(&mut decoded);
        let hostile = seal(&header, &decoded.encode());
        match *kind {
            "isolation_forest" => assert!(is_invalid_model(IsolationForest::from_bytes(&hostile))),
            "random_forest_classifier" => {
                assert!(is_invalid_model(RandomForestClassifier::from_bytes(
                    &hostile
                )))
            }
            "detector" => assert!(is_invalid_model(Detector::from_bytes(&hostile))),
            _ => {}
        }
    }
    // Reasonable counts still load.
    let mut ok = m.forest.params().clone();
    ok.n_jobs = Some(64);
    assert!(ok.fit(Matrix::from(&dense_rows()), &class_labels()).is_ok());
}

#[test]
fn hostile_parameters_are_invalid_models_not_invalid_parameters() {
    // A bad parameter in a stored file is a broken model: the server answers "invalid model",
    // not "your request has a bad parameter".
    for (kind, bytes) in artifacts() {
        let (header, payload) = split(bytes).unwrap();
        for pick in 0..36 {
            let mut decoded = Payload::decode(kind, payload);
            hostile_param(&mut decoded, pick);
            let hostile = seal(&header, &decoded.encode());
            let loaded = load_and_score(&hostile);
            assert!(
                !loaded.contains(kind),
                "{kind} with hostile parameter #{pick} loaded"
            );
        }
    }
}

#[test]
fn giant_length_prefixes_do_not_allocate() {
    // A varint claiming 2^63 elements, placed where each vector's length is.
    let giant = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f];
    for (_, bytes) in artifacts() {
        let (header, payload) = split(bytes).unwrap();
        for at in 0..payload.len().min(400) {
            let mut hostile = payload[..at].to_vec();
            hostile.extend_from_slice(&giant);
            hostile.extend_from_slice(&payload[at..]);
            load_and_score(&seal(&header, &hostile));
            let mut overwritten = payload.to_vec();
            let end = (at + giant.len()).min(overwritten.len());
            overwritten[at..end].copy_from_slice(&giant[..end - at]);
            load_and_score(&seal(&header, &overwritten));
        }
    }
    assert_memory_stayed_small();
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Any strict prefix of an artifact is an `InvalidModel`, whatever the kind.
    #[test]
    fn any_truncation_is_invalid_model(which in 0usize..5, cut in any::<prop::sample::Index>()) {
        let (_, bytes) = &artifacts()[which];
        let prefix = &bytes[..cut.index(bytes.len())];
        prop_assert!(is_invalid_model(TfidfVectorizer::from_bytes(prefix)));
        prop_assert!(is_invalid_model(IsolationForest::from_bytes(prefix)));
        prop_assert!(is_invalid_model(RandomForestClassifier::from_bytes(prefix)));
        prop_assert!(is_invalid_model(RiskScorer::from_bytes(prefix)));
        prop_assert!(is_invalid_model(Detector::from_bytes(prefix)));
    }
}

/// Byte-level damage: flips, insertions, deletions anywhere.
#[derive(Clone, Debug)]
enum ByteEdit {
    Flip(prop::sample::Index, u8),
    Insert(prop::sample::Index, Vec<u8>),
    Delete(prop::sample::Index, usize),
}

fn byte_edits() -> impl Strategy<Value = Vec<ByteEdit>> {
    let edit = prop_oneof![
        (any::<prop::sample::Index>(), 1u8..=255).prop_map(|(i, x)| ByteEdit::Flip(i, x)),
        (
            any::<prop::sample::Index>(),
            prop::collection::vec(any::<u8>(), 1..10)
        )
            .prop_map(|(i, b)| ByteEdit::Insert(i, b)),
        (any::<prop::sample::Index>(), 1usize..10).prop_map(|(i, n)| ByteEdit::Delete(i, n)),
    ];
    prop::collection::vec(edit, 1..4)
}

fn edit_bytes(bytes: &[u8], edits: &[ByteEdit]) -> Vec<u8> {
    let mut out = bytes.to_vec();
    for e in edits {
        if out.is_empty() {
            break;
        }
        match e {
            ByteEdit::Flip(i, x) => {
                let i = i.index(out.len());
                out[i] ^= x;
            }
            ByteEdit::Insert(i, b) => {
                let i = i.index(out.len() + 1);
                out.splice(i..i, b.iter().copied());
            }
            ByteEdit::Delete(i, n) => {
                let i = i.index(out.len());
                let end = (i + n).min(out.len());
                out.drain(i..end);
            }
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1024, ..ProptestConfig::default() })]

    /// Damage anywhere in the file: the checksums catch it (an `InvalidModel` for every kind).
    #[test]
    fn damaged_files_are_rejected(which in 0usize..5, edits in byte_edits()) {
        let (_, bytes) = &artifacts()[which];
        let damaged = edit_bytes(bytes, &edits);
        prop_assume!(damaged != *bytes);
        prop_assert_eq!(load_and_score_in_time(damaged), Vec::<&str>::new());
    }

    /// Damage to the payload behind valid checksums: decoding and validation must cope,
    /// as every kind (the header's kind rewritten), without panicking, hanging or allocating
    /// wildly; whatever loads must score.
    #[test]
    fn damaged_payloads_behind_valid_checksums_never_panic(
        which in 0usize..5,
        edits in byte_edits(),
    ) {
        let (_, bytes) = &artifacts()[which];
        let (header, payload) = split(bytes).unwrap();
        let damaged = seal(&header, &edit_bytes(payload, &edits));
        for as_kind in artifact_harness::reseal_as_every_kind(&damaged) {
            load_and_score_in_time(as_kind);
        }
    }

    /// Damage to the whole file, then re-sealed: reaches the header's fields too.
    #[test]
    fn damaged_files_resealed_never_panic(which in 0usize..5, edits in byte_edits()) {
        let (_, bytes) = &artifacts()[which];
        if let Some(resealed) = reseal(&edit_bytes(bytes, &edits)) {
            load_and_score_in_time(resealed);
        }
    }

}

proptest! {
    #![proptest_config(ProptestConfig { cases: 3000, ..ProptestConfig::default() })]

    /// One structural field of a decoded model broken, re-encoded and re-sealed: the loader
    /// must reject it or load something that scores.
    #[test]
    fn hostile_models_are_rejected_or_score(
        which in 0usize..5,
        mutations in prop::collection::vec(mutation(), 1..3),
    ) {
        let (kind, bytes) = &artifacts()[which];
        let (header, payload) = split(bytes).unwrap();
        let mut decoded = Payload::decode(kind, payload);
        for m in &mutations {
            apply(&mut decoded, m);
        }
        let hostile = seal(&header, &decoded.encode());
        load_and_score_in_time(hostile);
    }

    /// The header's feature count must match the model's.
    #[test]
    fn header_feature_count_must_match(which in 0usize..5, delta in 1usize..1000) {
        let (kind, bytes) = &artifacts()[which];
        let (mut header, payload) = split(bytes).unwrap();
        let n = header["n_features"].as_u64().unwrap() as usize;
        header["n_features"] = (n + delta).into();
        prop_assert_eq!(load_and_score(&seal(&header, payload)), Vec::<&str>::new());
        header["n_features"] = n.into();
        prop_assert_eq!(load_and_score(&seal(&header, payload)), vec![*kind]);
    }
}

#[test]
fn kinds_list_is_complete() {
    let kinds: Vec<&str> = artifacts().iter().map(|(k, _)| *k).collect();
    assert_eq!(kinds, KINDS);
}

#[test]
fn peak_memory_of_the_whole_run_stays_small() {
    // Runs after (or alongside) the others in this binary; checks the same bound on whatever
    // has been decoded so far, plus a fresh pass over every kind.
    for (_, bytes) in artifacts() {
        load_and_score(bytes);
    }
    assert_memory_stayed_small();
}

/// The error of loading `payload` (re-encoded from `decoded`) as `kind`.
fn load_error(kind: &str, header: &serde_json::Value, decoded: &Payload) -> String {
    let bytes = seal(header, &decoded.encode());
    let err = match kind {
        "isolation_forest" => IsolationForest::from_bytes(&bytes).err(),
        "random_forest_classifier" => RandomForestClassifier::from_bytes(&bytes).err(),
        "detector" => Detector::from_bytes(&bytes).err(),
        _ => unreachable!(),
    };
    match err {
        Some(Error::InvalidModel(m)) => m,
        other => panic!("{kind}: expected an invalid model, got {other:?}"),
    }
}

#[test]
fn hostile_trees_reach_validation_and_say_why() {
    // Each mutation passes the checksums and the decoder; validation must name the problem.
    type Edit = fn(&mut TreeM);
    let cases: [(&str, Edit); 7] = [
        ("right child", |t| {
            let i = t.nodes.iter().position(|n| n.feature != u32::MAX).unwrap();
            t.nodes[i].right = i as u32; // a cycle onto itself
        }),
        ("right child", |t| {
            let i = t.nodes.iter().position(|n| n.feature != u32::MAX).unwrap();
            t.nodes[i].right = t.nodes.len() as u32; // past the end
        }),
        ("splits on feature", |t| {
            let i = t.nodes.iter().position(|n| n.feature != u32::MAX).unwrap();
            t.nodes[i].feature = u32::MAX - 1;
        }),
        ("NaN threshold", |t| {
            let i = t.nodes.iter().position(|n| n.feature != u32::MAX).unwrap();
            t.nodes[i].threshold = f32::NAN;
        }),
        ("leaf row", |t| {
            let i = t.nodes.iter().position(|n| n.feature == u32::MAX).unwrap();
            t.nodes[i].right = u32::MAX;
        }),
        ("non-finite leaf value", |t| t.values[0] = f64::INFINITY),
        ("n_outputs", |t| t.n_outputs = 0),
    ];
    for (kind, bytes) in artifacts() {
        if !["isolation_forest", "random_forest_classifier", "detector"].contains(kind) {
            continue;
        }
        let (header, payload) = split(bytes).unwrap();
        for (why, edit) in cases {
            let mut decoded = Payload::decode(kind, payload);
            for tree in decoded.trees_mut() {
                edit(tree);
            }
            let message = load_error(kind, &header, &decoded);
            assert!(
                message.contains(why),
                "{kind}: {message:?} should mention {why:?}"
            );
        }
    }
}

/// Files that made `load_and_score` fail before the fixes they are named after; the fuzz
/// corpus replay test (`tests/fuzz_corpus.rs`) keeps them rejected.
#[test]
#[ignore = "writes into soc-core/fuzz/regressions; run by hand"]
fn write_fuzz_regressions() {
    let dir =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/regressions/artifact_load");
    std::fs::create_dir_all(&dir).unwrap();
    for (kind, bytes) in artifacts() {
        let (header, payload) = split(bytes).unwrap();
        let mut decoded = Payload::decode(kind, payload);
        let name = match &mut decoded {
            // Loaded, then every scoring call asked rayon for up to 65535 threads.
            Payload::Forest(m) => {
                m.params.n_jobs = Some(1 << 40);
                "random_forest_stored_n_jobs_2e40"
            }
            Payload::Detector(d) => {
                d.params.n_jobs = Some(1 << 40);
                "detector_stored_n_jobs_2e40"
            }
            // Failed with InvalidParameter instead of InvalidModel.
            Payload::Tfidf(m) => {
                m.params.ngram_range = (0, 1);
                "tfidf_stored_ngram_range_0"
            }
            Payload::Risk(m) => {
                m.params.threshold = f64::NAN;
                "risk_scorer_stored_threshold_nan"
            }
            Payload::Isolation(_) => continue,
        };
        std::fs::write(dir.join(name), seal(&header, &decoded.encode())).unwrap();
    }
}
