//! The decoding a web application firewall applies before matching: percent-encoding
//! (repeatedly, with `+` and `%uXXXX`), HTML entities and backslash escapes, then, for
//! matching only, case folding and SQL comment and whitespace normalisation.
//!
//! Bounded on hostile input: every pass shrinks or keeps the text (no escape decodes to more
//! bytes than it takes), passes stop at [`MAX_PASSES`] or when nothing changes, and bytes that
//! do not form UTF-8 after decoding become U+FFFD.

/// Most decoding passes over one fragment (an attacker nesting encodings deeper than this
/// gains nothing: the fragment stays encoded and looks unusual to the anomaly model).
pub const MAX_PASSES: usize = 8;

/// Whether `s` holds anything [`decode_into`] would change.
pub fn needs_decoding(s: &str) -> bool {
    s.bytes().any(|b| matches!(b, b'%' | b'+' | b'&' | b'\\'))
}

/// Decodes `raw` into `out` (cleared first): percent-encoding (`+` as a space when
/// `plus_is_space`), `%uXXXX`, HTML entities and backslash escapes, repeated until stable.
pub fn decode_into(raw: &str, plus_is_space: bool, out: &mut String) {
    out.clear();
    if !needs_decoding(raw) {
        out.push_str(raw);
        return;
    }
    let mut current = raw.as_bytes().to_vec();
    let mut next = Vec::with_capacity(current.len());
    for pass in 0..MAX_PASSES {
        next.clear();
        decode_pass(&current, plus_is_space && pass == 0, &mut next);
        if next == current {
            break;
        }
        std::mem::swap(&mut current, &mut next);
    }
    out.push_str(&String::from_utf8_lossy(&current));
}

fn hex(b: u8) -> Option<u32> {
    (b as char).to_digit(16)
}

/// `n` hex digits at `s[at..]`.
fn hex_at(s: &[u8], at: usize, n: usize) -> Option<u32> {
    let digits = s.get(at..at + n)?;
    digits.iter().try_fold(0u32, |v, &d| Some(v * 16 + hex(d)?))
}

fn push_char(out: &mut Vec<u8>, c: u32) {
    let c = char::from_u32(c).unwrap_or(char::REPLACEMENT_CHARACTER);
    let mut buf = [0; 4];
    out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
}

/// One pass of every decoding; never writes more bytes than it reads.
fn decode_pass(s: &[u8], plus_is_space: bool, out: &mut Vec<u8>) {
    let mut i = 0;
    while i < s.len() {
        let b = s[i];
        match b {
            b'%' => {
                if matches!(s.get(i + 1), Some(b'u' | b'U'))
                    && let Some(c) = hex_at(s, i + 2, 4)
                {
                    push_char(out, c);
                    i += 6;
                } else if let Some(c) = hex_at(s, i + 1, 2) {
                    out.push(c as u8);
                    i += 3;
                } else {
                    out.push(b);
                    i += 1;
                }
            }
            b'+' if plus_is_space => {
                out.push(b' ');
                i += 1;
            }
            b'\\' => match s.get(i + 1) {
                Some(b'x' | b'X') if hex_at(s, i + 2, 2).is_some() => {
                    out.push(hex_at(s, i + 2, 2).unwrap_or(0) as u8);
                    i += 4;
                }
                Some(b'u' | b'U') if hex_at(s, i + 2, 4).is_some() => {
                    push_char(out, hex_at(s, i + 2, 4).unwrap_or(0));
                    i += 6;
                }
                _ => {
                    out.push(b);
                    i += 1;
                }
            },
            b'&' => match entity(&s[i..]) {
                Some((c, len)) => {
                    push_char(out, c);
                    i += len;
                }
                None => {
                    out.push(b);
                    i += 1;
                }
            },
            _ => {
                out.push(b);
                i += 1;
            }
        }
    }
}

