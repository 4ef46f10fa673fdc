//! Structural statistics of a line: the isolation forest's view of "few and different".
//!
//! On payload data an isolation forest on word TF-IDF is near chance (a new word is just one
//! more sparse column), while attacks stand out in shape: more symbols, quotes and brackets,
//! higher entropy, escapes, traversal sequences, rare words; system logs in their error and fatal
//! vocabulary. Counts are `ln(1 + n)` so a long
//! line does not dominate; ratios are fractions of the line's bytes.

/// Number of structural features.
pub(crate) const N_STRUCTURAL: usize = 21;

/// Names of the structural features, in column order (shown by `explain`).
pub(crate) const NAMES: [&str; N_STRUCTURAL] = [
    "length",
    "entropy",
    "digit_ratio",
    "letter_ratio",
    "upper_ratio",
    "symbol_ratio",
    "space_ratio",
    "non_ascii_ratio",
    "tokens",
    "longest_token",
    "quotes",
    "brackets",
    "comment_markers",
    "path_traversals",
    "percent_escapes",
    "shell_metachars",
    "longest_symbol_run",
    "max_term_rarity",
    "mean_term_rarity",
    "error_words",
    "fatal_words",
];

/// Which failure vocabulary the ASCII letters `word` belong to, ignoring case: words with
/// which logs report a fatal or critical condition (syslog's top levels included), or an error,
/// across syslog, kernels, services and auth logs. An unsupervised model cannot know that
/// "error" or "FATAL" matter more than "INFO"; the two features counting them tell it, and
/// cost nothing on web payloads, which rarely contain them.
fn failure_class(word: &[u8]) -> Option<FailureClass> {
    let mut lower = [0u8; 12];
    let lower = lower.get_mut(..word.len())?;
    for (l, b) in lower.iter_mut().zip(word) {
        *l = b.to_ascii_lowercase();
    }
    match &*lower {
        b"alert" | b"corrupt" | b"corrupted" | b"crash" | b"crashed" | b"crit" | b"critical"
        | b"emerg" | b"emergency" | b"fatal" | b"panic" | b"segfault" | b"severe" => {
            Some(FailureClass::Fatal)
        }
        b"abort" | b"aborted" | b"denied" | b"err" | b"error" | b"errors" | b"exception"
        | b"fail" | b"failed" | b"failure" | b"fails" | b"forbidden" | b"illegal" | b"invalid"
        | b"killed" | b"refused" | b"rejected" | b"timeout" | b"unauthorized" | b"unreachable"
        | b"violation" => Some(FailureClass::Error),
        _ => None,
    }
}

enum FailureClass {
    Error,
    Fatal,
}

/// Byte classes a scan needs as it goes (everything counted per byte value comes from the
/// histogram afterwards).
const WORD: u8 = 1; // ASCII letter, digit or `_`: part of a token
const LETTER: u8 = 2; // ASCII letter: part of a word of the failure vocabulary
const PUNCT: u8 = 4; // ASCII punctuation: part of a symbol run
const LOOKAHEAD: u8 = 8; // `-`, `/`, `.`, `%`: may start a comment, traversal or escape

const CLASSES: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        if c.is_ascii_alphanumeric() || c == b'_' {
            t[b] |= WORD;
        }
        if c.is_ascii_alphabetic() {
            t[b] |= LETTER;
        }
        if c.is_ascii_punctuation() {
            t[b] |= PUNCT;
        }
        if matches!(c, b'-' | b'/' | b'.' | b'%') {
            t[b] |= LOOKAHEAD;
        }
        b += 1;
    }
    t
};

/// Sum of `histogram` over the byte ranges `ranges`.
fn count(histogram: &[u32; 256], ranges: &[std::ops::RangeInclusive<u8>]) -> u32 {
    ranges
        .iter()
        .map(|r| {
            histogram[*r.start() as usize..=*r.end() as usize]
                .iter()
                .sum::<u32>()
        })
        .sum()
}

/// Sum of `histogram` over `bytes`.
fn count_of(histogram: &[u32; 256], bytes: &[u8]) -> u32 {
    bytes.iter().map(|&b| histogram[b as usize]).sum()
}

