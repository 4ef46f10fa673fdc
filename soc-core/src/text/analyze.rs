//! Turning a document into its terms (scikit-learn's `build_analyzer`): preprocessing
//! (lowercase), tokenization, stemming and n-grams.
//!
//! Terms are handed to a callback as `&str` slices of reusable buffers, so analyzing a document
//! allocates nothing once the buffers are warm (except lowercasing non-ASCII text).

use std::cell::RefCell;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use regex::Regex;
use rust_stemmers::{Algorithm, Stemmer};

use super::{Analyzer, DEFAULT_TOKEN_PATTERN, TfidfParams};
use crate::error::{Error, Result};

/// FxHash (the rustc hasher): a multiply-rotate hash, much faster than SipHash on short keys.
/// Only used for maps whose keys come from training data or are only looked up.
#[derive(Default, Clone, Copy)]
pub(crate) struct FxHasher {
    hash: u64,
}

const FX_SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

impl FxHasher {
    #[inline]
    fn add(&mut self, word: u64) {
        self.hash = (self.hash.rotate_left(5) ^ word).wrapping_mul(FX_SEED);
    }
}

impl Hasher for FxHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            self.add(u64::from_le_bytes([
                c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7],
            ]));
        }
        // The last 1..7 bytes as one word, read piecewise (a copy into a stack buffer would
        // stall on store forwarding).
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut word = 0u64;
            let mut k = 0;
            if rest.len() >= 4 {
                word = u64::from(u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]));
                k = 4;
            }
            if rest.len() - k >= 2 {
                word |= u64::from(u16::from_le_bytes([rest[k], rest[k + 1]])) << (8 * k);
                k += 2;
            }
            if rest.len() > k {
                word |= u64::from(rest[k]) << (8 * k);
            }
            self.add(word ^ ((rest.len() as u64) << 59));
        }
    }

    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }

    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }

    #[inline]
    fn finish(&self) -> u64 {
        self.hash
    }
}

/// `HashMap` with [`FxHasher`].
pub(crate) type FxHashMap<K, V> = HashMap<K, V, BuildHasherDefault<FxHasher>>;

/// FxHash of a term, with the high bits mixed down.
#[inline]
fn term_hash(term: &[u8]) -> u64 {
    let mut h = FxHasher::default();
    h.write(term);
    let h = h.finish();
    h ^ (h >> 29)
}

const EMPTY_SLOT: u32 = u32::MAX;

/// Terms of at most this many bytes are stored in their slot.
const SHORT: usize = 8;

/// A slot of [`TermIndex`]: the column, a fingerprint (hash bits and the term's length) and,
/// for a short term, the term itself, so that looking one up touches the slot only.
#[derive(Debug, Clone, Copy)]
struct Slot {
    column: u32,
    fingerprint: u32,
    short: u64,
}

const EMPTY: Slot = Slot {
    column: EMPTY_SLOT,
    fingerprint: 0,
    short: 0,
};

/// Hash bits plus the length (up to 255) in the low byte: equal fingerprints of short terms
/// mean equal lengths.
fn fingerprint(hash: u64, len: usize) -> u32 {
    (hash as u32 & !0xff) | len.min(255) as u32
}

/// A term of at most [`SHORT`] bytes as a number (zero-padded; its length is in the
/// fingerprint).
fn short_term(term: &[u8]) -> Option<u64> {
    let mut bytes = [0u8; SHORT];
    bytes.get_mut(..term.len())?.copy_from_slice(term);
    Some(u64::from_le_bytes(bytes))
}

/// The fitted vocabulary as a compact open-addressing table: term → column.
///
/// Slots are 16 bytes and hold terms of up to 8 bytes (most words and numbers) themselves;
/// longer terms sit back to back in one arena. A lookup touches one slot and, for a long term
/// whose fingerprint matches, one short run of the arena: friendlier to the cache than a map
/// of boxed strings.
#[derive(Debug, Clone, Default)]
pub(crate) struct TermIndex {
    slots: Vec<Slot>,
    shift: u32,
    arena: String,
    starts: Vec<usize>,
}

