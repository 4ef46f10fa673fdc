//! Brute force and password spraying: repeated failed log-ins from one source within a time
//! window. A line alone cannot show either, so this is a small state machine the caller feeds
//! with the failed log-ins it sees, in time order per tenant.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::LazyLock;

use regex::Regex;

use super::AttackClass;

/// A failed log-in recognised in a line: the account tried and the source address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FailedLogin {
    /// The account name.
    pub user: String,
    /// Where the attempt came from.
    pub source: String,
}

static FAILED: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?:Failed (?:password|publickey|keyboard-interactive/pam) for (?:invalid user )?|Invalid user )(\S*) from ([0-9A-Fa-f:.]+)|authentication failure;.*\brhost=([0-9A-Fa-f:.]+)\s+user=(\S+)",
    )
    .expect("the failed log-in pattern compiles")
});

/// The failed log-in in `line` (sshd and PAM wording), if any.
pub fn failed_login(line: &str) -> Option<FailedLogin> {
    if !line.contains("ailed") && !line.contains("nvalid user") && !line.contains("failure") {
        return None;
    }
    let c = FAILED.captures(line)?;
    let (user, source) = match (c.get(1), c.get(2)) {
        (Some(u), Some(s)) => (u.as_str(), s.as_str()),
        _ => (c.get(4)?.as_str(), c.get(3)?.as_str()),
    };
    Some(FailedLogin {
        user: user.to_string(),
        source: source.to_string(),
    })
}

/// What the tracker concluded about a source.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BruteForce {
    /// [`AttackClass::BruteForce`] or [`AttackClass::PasswordSpraying`].
    pub class: AttackClass,
    /// The source address.
    pub source: String,
    /// Failed log-ins from it within the window.
    pub failures: usize,
    /// Distinct accounts tried within the window.
    pub accounts: usize,
}

/// Counts failed log-ins per source over a sliding window and reports a source once it
/// crosses a threshold (again only after it fell back below it).
#[derive(Debug)]
pub struct BruteForceTracker {
    window_ms: i64,
    min_failures: usize,
    min_accounts: usize,
    max_sources: usize,
    sources: HashMap<String, Source>,
}

#[derive(Debug, Default)]
struct Source {
    attempts: VecDeque<(i64, String)>,
    reported: bool,
    last_ms: i64,
}

impl Default for BruteForceTracker {
    /// 5 failures, or 4 distinct accounts, from one source within 10 minutes; at most 100,000
    /// sources tracked.
    fn default() -> Self {
        BruteForceTracker::new(10 * 60 * 1000, 5, 4, 100_000)
    }
}

impl BruteForceTracker {
    /// A tracker reporting `min_failures` failures (or `min_accounts` distinct accounts: a
    /// spray) from one source within `window_ms`, remembering at most `max_sources` sources
    /// (the least recently seen are forgotten first).
    pub fn new(
        window_ms: i64,
        min_failures: usize,
        min_accounts: usize,
        max_sources: usize,
    ) -> Self {
        BruteForceTracker {
            window_ms: window_ms.max(1),
            min_failures: min_failures.max(2),
            min_accounts: min_accounts.max(2),
            max_sources: max_sources.max(1),
            sources: HashMap::new(),
        }
    }

    /// Records a failed log-in at `at_ms`; returns the finding when this attempt makes its
    /// source cross a threshold.
    pub fn record(&mut self, login: &FailedLogin, at_ms: i64) -> Option<BruteForce> {
        if !self.sources.contains_key(&login.source) && self.sources.len() >= self.max_sources {
            self.forget_oldest();
        }
        let window = self.window_ms;
        let s = self.sources.entry(login.source.clone()).or_default();
        s.last_ms = s.last_ms.max(at_ms);
        s.attempts.push_back((at_ms, login.user.clone()));
        while s
            .attempts
            .front()
            .is_some_and(|(t, _)| *t <= s.last_ms - window)
        {
            s.attempts.pop_front();
        }
        // Bounded per source too: the window never needs more than the thresholds' worth.
        while s.attempts.len() > 4 * self.min_failures.max(self.min_accounts) {
            s.attempts.pop_front();
        }
        let failures = s.attempts.len();
        let accounts = s
            .attempts
            .iter()
            .map(|(_, u)| u.as_str())
            .collect::<HashSet<_>>()
            .len();
        let class = if accounts >= self.min_accounts {
            AttackClass::PasswordSpraying
        } else if failures >= self.min_failures {
            AttackClass::BruteForce
        } else {
            s.reported = false;
            return None;
        };
        if std::mem::replace(&mut s.reported, true) {
            return None;
        }
        Some(BruteForce {
            class,
            source: login.source.clone(),
            failures,
            accounts,
        })
    }

    fn forget_oldest(&mut self) {
        if let Some(oldest) = self
            .sources
            .iter()
            .min_by_key(|(_, s)| s.last_ms)
            .map(|(k, _)| k.clone())
        {
            self.sources.remove(&oldest);
        }
    }

    /// Sources currently remembered.
    pub fn len(&self) -> usize {
        self.sources.len()
    }

    /// Whether no source is remembered.
    pub fn is_empty(&self) -> bool {
        self.sources.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn login(user: &str, source: &str) -> FailedLogin {
        FailedLogin {
            user: user.into(),
            source: source.into(),
        }
    }

    #[test]
    fn recognises_sshd_and_pam_failures() {
        let l = failed_login(
            "sshd[1]: Failed password for invalid user oracle from 203.0.113.7 port 4 ssh2",
        );
        assert_eq!(l, Some(login("oracle", "203.0.113.7")));
        let l = failed_login("sshd[1]: Invalid user test from 198.51.100.2 port 5");
        assert_eq!(l, Some(login("test", "198.51.100.2")));
        let l = failed_login(
            "pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost=192.0.2.1  user=root",
        );
        assert_eq!(l, Some(login("root", "192.0.2.1")));
        assert_eq!(
            failed_login("Accepted password for bob from 10.0.0.1 port 2"),
            None
        );
    }

    #[test]
    fn reports_once_per_burst_within_the_window() {
        let mut t = BruteForceTracker::new(60_000, 5, 4, 10);
        let found: Vec<_> = (0..10)
            .filter_map(|i| t.record(&login("root", "203.0.113.7"), i * 1000))
            .collect();
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].class, AttackClass::BruteForce);
        assert_eq!(found[0].failures, 5);
        // Slow attempts (one every two minutes) never fill the window.
        let mut slow = BruteForceTracker::new(60_000, 5, 4, 10);
        assert!((0..20).all(|i| slow.record(&login("root", "a"), i * 120_000).is_none()));
    }

    #[test]
    fn many_accounts_from_one_source_is_a_spray() {
        let mut t = BruteForceTracker::default();
        let found: Vec<_> = ["alice", "bob", "carol", "dave"]
            .iter()
            .enumerate()
            .filter_map(|(i, u)| t.record(&login(u, "198.51.100.2"), i as i64))
            .collect();
        assert_eq!(found[0].class, AttackClass::PasswordSpraying);
    }

    #[test]
    fn memory_is_bounded() {
        let mut t = BruteForceTracker::new(60_000, 5, 4, 100);
        for i in 0..10_000 {
            t.record(&login("root", &format!("10.0.{}.{}", i / 256, i % 256)), i);
        }
        assert_eq!(t.len(), 100);
    }
}
