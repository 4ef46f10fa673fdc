//! Understanding a log line before featurizing it: which shape it has (web access log, raw
//! HTTP request, syslog, JSON, key=value, plain text), which parts of it can carry an attack
//! (request target, query values, body, user agent, referrer, program and message) and which
//! only identify (timestamps, addresses, pids, sizes), and the decoded form of the parts that
//! can carry one.
//!
//! ```
//! use soc_core::line::{Part, Shape, parse};
//!
//! let line = r#"203.0.113.7 - - [10/Oct/2026:13:55:36 +0000] "GET /item?id=1%27%20OR%201=1-- HTTP/1.1" 200 512 "-" "sqlmap/1.7""#;
//! let parsed = parse(line);
//! assert_eq!(parsed.shape, Shape::AccessLog);
//! let id = parsed.fields.iter().find(|f| f.part == Part::Value).unwrap();
//! assert_eq!(id.decoded, "1' OR 1=1--");
//! assert!(parsed.fields.iter().any(|f| f.part == Part::UserAgent && f.decoded == "sqlmap/1.7"));
//! ```

mod decode;

use std::ops::Range;

pub use decode::{MAX_PASSES, decode_into, needs_decoding, normalize_into};

/// The shape of a log line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    /// Apache / Nginx common or combined log format.
    AccessLog,
    /// A raw HTTP request line (`GET /path?query HTTP/1.1`).
    HttpRequest,
    /// RFC 3164 or RFC 5424 syslog.
    Syslog,
    /// A JSON object.
    Json,
    /// `key=value` pairs.
    KeyValue,
    /// Anything else: the whole line can carry an attack.
    Plain,
}

/// What a part of a line is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Part {
    /// The path of a request target.
    Path,
    /// One value of a query string, form body or `key=value` event.
    Value,
    /// A request body.
    Body,
    /// The `User-Agent` of a request.
    UserAgent,
    /// The `Referer` of a request.
    Referrer,
    /// The program of a syslog line.
    Program,
    /// Free text: a syslog or JSON message, or a whole plain line.
    Message,
}

/// A part of a line that can carry an attack.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Field {
    /// What the part is.
    pub part: Part,
    /// Where it is in the line (bytes).
    pub span: Range<usize>,
    /// Its decoded form (see [`decode_into`]).
    pub decoded: String,
}

/// A parsed line: its shape and its attack-carrying parts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParsedLine {
    /// The line's shape.
    pub shape: Shape,
    /// The parts that can carry an attack, in line order.
    pub fields: Vec<Field>,
}

/// Parses `line` (see the module documentation).
pub fn parse(line: &str) -> ParsedLine {
    let mut spans = Vec::new();
    let shape = split(line, &mut spans);
    let fields = spans
        .into_iter()
        .map(|(part, span)| {
            let mut decoded = String::new();
            decode_into(&line[span.clone()], part == Part::Value, &mut decoded);
            Field {
                part,
                span,
                decoded,
            }
        })
        .collect();
    ParsedLine { shape, fields }
}

/// `line` with its attack-carrying parts decoded (into `out`, cleared first): the text the
/// detector's features see. Identifying parts are kept as they are.
pub fn decode_line(line: &str, out: &mut String) {
    let mut spans = Vec::new();
    split(line, &mut spans);
    out.clear();
    let mut decoded = String::new();
    let mut copied = 0;
    for (part, span) in spans {
        decode_into(&line[span.clone()], part == Part::Value, &mut decoded);
        out.push_str(&line[copied..span.start]);
        out.push_str(&decoded);
        copied = span.end;
    }
    out.push_str(&line[copied..]);
}

const METHODS: [&str; 9] = [
    "GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH", "CONNECT", "TRACE",
];

/// The method at the start of `s` followed by a space, if any.
fn method_len(s: &str) -> Option<usize> {
    METHODS
        .iter()
        .find(|m| s.len() > m.len() && s.starts_with(*m) && s.as_bytes()[m.len()] == b' ')
        .map(|m| m.len())
}

/// Finds the shape of `line` and pushes the spans of its attack-carrying parts.
pub(crate) fn split(line: &str, out: &mut Vec<(Part, Range<usize>)>) -> Shape {
    out.clear();
    let trimmed = line.trim_start();
    let lead = line.len() - trimmed.len();
    if let Some(m) = method_len(trimmed) {
        request(line, lead + m + 1, out);
        return Shape::HttpRequest;
    }
    if trimmed.starts_with('{') {
        out.push((Part::Message, lead..line.len()));
        return Shape::Json;
    }
    if let Some(shape) = access_log(line, out) {
        return shape;
    }
    if let Some(shape) = syslog(line, out) {
        return shape;
    }
    if key_values(line, out) {
        return Shape::KeyValue;
    }
    out.push((Part::Message, 0..line.len()));
    Shape::Plain
}