impl TermIndex {
    /// Indexes `terms` (unique; column = position). At most `u32::MAX - 1` terms.
    pub(crate) fn new(terms: &[String]) -> Self {
        let n_slots = (terms.len() * 2).next_power_of_two().max(16);
        let shift = 64 - n_slots.trailing_zeros();
        let mut index = TermIndex {
            slots: vec![EMPTY; n_slots],
            shift,
            arena: String::with_capacity(terms.iter().map(String::len).sum()),
            starts: Vec::with_capacity(terms.len() + 1),
        };
        index.starts.push(0);
        let mask = n_slots - 1;
        for (id, t) in terms.iter().enumerate() {
            index.arena.push_str(t);
            index.starts.push(index.arena.len());
            let h = term_hash(t.as_bytes());
            let mut i = (h >> shift) as usize;
            while index.slots[i].column != EMPTY_SLOT {
                i = (i + 1) & mask;
            }
            index.slots[i] = Slot {
                column: id as u32,
                fingerprint: fingerprint(h, t.len()),
                short: short_term(t.as_bytes()).unwrap_or(0),
            };
        }
        index
    }

    /// The column of `term`.
    #[inline]
    pub(crate) fn get(&self, term: &str) -> Option<u32> {
        if self.slots.is_empty() {
            return None;
        }
        let term = term.as_bytes();
        let h = term_hash(term);
        let fp = fingerprint(h, term.len());
        let short = short_term(term);
        let mask = self.slots.len() - 1;
        let mut i = (h >> self.shift) as usize;
        loop {
            let slot = self.slots[i];
            if slot.column == EMPTY_SLOT {
                return None;
            }
            if slot.fingerprint == fp {
                let found = match short {
                    Some(short) => slot.short == short,
                    None => {
                        let c = slot.column as usize;
                        self.arena.as_bytes()[self.starts[c]..self.starts[c + 1]] == *term
                    }
                };
                if found {
                    return Some(slot.column);
                }
            }
            i = (i + 1) & mask;
        }
    }
}

