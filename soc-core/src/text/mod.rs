//! Text features: scikit-learn's `TfidfVectorizer`, in Rust.
//!
//! [`TfidfParams`] holds the hyperparameters (same names and defaults as scikit-learn 1.9);
//! [`TfidfParams::fit`] learns a vocabulary and idf weights and returns a fitted
//! [`TfidfVectorizer`], whose [`transform`](TfidfVectorizer::transform) turns documents into a
//! [`CsrMatrix`](crate::CsrMatrix) of TF-IDF weights.
//!
//! ```
//! use soc_core::TfidfParams;
//!
//! let docs = ["GET /index.html", "GET /admin.php?id=1 OR 1=1", "POST /login"];
//! let (tfidf, x) = TfidfParams::default().fit_transform(&docs)?;
//! assert_eq!(x.n_rows(), 3);
//! assert_eq!(tfidf.feature_names(), ["admin", "get", "html", "id", "index", "login", "or", "php", "post"]);
//! let mut row = Vec::new();
//! tfidf.transform_into("get GET login", &mut row);   // one document, no allocation once warm
//! assert_eq!(row.iter().map(|&(c, _)| c).collect::<Vec<_>>(), [1, 5]);
//! # Ok::<(), soc_core::Error>(())
//! ```
//!
//! # Semantics
//!
//! Output equals scikit-learn's for the same parameters: the same vocabulary (terms sorted by
//! code point), the same idf, and the same matrix, computed in the same order of floating-point
//! operations (`tf` → optional `1 + ln tf` → `· idf` → division by the row's L2 norm, the sum of
//! squares accumulated in column order). Remaining differences:
//!
//! - Default `token_pattern` (`(?u)\b\w\w+\b`): no regex is run; a token is a maximal run of at
//!   least two word characters, a word character being `c.is_alphanumeric() || c == '_'`. That
//!   is Python's `\w` except in rare cases: Rust counts the `Other_Alphabetic` combining marks
//!   (e.g. Devanagari vowel signs) as word characters, Python does not.
//! - A custom `token_pattern` is compiled with the `regex` crate: no look-around or
//!   back-references (rejected as an invalid parameter), Rust's Unicode `\w` / `\b` / `\s` (its
//!   `\s` lacks the separators U+001C..U+001F that Python counts as space), and an empty
//!   match right after a non-empty one is not reported (Python reports it as an empty token).
//! - Lowercasing is Rust's `str::to_lowercase` (full Unicode mapping with final sigma, as
//!   Python's `str.lower`); whitespace for `char` / `char_wb` is Python's `str.isspace`.
//! - `max_features` keeps the most frequent terms; ties are broken by term order (a stable sort).
//!   scikit-learn breaks them by numpy's unstable `argsort`, so when terms tie at the cut-off
//!   the two may keep different ones.
//! - `stem` (English Snowball stemming of word tokens) is our extension.

mod analyze;
mod tfidf;

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

pub use tfidf::TfidfVectorizer;

/// What a feature is made of (scikit-learn's `analyzer`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Analyzer {
    /// Word n-grams of the tokens matched by `token_pattern` (`"word"`).
    Word,
    /// Character n-grams of the whole document, whitespace runs collapsed (`"char"`).
    Char,
    /// Character n-grams inside words, each word padded with one space on both sides
    /// (`"char_wb"`).
    CharWb,
}

/// A document-frequency bound (scikit-learn's `min_df` / `max_df`): an absolute number of
/// documents (a Python int) or a fraction of the corpus (a Python float).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub enum DocFreq {
    /// A number of documents, at least 1.
    Count(usize),
    /// A fraction of the documents, in `[0, 1]`.
    Fraction(f64),
}

/// Row normalization (scikit-learn's `norm`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Norm {
    /// Each non-empty row is divided by its Euclidean norm.
    L2,
    /// Rows are left as they are.
    None,
}

/// The default `token_pattern`, for which the tokenizer needs no regex.
pub(crate) const DEFAULT_TOKEN_PATTERN: &str = r"(?u)\b\w\w+\b";

