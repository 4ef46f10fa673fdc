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

/// Words with which logs report an error (fatal ones are in [`FATAL_WORDS`]), across syslog,
/// kernels, services and auth logs. An unsupervised model cannot know that "error" or
/// "FATAL" matter more than "INFO"; these two features tell it, and cost nothing on web
/// payloads, which rarely contain them.
const ERROR_WORDS: &[&str] = &[
    "abort",
    "aborted",
    "denied",
    "err",
    "error",
    "errors",
    "exception",
    "fail",
    "failed",
    "failure",
    "fails",
    "forbidden",
    "illegal",
    "invalid",
    "killed",
    "refused",
    "rejected",
    "timeout",
    "unauthorized",
    "unreachable",
    "violation",
];

/// Words with which logs report a fatal or critical condition (syslog's top levels included).
const FATAL_WORDS: &[&str] = &[
    "alert",
    "corrupt",
    "corrupted",
    "crash",
    "crashed",
    "crit",
    "critical",
    "emerg",
    "emergency",
    "fatal",
    "panic",
    "segfault",
    "severe",
];

/// Which failure vocabulary the ASCII letters `word` belong to, ignoring case.
fn failure_class(word: &[u8]) -> Option<FailureClass> {
    let mut lower = [0u8; 16];
    let lower = lower.get_mut(..word.len())?;
    for (l, b) in lower.iter_mut().zip(word) {
        *l = b.to_ascii_lowercase();
    }
    let is_in = |words: &[&str]| words.iter().any(|w| w.as_bytes() == lower);
    if is_in(FATAL_WORDS) {
        Some(FailureClass::Fatal)
    } else if is_in(ERROR_WORDS) {
        Some(FailureClass::Error)
    } else {
        None
    }
}

enum FailureClass {
    Error,
    Fatal,
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
    let (mut digits, mut letters, mut upper, mut symbols, mut spaces, mut non_ascii) =
        (0u32, 0u32, 0u32, 0u32, 0u32, 0u32);
    let (mut quotes, mut brackets, mut comments, mut traversals, mut escapes, mut shell) =
        (0u32, 0u32, 0u32, 0u32, 0u32, 0u32);
    let (mut tokens, mut token_run, mut longest_token) = (0u32, 0u32, 0u32);
    let (mut symbol_run, mut longest_symbol_run) = (0u32, 0u32);
    let (mut error_words, mut fatal_words, mut word_start) = (0u32, 0u32, 0usize);

    for (i, &b) in bytes.iter().enumerate() {
        histogram[b as usize] += 1;
        let next = bytes.get(i + 1).copied().unwrap_or(0);
        if !b.is_ascii_alphabetic() {
            word_start = i + 1;
        } else if !next.is_ascii_alphabetic() {
            match failure_class(&bytes[word_start..=i]) {
                Some(FailureClass::Fatal) => fatal_words += 1,
                Some(FailureClass::Error) => error_words += 1,
                None => {}
            }
        }
        if b.is_ascii_alphanumeric() || b == b'_' {
            token_run += 1;
        } else {
            if token_run >= 2 {
                tokens += 1;
            }
            longest_token = longest_token.max(token_run);
            token_run = 0;
        }
        if b.is_ascii_punctuation() {
            symbols += 1;
            symbol_run += 1;
            longest_symbol_run = longest_symbol_run.max(symbol_run);
        } else {
            symbol_run = 0;
        }
        match b {
            b'0'..=b'9' => digits += 1,
            b'A'..=b'Z' => {
                letters += 1;
                upper += 1;
            }
            b'a'..=b'z' => letters += 1,
            b' ' | b'\t' | b'\r' | b'\n' => spaces += 1,
            b'\'' | b'"' | b'`' => quotes += 1,
            b'(' | b')' | b'[' | b']' | b'{' | b'}' | b'<' | b'>' => brackets += 1,
            b'#' => comments += 1,
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
            _ if b >= 0x80 => non_ascii += 1,
            _ => {}
        }
        if matches!(b, b';' | b'|' | b'&' | b'$' | b'`') {
            shell += 1;
        }
    }
    if token_run >= 2 {
        tokens += 1;
    }
    longest_token = longest_token.max(token_run);

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
