//! What the artifact property tests, the corpus replay test and the `artifact_load` fuzz target
//! share: splitting and re-sealing artifacts (so that mutated payloads get past the checksums)
//! and the load-then-score check that every kind of model must survive.
//!
//! The fuzz target includes this file by path (`soc-core/fuzz/fuzz_targets/artifact_load.rs`),
//! so it uses only soc-core, serde_json and crc32fast.
#![allow(dead_code)]

use soc_core::{
    CsrMatrix, Detector, Error, IsolationForest, Matrix, RandomForestClassifier, RiskScorer,
    TfidfVectorizer,
};

/// Bytes before the JSON header: magic, format version, header length, header CRC-32.
pub(crate) const PREAMBLE_LEN: usize = 20;

/// Lines scored by every model that loads.
pub(crate) const LINES: [&str; 5] = [
    "GET /catalog/item?id=7 HTTP/1.1 200 932",
    "GET /catalog/item?id=9 UNION SELECT pass FROM users--",
    "",
    "kernel: EXT4-fs error (device sda1): ext4_lookup:1602: inode #2 \u{fffd}\u{1F4A9}",
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
];

/// Widest standalone forest whose scoring the harness tries: scoring allocates one row of
/// `n_features` values, and a header may claim up to 2^32 of them (see the crate README).
pub(crate) const MAX_SCORED_FEATURES: usize = 1 << 16;

/// The header (as JSON, unknown fields kept) and payload of an artifact whose preamble and
/// header are well formed; checksums and lengths are not checked.
pub(crate) fn split(bytes: &[u8]) -> Option<(serde_json::Value, &[u8])> {
    if bytes.len() < PREAMBLE_LEN || &bytes[..8] != soc_core::model::MAGIC {
        return None;
    }
    let header_len = u32::from_le_bytes(bytes[12..16].try_into().ok()?) as usize;
    let header_end = PREAMBLE_LEN.checked_add(header_len)?;
    let header = serde_json::from_slice(bytes.get(PREAMBLE_LEN..header_end)?).ok()?;
    Some((header, &bytes[header_end..]))
}