/// Hyperparameters of a TF-IDF vectorizer, with scikit-learn's names and defaults
/// (`TfidfParams::default()` is `TfidfVectorizer()`). They are validated by [`fit`](Self::fit).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TfidfParams {
    /// Lowercase documents before tokenizing. Default `true`.
    pub lowercase: bool,
    /// What features are made of. Default [`Analyzer::Word`].
    pub analyzer: Analyzer,
    /// Regular expression of a token (word analyzer only); if it has one capture group, the
    /// group is the token. Default `(?u)\b\w\w+\b`, which runs without a regex.
    pub token_pattern: String,
    /// Smallest and largest n of the n-grams (words or characters). Default `(1, 1)`.
    pub ngram_range: (usize, usize),
    /// Drop terms found in fewer documents. Default `Count(1)`.
    pub min_df: DocFreq,
    /// Drop terms found in more documents. Default `Fraction(1.0)`.
    pub max_df: DocFreq,
    /// Keep only this many terms, the most frequent over the corpus. Default `None`.
    pub max_features: Option<usize>,
    /// Weight terms by their inverse document frequency. Default `true`.
    pub use_idf: bool,
    /// idf = ln((1 + n) / (1 + df)) + 1 instead of ln(n / df) + 1. Default `true`.
    pub smooth_idf: bool,
    /// Use 1 + ln(tf) instead of tf. Default `false`.
    pub sublinear_tf: bool,
    /// Row normalization. Default [`Norm::L2`].
    pub norm: Norm,
    /// Stem word tokens (English Snowball, after lowercasing, before n-grams). Not in
    /// scikit-learn; word analyzer only. Default `false`.
    pub stem: bool,
}

impl Default for TfidfParams {
    fn default() -> Self {
        TfidfParams {
            lowercase: true,
            analyzer: Analyzer::Word,
            token_pattern: DEFAULT_TOKEN_PATTERN.to_owned(),
            ngram_range: (1, 1),
            min_df: DocFreq::Count(1),
            max_df: DocFreq::Fraction(1.0),
            max_features: None,
            use_idf: true,
            smooth_idf: true,
            sublinear_tf: false,
            norm: Norm::L2,
            stem: false,
        }
    }
}

/// Decodes raw bytes (a log line off the wire) into text for the vectorizer.
///
/// Valid UTF-8 is borrowed as is. Invalid UTF-8 never fails: each invalid sequence becomes
/// U+FFFD (`�`), like Python's `bytes.decode("utf-8", "replace")`, so a line with a few bad
/// bytes still yields its other tokens.
pub fn to_text(bytes: &[u8]) -> Cow<'_, str> {
    String::from_utf8_lossy(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn to_text_is_lossy() {
        assert!(matches!(to_text(b"plain"), Cow::Borrowed("plain")));
        assert_eq!(
            to_text(b"id=\xff\xfe1 or\xc3"),
            "id=\u{fffd}\u{fffd}1 or\u{fffd}"
        );
        assert_eq!(to_text("café".as_bytes()), "café");
        let v = TfidfParams::default()
            .fit(&[to_text(b"admin\xff\xffpanel").as_ref()])
            .unwrap();
        assert_eq!(v.feature_names(), ["admin", "panel"]);
    }

    #[test]
    fn defaults_are_sklearns() {
        let p = TfidfParams::default();
        assert!(p.lowercase && p.use_idf && p.smooth_idf && !p.sublinear_tf && !p.stem);
        assert_eq!(p.token_pattern, r"(?u)\b\w\w+\b");
        assert_eq!(p.ngram_range, (1, 1));
        assert_eq!(
            (p.min_df, p.max_df),
            (DocFreq::Count(1), DocFreq::Fraction(1.0))
        );
        assert_eq!(
            (p.analyzer, p.norm, p.max_features),
            (Analyzer::Word, Norm::L2, None)
        );
    }
}