/// Computes the structural features of `text` into `out`.
///
/// `term_idf` yields the idf of each of the line's in-vocabulary words; `unknown_idf` is the
/// rarity given to a line without any (rarer than every known word).
pub(crate) fn structural_features(
    text: &str,
    term_idf: impl Iterator<Item = f64>,
    unknown_idf: f64,
    out: &mut [f64; N_STRUCTURAL],
) {
    let bytes = text.as_bytes();
    let mut histogram = [0u32; 256];
    let (mut comments, mut traversals, mut escapes) = (0u32, 0u32, 0u32);
    let (mut tokens, mut token_run, mut longest_token) = (0u32, 0u32, 0u32);
    let (mut symbol_run, mut longest_symbol_run) = (0u32, 0u32);
    let (mut error_words, mut fatal_words, mut word_start) = (0u32, 0u32, 0usize);

    for (i, &b) in bytes.iter().enumerate() {
        histogram[b as usize] += 1;
        let class = CLASSES[b as usize];
        let next = bytes.get(i + 1).copied().unwrap_or(0);
        if class & LETTER == 0 {
            word_start = i + 1;
        } else if CLASSES[next as usize] & LETTER == 0 {
            match failure_class(&bytes[word_start..=i]) {
                Some(FailureClass::Fatal) => fatal_words += 1,
                Some(FailureClass::Error) => error_words += 1,
                None => {}
            }
        }
        if class & WORD != 0 {
            token_run += 1;
        } else {
            if token_run >= 2 {
                tokens += 1;
            }
            longest_token = longest_token.max(token_run);
            token_run = 0;
        }
        if class & PUNCT != 0 {
            symbol_run += 1;
            longest_symbol_run = longest_symbol_run.max(symbol_run);
        } else {
            symbol_run = 0;
        }
        if class & LOOKAHEAD != 0 {
            match b {
                b'-' if next == b'-' => comments += 1,
                b'/' if next == b'*' => comments += 1,
                b'.' if next == b'.' && matches!(bytes.get(i + 2), Some(b'/' | b'\\')) => {
                    traversals += 1
                }
                b'%' if next.is_ascii_hexdigit()
                    && bytes.get(i + 2).is_some_and(|c| c.is_ascii_hexdigit()) =>
                {
                    escapes += 1
                }
                _ => {}
            }
        }
    }
    if token_run >= 2 {
        tokens += 1;
    }
    longest_token = longest_token.max(token_run);
    let h = &histogram;
    let digits = count(h, &[b'0'..=b'9']);
    let upper = count(h, &[b'A'..=b'Z']);
    let letters = upper + count(h, &[b'a'..=b'z']);
    let symbols = count(h, &[b'!'..=b'/', b':'..=b'@', b'['..=b'`', b'{'..=b'~']);
    let spaces = count_of(h, b" \t\r\n");
    let non_ascii = count(h, &[0x80..=0xff]);
    let quotes = count_of(h, b"'\"`");
    let brackets = count_of(h, b"()[]{}<>");
    comments += h[b'#' as usize];
    let shell = count_of(h, b";|&$`");

    let len = bytes.len().max(1) as f64;
    let entropy = histogram
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = f64::from(c) / len;
            -p * p.log2()
        })
        .sum::<f64>();
    let (mut max_idf, mut idf_sum, mut n_terms) = (0.0f64, 0.0, 0u32);
    for idf in term_idf {
        max_idf = max_idf.max(idf);
        idf_sum += idf;
        n_terms += 1;
    }
    let mean_idf = if n_terms == 0 {
        max_idf = unknown_idf;
        unknown_idf
    } else {
        idf_sum / f64::from(n_terms)
    };
    let ln = |n: u32| f64::from(n).ln_1p();
    *out = [
        (bytes.len() as f64).ln_1p(),
        entropy,
        f64::from(digits) / len,
        f64::from(letters) / len,
        f64::from(upper) / len,
        f64::from(symbols) / len,
        f64::from(spaces) / len,
        f64::from(non_ascii) / len,
        ln(tokens),
        ln(longest_token),
        ln(quotes),
        ln(brackets),
        ln(comments),
        ln(traversals),
        ln(escapes),
        ln(shell),
        ln(longest_symbol_run),
        max_idf,
        mean_idf,
        ln(error_words),
        ln(fatal_words),
    ];
}

#[cfg(test)]
mod tests {
    use super::*;

    fn features(text: &str) -> [f64; N_STRUCTURAL] {
        let mut out = [0.0; N_STRUCTURAL];
        structural_features(text, std::iter::empty(), 9.0, &mut out);
        out
    }

    fn get(f: &[f64; N_STRUCTURAL], name: &str) -> f64 {
        f[NAMES.iter().position(|n| *n == name).unwrap()]
    }

    #[test]
    fn attacks_look_different_from_plain_text() {
        let plain = features("user alice logged in from host workstation");
        let sqli = features("id=1' OR '1'='1' -- /* x */ UNION SELECT (password) FROM users");
        let traversal = features("GET /../../etc/passwd%00 HTTP/1.1");
        assert!(get(&sqli, "quotes") > get(&plain, "quotes"));
        assert!(get(&sqli, "comment_markers") > 0.0);
        assert!(get(&sqli, "symbol_ratio") > get(&plain, "symbol_ratio"));
        assert_eq!(get(&traversal, "path_traversals"), 2f64.ln_1p());
        assert_eq!(get(&traversal, "percent_escapes"), 1f64.ln_1p());
        assert_eq!(get(&plain, "tokens"), 7f64.ln_1p());
        assert_eq!(get(&plain, "max_term_rarity"), 9.0);
    }

    #[test]
    fn failure_vocabulary_is_counted_by_whole_word_ignoring_case() {
        let fatal = features("RAS KERNEL FATAL data TLB error interrupt");
        assert_eq!(get(&fatal, "fatal_words"), 1f64.ln_1p());
        assert_eq!(get(&fatal, "error_words"), 1f64.ln_1p());
        let auth = features("sshd[42]: Failed password for root; ERROR: access denied");
        assert_eq!(get(&auth, "error_words"), 3f64.ln_1p());
        assert_eq!(get(&auth, "fatal_words"), 0.0);
        let lookalikes = features("terror errorless panicky fatalities");
        assert_eq!(get(&lookalikes, "error_words"), 0.0);
        assert_eq!(get(&lookalikes, "fatal_words"), 0.0);
        // Parts of identifiers count: "disk_error" reports an error.
        assert_eq!(get(&features("disk_error=1"), "error_words"), 1f64.ln_1p());
    }

    #[test]
    fn empty_and_odd_lines_are_finite() {
        for text in ["", "é", "\u{0}\u{0}", "%", "..", "a"] {
            assert!(features(text).iter().all(|v| v.is_finite()), "{text:?}");
        }
        let mut out = [0.0; N_STRUCTURAL];
        structural_features("x y", [2.0, 4.0].into_iter(), 9.0, &mut out);
        assert_eq!(
            (get(&out, "max_term_rarity"), get(&out, "mean_term_rarity")),
            (4.0, 3.0)
        );
    }
}