/// A request target starting at `at` (up to the next space or the end), then an optional
/// `HTTP/x` and, for a raw request, anything after it as the body.
fn request(line: &str, at: usize, out: &mut Vec<(Part, Range<usize>)>) {
    let rest = &line[at..];
    // A target may hold spaces (an unencoded attack): it runs to ` HTTP/`, or to the end of a
    // line without a version.
    let target_end = at + rest.find(" HTTP/").unwrap_or(rest.trim_end().len());
    target(line, at..target_end, out);
    let after = &line[target_end..];
    let body_at = after
        .strip_prefix(' ')
        .filter(|a| a.starts_with("HTTP/"))
        .map(|a| target_end + 1 + a.find(' ').unwrap_or(a.len()))
        .unwrap_or(target_end);
    let body = line[body_at..].trim();
    if !body.is_empty() {
        let start = body_at + line[body_at..].find(body).unwrap_or(0);
        query(line, start..start + body.len(), Part::Body, out);
    }
}

/// A request target: its path and each query value.
fn target(line: &str, span: Range<usize>, out: &mut Vec<(Part, Range<usize>)>) {
    let t = &line[span.clone()];
    match t.find('?') {
        Some(q) => {
            out.push((Part::Path, span.start..span.start + q));
            query(line, span.start + q + 1..span.end, Part::Value, out);
        }
        None => out.push((Part::Path, span)),
    }
}

/// `a=1&b=2` as values; anything without `=` as one `whole` part.
fn query(line: &str, span: Range<usize>, whole: Part, out: &mut Vec<(Part, Range<usize>)>) {
    let q = &line[span.clone()];
    if !q.contains('=') {
        if !q.is_empty() {
            out.push((whole, span));
        }
        return;
    }
    let mut at = span.start;
    for pair in q.split('&') {
        let value = match pair.find('=') {
            Some(eq) => at + eq + 1..at + pair.len(),
            None => at..at + pair.len(),
        };
        if !value.is_empty() {
            out.push((Part::Value, value));
        }
        at += pair.len() + 1;
    }
}

/// `host ident user [time] "METHOD target HTTP/x" status size ["referrer" "agent"]`.
fn access_log(line: &str, out: &mut Vec<(Part, Range<usize>)>) -> Option<Shape> {
    let open = line.find("] \"")? + 3;
    if !line[..open].contains(" [") {
        return None;
    }
    let m = method_len(&line[open..])?;
    // The request ends at the last `" ` before the status code.
    let close = open + line[open..].find("\" ")?;
    request_in_quotes(line, open + m + 1..close, out);
    let mut quoted = quoted_strings(line, close + 1);
    if let Some(referrer) = quoted.next().filter(|r| &line[r.clone()] != "-") {
        out.push((Part::Referrer, referrer));
    }
    if let Some(agent) = quoted.next().filter(|a| !a.is_empty()) {
        out.push((Part::UserAgent, agent));
    }
    Some(Shape::AccessLog)
}

/// The target of a quoted request line (`target HTTP/x` inside `span`).
fn request_in_quotes(line: &str, span: Range<usize>, out: &mut Vec<(Part, Range<usize>)>) {
    let inner = &line[span.clone()];
    let end = inner.rfind(" HTTP/").unwrap_or(inner.len());
    target(line, span.start..span.start + end, out);
}

/// The spans inside `"…"` strings after `from`.
fn quoted_strings(line: &str, from: usize) -> impl Iterator<Item = Range<usize>> + '_ {
    let mut at = from;
    std::iter::from_fn(move || {
        let open = at + line.get(at..)?.find('"')? + 1;
        let close = open + line[open..].find('"')?;
        at = close + 1;
        Some(open..close)
    })
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// RFC 3164 (`[<pri>]Mmm dd hh:mm:ss host prog[pid]: msg`) or RFC 5424
/// (`<pri>1 time host app procid msgid [sd] msg`).
fn syslog(line: &str, out: &mut Vec<(Part, Range<usize>)>) -> Option<Shape> {
    let mut at = 0;
    if line.starts_with('<') {
        at = line.find('>')? + 1;
        if at > 5 {
            return None;
        }
    }
    let rest = &line[at..];
    if rest.starts_with("1 ") {
        // RFC 5424: six header fields, then structured data and the message.
        let mut fields = 0;
        let mut pos = at + 2;
        let mut app = None;
        while fields < 5 {
            let next = line[pos..].find(' ')? + pos;
            if fields == 2 {
                app = Some(pos..next);
            }
            pos = next + 1;
            fields += 1;
        }
        if let Some(app) = app.filter(|a| &line[a.clone()] != "-") {
            out.push((Part::Program, app));
        }
        let msg = if line[pos..].starts_with('-') {
            pos + 1
        } else if line[pos..].starts_with('[') {
            pos + line[pos..].find("] ").map_or(line.len() - pos, |e| e + 1)
        } else {
            pos
        };
        let msg = msg + line[msg..].len() - line[msg..].trim_start().len();
        if msg < line.len() {
            out.push((Part::Message, msg..line.len()));
        }
        return Some(Shape::Syslog);
    }
    if !MONTHS.iter().any(|m| rest.starts_with(m)) || rest.len() < 16 {
        return None;
    }
    // `Mmm dd hh:mm:ss host ` then `prog[pid]: ` or `prog: `.
    let after_time = at + 16;
    let host_end = after_time + line.get(after_time..)?.find(' ')?;
    let tag_start = host_end + 1;
    let colon = line[tag_start..].find(": ").map(|c| tag_start + c);
    match colon {
        Some(c) if !line[tag_start..c].contains(' ') => {
            let prog_end = line[tag_start..c].find('[').map_or(c, |b| tag_start + b);
            out.push((Part::Program, tag_start..prog_end));
            out.push((Part::Message, c + 2..line.len()));
        }
        _ => out.push((Part::Message, tag_start..line.len())),
    }
    Some(Shape::Syslog)
}