/// Python's `str.isspace` (what `\s` and `str.split()` use): Unicode `White_Space` plus the
/// four information separators U+001C..U+001F.
#[inline]
pub(crate) fn is_py_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// A word character of the default token pattern (`\w`).
#[inline]
fn is_word(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// How words are found.
#[derive(Debug, Clone)]
enum Tokenizer {
    /// `(?u)\b\w\w+\b` without a regex: maximal runs of at least two word characters.
    Default,
    /// A custom pattern; `group` is true when its one capture group is the token.
    Pattern { re: Regex, group: bool },
}

/// The compiled analyzer of a [`TfidfParams`].
#[derive(Debug, Clone)]
pub(crate) struct Analysis {
    kind: Analyzer,
    lowercase: bool,
    min_n: usize,
    max_n: usize,
    tokenizer: Tokenizer,
    stem: bool,
}

/// Reusable buffers for [`Analysis::run`].
#[derive(Debug, Default)]
pub(crate) struct Scratch {
    lower: String,
    text: String,
    bounds: Vec<usize>,
    toks: String,
    ends: Vec<usize>,
    gram: String,
}

/// Buffers grown past this by one huge document are freed after it.
const SCRATCH_KEEP: usize = 1 << 20;

impl Scratch {
    /// Frees buffers that one huge document made large, so a thread does not keep them.
    pub(crate) fn trim(&mut self) {
        if self.lower.capacity() > SCRATCH_KEEP {
            self.lower = String::new();
        }
        if self.text.capacity() > SCRATCH_KEEP {
            self.text = String::new();
        }
        if self.toks.capacity() > SCRATCH_KEEP {
            self.toks = String::new();
        }
        if self.gram.capacity() > SCRATCH_KEEP {
            self.gram = String::new();
        }
        if self.bounds.capacity() > SCRATCH_KEEP / 8 {
            self.bounds = Vec::new();
        }
        if self.ends.capacity() > SCRATCH_KEEP / 8 {
            self.ends = Vec::new();
        }
    }
}

/// Most stems kept per thread before the cache is emptied.
const STEM_CACHE_CAP: usize = 1 << 16;

thread_local! {
    /// token → stem. The English stemmer is a pure function, so one cache per thread serves
    /// every vectorizer. Keys come from untrusted text: SipHash, and bounded size.
    static STEMS: RefCell<HashMap<String, String>> = RefCell::new(HashMap::new());
}

impl Analysis {
    /// Validates the analyzer-related parameters and compiles the token pattern.
    pub(crate) fn new(p: &TfidfParams) -> Result<Self> {
        let (min_n, max_n) = p.ngram_range;
        if min_n == 0 {
            return Err(Error::invalid_param(
                "ngram_range",
                format!("{:?}: n-grams start at 1", p.ngram_range),
            ));
        }
        if min_n > max_n {
            return Err(Error::invalid_param(
                "ngram_range",
                format!(
                    "{:?}: lower boundary larger than the upper boundary",
                    p.ngram_range
                ),
            ));
        }
        if p.stem && p.analyzer != Analyzer::Word {
            return Err(Error::invalid_param(
                "stem",
                "stemming applies to words: it needs analyzer Word",
            ));
        }
        let tokenizer = if p.analyzer != Analyzer::Word || p.token_pattern == DEFAULT_TOKEN_PATTERN
        {
            Tokenizer::Default
        } else {
            let re = Regex::new(&p.token_pattern)
                .map_err(|e| Error::invalid_param("token_pattern", e.to_string()))?;
            let groups = re.captures_len() - 1;
            if groups > 1 {
                return Err(Error::invalid_param(
                    "token_pattern",
                    format!("{groups} capturing groups: only a single group should be captured"),
                ));
            }
            Tokenizer::Pattern {
                re,
                group: groups == 1,
            }
        };
        Ok(Analysis {
            kind: p.analyzer,
            lowercase: p.lowercase,
            min_n,
            max_n,
            tokenizer,
            stem: p.stem,
        })
    }

    /// Calls `emit` with every term of `doc`, repeated as often as it occurs (in no promised
    /// order).
    pub(crate) fn run(&self, doc: &str, scratch: &mut Scratch, mut emit: impl FnMut(&str)) {
        let Scratch {
            lower,
            text,
            bounds,
            toks,
            ends,
            gram,
        } = scratch;
        let doc: &str = if self.lowercase {
            lower.clear();
            if doc.is_ascii() {
                lower.push_str(doc);
                lower.make_ascii_lowercase();
            } else {
                *lower = doc.to_lowercase();
            }
            lower
        } else {
            doc
        };
        match self.kind {
            Analyzer::Word => self.words(doc, toks, ends, gram, &mut emit),
            Analyzer::Char => {
                collapse_spaces(doc, text);
                char_ngrams(text, self.min_n, self.max_n, bounds, &mut emit);
            }
            Analyzer::CharWb => {
                char_wb_ngrams(doc, self.min_n, self.max_n, gram, bounds, &mut emit)
            }
        }
    }

    fn for_each_token(&self, text: &str, mut f: impl FnMut(&str)) {
        match &self.tokenizer {
            Tokenizer::Default => default_tokens(text, &mut f),
            Tokenizer::Pattern { re, group: false } => {
                re.find_iter(text).for_each(|m| f(m.as_str()))
            }
            Tokenizer::Pattern { re, group: true } => {
                for caps in re.captures_iter(text) {
                    f(caps.get(1).map_or("", |m| m.as_str()));
                }
            }
        }
    }

    fn words(
        &self,
        text: &str,
        toks: &mut String,
        ends: &mut Vec<usize>,
        gram: &mut String,
        emit: &mut impl FnMut(&str),
    ) {
        if !self.stem && self.max_n == 1 {
            // The hot path: unigrams are slices of the text.
            self.for_each_token(text, emit);
            return;
        }
        toks.clear();
        ends.clear();
        if self.stem {
            let stemmer = Stemmer::create(Algorithm::English);
            STEMS.with(|cache| match cache.try_borrow_mut() {
                Ok(mut cache) => self.for_each_token(text, |t| {
                    if let Some(s) = cache.get(t) {
                        toks.push_str(s);
                    } else {
                        let s = stemmer.stem(t).into_owned();
                        toks.push_str(&s);
                        if cache.len() >= STEM_CACHE_CAP {
                            cache.clear();
                        }
                        cache.insert(t.to_owned(), s);
                    }
                    ends.push(toks.len());
                }),
                Err(_) => self.for_each_token(text, |t| {
                    toks.push_str(&stemmer.stem(t));
                    ends.push(toks.len());
                }),
            });
        } else {
            self.for_each_token(text, |t| {
                toks.push_str(t);
                ends.push(toks.len());
            });
        }
        let n_tokens = ends.len();
        let token = |i: usize| &toks[if i == 0 { 0 } else { ends[i - 1] }..ends[i]];
        if self.min_n == 1 {
            for i in 0..n_tokens {
                emit(token(i));
            }
        }
        for n in self.min_n.max(2)..=self.max_n.min(n_tokens) {
            for i in 0..=n_tokens - n {
                gram.clear();
                gram.push_str(token(i));
                for j in i + 1..i + n {
                    gram.push(' ');
                    gram.push_str(token(j));
                }
                emit(gram);
            }
        }
    }
}

/// Maximal runs of at least two word characters.
fn default_tokens(text: &str, f: &mut impl FnMut(&str)) {
    let bytes = text.as_bytes();
    if text.is_ascii() {
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_' {
                let start = i;
                while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
                    i += 1;
                }
                if i - start >= 2 {
                    f(&text[start..i]);
                }
            } else {
                i += 1;
            }
        }
        return;
    }
    let mut start = 0;
    let mut n_chars = 0usize;
    for (at, c) in text.char_indices() {
        if is_word(c) {
            if n_chars == 0 {
                start = at;
            }
            n_chars += 1;
        } else {
            if n_chars >= 2 {
                f(&text[start..at]);
            }
            n_chars = 0;
        }
    }
    if n_chars >= 2 {
        f(&text[start..]);
    }
}