/// An HTML entity at the start of `s` (`&lt;`, `&#39;`, `&#x27;`, with or without the `;`
/// for numeric ones): the character and the entity's length.
fn entity(s: &[u8]) -> Option<(u32, usize)> {
    const NAMED: [(&[u8], u32); 9] = [
        (b"&lt;", '<' as u32),
        (b"&gt;", '>' as u32),
        (b"&amp;", '&' as u32),
        (b"&quot;", '"' as u32),
        (b"&apos;", '\'' as u32),
        (b"&sol;", '/' as u32),
        (b"&lpar;", '(' as u32),
        (b"&rpar;", ')' as u32),
        (b"&colon;", ':' as u32),
    ];
    if s.get(1) == Some(&b'#') {
        let (start, radix) = match s.get(2) {
            Some(b'x' | b'X') => (3, 16),
            _ => (2, 10),
        };
        let digits = s[start..]
            .iter()
            .take(8)
            .take_while(|b| (**b as char).is_digit(radix))
            .count();
        if digits == 0 {
            return None;
        }
        let text = std::str::from_utf8(&s[start..start + digits]).ok()?;
        let c = u32::from_str_radix(text, radix).ok()?;
        let semicolon = usize::from(s.get(start + digits) == Some(&b';'));
        return Some((c, start + digits + semicolon));
    }
    NAMED
        .iter()
        .find(|(name, _)| s.len() >= name.len() && s[..name.len()].eq_ignore_ascii_case(name))
        .map(|&(name, c)| (c, name.len()))
}

/// The form signatures match: lower case, SQL comments (`/* … */`) as a space, runs of white
/// space as one space. Appends to `out`.
pub fn normalize_into(decoded: &str, out: &mut String) {
    out.clear();
    let mut last_space = false;
    let space = |out: &mut String, last_space: &mut bool| {
        if !*last_space {
            out.push(' ');
            *last_space = true;
        }
    };
    let bytes = decoded.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'/' && bytes.get(i + 1) == Some(&b'*') {
            i = decoded[i + 2..]
                .find("*/")
                .map_or(bytes.len(), |end| i + 2 + end + 2);
            space(out, &mut last_space);
        } else if b.is_ascii() {
            if b.is_ascii_whitespace() {
                space(out, &mut last_space);
            } else {
                out.push(b.to_ascii_lowercase() as char);
                last_space = false;
            }
            i += 1;
        } else {
            let c = decoded[i..]
                .chars()
                .next()
                .unwrap_or(char::REPLACEMENT_CHARACTER);
            if c.is_whitespace() {
                space(out, &mut last_space);
            } else {
                out.extend(c.to_lowercase());
                last_space = false;
            }
            i += c.len_utf8();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decoded(s: &str) -> String {
        let mut out = String::new();
        decode_into(s, true, &mut out);
        out
    }

    #[test]
    fn decodes_what_a_waf_decodes() {
        assert_eq!(decoded("1%27%20UNION%20SELECT"), "1' UNION SELECT");
        assert_eq!(decoded("a+b%2Bc"), "a b+c");
        assert_eq!(decoded("%252e%252e%252f"), "../");
        assert_eq!(decoded("%u0027or"), "'or");
        assert_eq!(decoded("&lt;script&gt;&#x61;&#98"), "<script>ab");
        assert_eq!(decoded("\\x3cimg\\u0020src"), "<img src");
        assert_eq!(decoded("100%"), "100%");
        assert_eq!(decoded("%zz%4"), "%zz%4");
    }

    #[test]
    fn twenty_nested_encodings_stop_after_the_pass_limit() {
        let mut s = "%27".to_string();
        for _ in 1..20 {
            s = s.replace('%', "%25");
        }
        let out = decoded(&s);
        assert!(out.len() < s.len() && out.starts_with('%'), "{out}");
    }

    #[test]
    fn normalizes_for_matching() {
        let mut out = String::new();
        normalize_into("UNION/**/SELECT \t\n  Pass/* x", &mut out);
        assert_eq!(out, "union select pass ");
    }
}