/// Two or more `key=value` pairs separated by spaces: each value (quotes stripped).
fn key_values(line: &str, out: &mut Vec<(Part, Range<usize>)>) -> bool {
    let start = out.len();
    let mut at = 0;
    let bytes = line.as_bytes();
    while at < line.len() {
        let Some(eq) = line[at..].find('=').map(|e| at + e) else {
            break;
        };
        let key_start = line[at..eq].rfind(' ').map_or(at, |s| at + s + 1);
        let key_ok = eq > key_start
            && line[key_start..eq]
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
        let (value, next) = if bytes.get(eq + 1) == Some(&b'"') {
            let close = line[eq + 2..].find('"').map_or(line.len(), |c| eq + 2 + c);
            (eq + 2..close, close + 1)
        } else {
            let end = line[eq + 1..].find(' ').map_or(line.len(), |e| eq + 1 + e);
            (eq + 1..end, end)
        };
        if key_ok && !value.is_empty() {
            out.push((Part::Value, value));
        }
        at = next.max(eq + 1);
    }
    if out.len() - start >= 2 {
        true
    } else {
        out.truncate(start);
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(line: &str) -> (Shape, Vec<(Part, String)>) {
        let p = parse(line);
        let fields = p.fields.into_iter().map(|f| (f.part, f.decoded)).collect();
        (p.shape, fields)
    }

    #[test]
    fn combined_log_format() {
        let (shape, f) = parts(
            r#"198.51.100.4 - bob [01/Jan/2026:00:00:01 +0000] "GET /a/b.php?x=1&q=%3Cscript%3E HTTP/1.1" 200 12 "http://ex.com/" "Mozilla/5.0 (X11)""#,
        );
        assert_eq!(shape, Shape::AccessLog);
        assert_eq!(
            f,
            [
                (Part::Path, "/a/b.php".into()),
                (Part::Value, "1".into()),
                (Part::Value, "<script>".into()),
                (Part::Referrer, "http://ex.com/".into()),
                (Part::UserAgent, "Mozilla/5.0 (X11)".into()),
            ]
        );
    }

    #[test]
    fn raw_requests_with_unencoded_attacks() {
        let (shape, f) = parts("GET /index.php?id=1' UNION SELECT password FROM users--");
        assert_eq!(shape, Shape::HttpRequest);
        assert_eq!(
            f[1],
            (Part::Value, "1' UNION SELECT password FROM users--".into())
        );
        let (_, f) = parts("POST /login HTTP/1.1 user=admin&pass=x%27+or+1%3D1");
        assert_eq!(f[2], (Part::Value, "x' or 1=1".into()));
    }

    #[test]
    fn syslog_headers() {
        let (shape, f) = parts(
            "Dec  8 01:02:03 web-01 sshd[411]: Failed password for root from 203.0.113.7 port 22 ssh2",
        );
        assert_eq!(shape, Shape::Syslog);
        assert_eq!(f[0], (Part::Program, "sshd".into()));
        assert_eq!(
            f[1],
            (
                Part::Message,
                "Failed password for root from 203.0.113.7 port 22 ssh2".into()
            )
        );
        let (shape, f) =
            parts("<34>1 2026-12-08T01:02:03Z host su - ID47 - 'su root' failed on /dev/pts/8");
        assert_eq!(shape, Shape::Syslog);
        assert_eq!(f[0], (Part::Program, "su".into()));
        assert_eq!(
            f[1],
            (Part::Message, "'su root' failed on /dev/pts/8".into())
        );
    }

    #[test]
    fn key_values_json_and_plain() {
        let (shape, f) = parts(r#"time=1 user=bob cmd="cat /etc/shadow""#);
        assert_eq!(shape, Shape::KeyValue);
        assert_eq!(f[2], (Part::Value, "cat /etc/shadow".into()));
        assert_eq!(parts(r#"{"message":"x"}"#).0, Shape::Json);
        assert_eq!(parts("vssadmin delete shadows /all /quiet").0, Shape::Plain);
    }

    #[test]
    fn hostile_lines_do_not_panic() {
        for line in [
            "",
            "<",
            "<999999",
            "GET ",
            "GET  ",
            "] \"GET",
            "a] \"GET x\" ",
            "<1>1 a b",
            "Jan",
            "%",
            "=",
            "a= b=",
            "x=\"",
            "\u{FFFD}=\u{FFFD} é=ü",
        ] {
            let _ = parse(line);
        }
    }
}