/// `re.sub(r"\s\s+", " ", text)`: runs of two or more whitespace characters become one space;
/// a single whitespace character is kept as it is.
fn collapse_spaces(text: &str, out: &mut String) {
    out.clear();
    let mut run: Option<char> = None;
    let mut run_len = 0usize;
    for c in text.chars() {
        if is_py_space(c) {
            if run_len == 0 {
                run = Some(c);
            }
            run_len += 1;
        } else {
            flush_space_run(out, run, run_len);
            run_len = 0;
            out.push(c);
        }
    }
    flush_space_run(out, run, run_len);
}

fn flush_space_run(out: &mut String, first: Option<char>, len: usize) {
    match (len, first) {
        (0, _) | (_, None) => {}
        (1, Some(c)) => out.push(c),
        _ => out.push(' '),
    }
}

/// Character n-grams of `text` (already whitespace-normalized).
fn char_ngrams(
    text: &str,
    min_n: usize,
    max_n: usize,
    bounds: &mut Vec<usize>,
    emit: &mut impl FnMut(&str),
) {
    bounds.clear();
    bounds.extend(text.char_indices().map(|(i, _)| i));
    bounds.push(text.len());
    let len = bounds.len() - 1;
    for n in min_n..=max_n.min(len) {
        for i in 0..=len - n {
            emit(&text[bounds[i]..bounds[i + n]]);
        }
    }
}