/// An artifact made of `header` and `payload`, with the payload length, payload checksum and
/// header checksum recomputed, so that loading gets as far as decoding the payload.
pub(crate) fn seal(header: &serde_json::Value, payload: &[u8]) -> Vec<u8> {
    let mut header = header.clone();
    if let Some(fields) = header.as_object_mut() {
        fields.insert("payload_len".into(), payload.len().into());
        fields.insert(
            "checksum".into(),
            format!("crc32:{:08x}", crc32fast::hash(payload)).into(),
        );
    }
    let header = serde_json::to_vec(&header).expect("a JSON value serializes");
    let mut out = Vec::with_capacity(PREAMBLE_LEN + header.len() + payload.len());
    out.extend_from_slice(soc_core::model::MAGIC);
    out.extend_from_slice(&soc_core::model::FORMAT_VERSION.to_le_bytes());
    out.extend_from_slice(&(header.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(&header).to_le_bytes());
    out.extend_from_slice(&header);
    out.extend_from_slice(payload);
    out
}

/// `bytes` with its checksums and lengths made consistent again, when its header is readable.
pub(crate) fn reseal(bytes: &[u8]) -> Option<Vec<u8>> {
    split(bytes).map(|(header, payload)| seal(&header, payload))
}

/// `bytes` re-sealed with each kind in turn written in the header, so that one payload is
/// decoded as every kind of model.
pub(crate) fn reseal_as_every_kind(bytes: &[u8]) -> Vec<Vec<u8>> {
    let Some((mut header, payload)) = split(bytes) else {
        return Vec::new();
    };
    KINDS
        .iter()
        .filter_map(|kind| {
            let fields = header.as_object_mut()?;
            fields.insert("kind".into(), (*kind).into());
            Some(seal(&header, payload))
        })
        .collect()
}

/// Every artifact kind.
pub(crate) const KINDS: [&str; 5] = [
    "tfidf_vectorizer",
    "isolation_forest",
    "random_forest_classifier",
    "risk_scorer",
    "detector",
];

/// Loads `bytes` as every kind of model and scores [`LINES`] with whatever loads.
///
/// Panics (which the property tests and the fuzzer report) when loading fails with anything
/// but [`Error::InvalidModel`], or when loading or scoring panics. Returns the kinds that
/// loaded.
pub(crate) fn load_and_score(bytes: &[u8]) -> Vec<&'static str> {
    let mut loaded = Vec::new();
    if let Some(v) = accept(TfidfVectorizer::from_bytes(bytes)) {
        let x = v.transform(&LINES);
        assert_eq!((x.n_rows(), x.n_cols()), (LINES.len(), v.n_features()));
        loaded.push("tfidf_vectorizer");
    }
    if let Some(f) = accept(IsolationForest::from_bytes(bytes)) {
        if let Some(x) = inputs(f.n_features()) {
            let scores = f
                .score_samples(Matrix::from(&x))
                .expect("input has the model's width");
            assert_eq!(scores.len(), x.n_rows());
            f.predict(Matrix::from(&x))
                .expect("input has the model's width");
        }
        loaded.push("isolation_forest");
    }
    if let Some(f) = accept(RandomForestClassifier::from_bytes(bytes)) {
        if let Some(x) = inputs(f.n_features()) {
            let p = f
                .predict_proba(Matrix::from(&x))
                .expect("input has the model's width");
            assert_eq!(p.dim(), (x.n_rows(), f.classes().len()));
            f.predict(Matrix::from(&x))
                .expect("input has the model's width");
        }
        loaded.push("random_forest_classifier");
    }
    if let Some(r) = accept(RiskScorer::from_bytes(bytes)) {
        for raw in [f64::NAN, -1.0, 0.0, 0.4, 1.0, f64::INFINITY] {
            for p in [None, Some(0.0), Some(0.9), Some(f64::NAN)] {
                let s = r.score(raw, p);
                assert!(!s.risk.is_nan(), "risk of {raw}, {p:?} is NaN");
            }
        }
        loaded.push("risk_scorer");
    }
    if let Some(d) = accept(Detector::from_bytes(bytes)) {
        let batch = d.score(&LINES);
        assert_eq!(batch.len(), LINES.len());
        for line in LINES {
            d.score_one(line);
            d.explain(line);
        }
        loaded.push("detector");
    }
    loaded
}

fn accept<T>(loaded: Result<T, Error>) -> Option<T> {
    match loaded {
        Ok(model) => Some(model),
        Err(Error::InvalidModel(_)) => None,
        Err(other) => panic!("loading failed with {other:?}, not Error::InvalidModel"),
    }
}

/// A few sparse rows `n_features` wide touching the first, last and some middle columns.
fn inputs(n_features: usize) -> Option<CsrMatrix> {
    if n_features == 0 || n_features > MAX_SCORED_FEATURES {
        return None;
    }
    let mut indptr = vec![0];
    let mut indices = Vec::new();
    let mut data = Vec::new();
    let rows: [&[(usize, f64)]; 4] = [
        &[],
        &[(0, 1.0), (n_features / 2, 0.5), (n_features - 1, 2.0)],
        &[(1, -3.0), (n_features / 3, 1e30)],
        &[(0, f64::MIN_POSITIVE), (n_features - 1, -1e-9)],
    ];
    for row in rows {
        let mut row: Vec<(u32, f64)> = row
            .iter()
            .map(|&(c, v)| ((c % n_features) as u32, v))
            .collect();
        row.sort_by_key(|&(c, _)| c);
        row.dedup_by_key(|&mut (c, _)| c);
        indices.extend(row.iter().map(|&(c, _)| c));
        data.extend(row.iter().map(|&(_, v)| v));
        indptr.push(indices.len());
    }
    Some(CsrMatrix::try_new(n_features, indptr, indices, data).expect("a canonical CSR matrix"))
}