/// Character n-grams inside words, each word padded with one space on both sides; a word
/// shorter than n is counted once, as a whole.
fn char_wb_ngrams(
    text: &str,
    min_n: usize,
    max_n: usize,
    padded: &mut String,
    bounds: &mut Vec<usize>,
    emit: &mut impl FnMut(&str),
) {
    for word in text.split(is_py_space).filter(|w| !w.is_empty()) {
        padded.clear();
        padded.push(' ');
        padded.push_str(word);
        padded.push(' ');
        bounds.clear();
        bounds.extend(padded.char_indices().map(|(i, _)| i));
        bounds.push(padded.len());
        let w_len = bounds.len() - 1;
        for n in min_n..=max_n {
            if n >= w_len {
                emit(padded);
                break;
            }
            for i in 0..=w_len - n {
                emit(&padded[bounds[i]..bounds[i + n]]);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn terms(p: &TfidfParams, doc: &str) -> Vec<String> {
        let a = Analysis::new(p).unwrap();
        let mut out = Vec::new();
        a.run(doc, &mut Scratch::default(), |t| out.push(t.to_owned()));
        out.sort();
        out
    }

    fn sorted(v: &[&str]) -> Vec<String> {
        let mut v: Vec<String> = v.iter().map(|s| s.to_string()).collect();
        v.sort();
        v
    }

    #[test]
    fn default_tokens_are_runs_of_two_word_chars() {
        let p = TfidfParams::default();
        assert_eq!(
            terms(&p, "GET /a/bc_d?x=12&Ü=ÉtÉ é"),
            sorted(&["get", "bc_d", "12", "été"])
        );
        assert_eq!(terms(&p, "ab"), sorted(&["ab"]));
        assert!(terms(&p, "a b c !!").is_empty());
    }

    #[test]
    fn word_ngrams() {
        let p = TfidfParams {
            ngram_range: (1, 3),
            ..TfidfParams::default()
        };
        assert_eq!(
            terms(&p, "aa bb cc"),
            sorted(&["aa", "bb", "cc", "aa bb", "bb cc", "aa bb cc"])
        );
        let p = TfidfParams {
            ngram_range: (2, 5),
            ..TfidfParams::default()
        };
        assert_eq!(terms(&p, "aa bb"), sorted(&["aa bb"]));
        assert!(terms(&p, "aa").is_empty());
    }

    #[test]
    fn char_ngrams_collapse_space_runs_only() {
        let p = TfidfParams {
            analyzer: Analyzer::Char,
            ngram_range: (1, 2),
            lowercase: false,
            ..TfidfParams::default()
        };
        assert_eq!(
            terms(&p, "A\tb  c"),
            sorted(&["A", "\t", "b", " ", "c", "A\t", "\tb", "b ", " c"])
        );
    }

    #[test]
    fn char_wb_pads_words() {
        let p = TfidfParams {
            analyzer: Analyzer::CharWb,
            ngram_range: (2, 4),
            ..TfidfParams::default()
        };
        // " a " has length 3: n=2 gives " a", "a "; n=3 gives the word once and stops.
        assert_eq!(terms(&p, "a"), sorted(&[" a", "a ", " a "]));
        assert_eq!(
            terms(&p, "ab"),
            sorted(&[" a", "ab", "b ", " ab", "ab ", " ab "])
        );
    }

    #[test]
    fn custom_patterns() {
        let p = TfidfParams {
            token_pattern: r"(\w+)=".into(),
            ..TfidfParams::default()
        };
        assert_eq!(terms(&p, "a=1&bb=2"), sorted(&["a", "bb"]));
        let p = TfidfParams {
            token_pattern: r"\S+".into(),
            ..TfidfParams::default()
        };
        assert_eq!(terms(&p, "x' OR 1=1"), sorted(&["x'", "or", "1=1"]));
    }

    #[test]
    fn stems_words() {
        let p = TfidfParams {
            stem: true,
            ngram_range: (1, 2),
            ..TfidfParams::default()
        };
        assert_eq!(
            terms(&p, "Connections failed"),
            sorted(&["connect", "fail", "connect fail"])
        );
        // Twice, so the cached stems are used.
        assert_eq!(
            terms(&p, "connections failed"),
            sorted(&["connect", "fail", "connect fail"])
        );
    }

    #[test]
    fn term_index_finds_every_term() {
        // Short (stored in the slot) and long (in the arena) terms, some differing only in
        // length or a trailing NUL.
        let mut terms: Vec<String> = (0..1000).map(|i| format!("t{i}")).collect();
        terms.extend((0..1000).map(|i| format!("a-longer-term-{i}")));
        terms.extend([
            "x".into(),
            "x\0".into(),
            "12345678".into(),
            "123456789".into(),
        ]);
        let index = TermIndex::new(&terms);
        for (i, t) in terms.iter().enumerate() {
            assert_eq!(index.get(t), Some(i as u32), "{t:?}");
        }
        for absent in [
            "t1000",
            "",
            "x\0\0",
            "1234567",
            "a-longer-term-1000",
            "a-longer-term-",
        ] {
            assert_eq!(index.get(absent), None, "{absent:?}");
        }
        assert_eq!(TermIndex::default().get("t1"), None);
        assert_eq!(TermIndex::new(&[String::new()]).get(""), Some(0));
    }

    #[test]
    fn python_whitespace() {
        assert!(is_py_space('\u{1f}') && is_py_space('\u{85}') && is_py_space('\u{3000}'));
        assert!(!is_py_space('\u{200b}') && !is_py_space('a'));
    }
}
