//! Test harness: a server on port 0 over a fresh SQLite file or a fresh PostgreSQL database
//! (when `SOC_TEST_PG_URL` points at a PostgreSQL server; `scripts/with-postgres.sh` sets it).
#![allow(dead_code, unreachable_pub)]

pub mod s3;

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::Value;
use soc_server::{AppState, Config, Db, auth};

/// Which database a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

static COUNTER: AtomicU64 = AtomicU64::new(0);

fn unique(prefix: &str) -> String {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("{prefix}_{}_{n}_{nanos}", std::process::id())
}

/// A fresh temporary directory.
pub fn temp_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(unique("soc-server-test"));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The PostgreSQL server URL for tests, if any.
pub fn pg_url() -> Option<String> {
    std::env::var("SOC_TEST_PG_URL")
        .ok()
        .filter(|u| !u.is_empty())
}

/// A URL of a fresh, empty database on `backend`; `None` when PostgreSQL is not available.
pub async fn fresh_database(backend: Backend, dir: &std::path::Path) -> Option<String> {
    match backend {
        Backend::Sqlite => Some(format!("sqlite://{}", dir.join("soc.db").display())),
        Backend::Postgres => {
            let url = pg_url()?;
            let name = unique("soc_t");
            let admin = Db::connect(&url).await.expect("connect to SOC_TEST_PG_URL");
            if let Db::Postgres(p) = &admin {
                sqlx::query(&format!("CREATE DATABASE {name}"))
                    .execute(p)
                    .await
                    .unwrap();
            }
            admin.close().await;
            // Replace the database name (the last path segment, before any query string).
            let (base, query) = match url.split_once('?') {
                Some((b, q)) => (b.to_owned(), format!("?{q}")),
                None => (url.clone(), String::new()),
            };
            let cut = base.rfind('/').expect("database URL with a path");
            Some(format!("{}/{name}{query}", &base[..cut]))
        }
    }
}

/// A connected, migrated `Db` on a fresh database.
pub async fn fresh_db(backend: Backend) -> Option<Db> {
    let dir = temp_dir();
    let url = fresh_database(backend, &dir).await?;
    let db = Db::connect(&url).await.unwrap();
    db.migrate().await.unwrap();
    Some(db)
}

/// A running server.
pub struct TestServer {
    pub base: String,
    pub admin_key: String,
    pub state: AppState,
    pub client: reqwest::Client,
}

/// Starts a server on port 0 over a fresh database; `None` when the backend is unavailable.
pub async fn spawn(backend: Backend, ml: bool) -> Option<TestServer> {
    let dir = temp_dir();
    let url = fresh_database(backend, &dir).await?;
    let mut config = Config::defaults();
    config.database_url = Some(url);
    config.data_dir = dir.clone();
    config.log_dir = PathBuf::new();
    config.port = 0;
    config.ml_models_enabled = ml;
    config.max_agents_per_tenant = 1000;
    Some(spawn_with(config, ml).await)
}

/// Starts a server on port 0 with `config` (its database may hold data already: then the
/// admin key is a new key of tenant 1).
pub async fn spawn_with(config: Config, ml: bool) -> TestServer {
    let state = soc_server::connect(config).await.unwrap();
    let admin_key = match soc_server::bootstrap(&state).await.unwrap() {
        Some(key) => key,
        None => {
            auth::create_key(&state.db, 1, auth::Role::Admin, None)
                .await
                .unwrap()
                .1
        }
    };
    if ml {
        soc_server::detection::start(&state).await.unwrap();
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let s = state.clone();
    tokio::spawn(async move {
        soc_server::serve(listener, s, std::future::pending())
            .await
            .unwrap();
    });
    TestServer {
        base: format!("http://{addr}"),
        admin_key,
        state,
        client: reqwest::Client::new(),
    }
}

impl TestServer {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// A new tenant with keys of every role: (tenant id, admin, analyst, agent).
    pub async fn tenant(&self, name: &str) -> (i64, String, String, String) {
        let t = self.state.db.create_tenant(name).await.unwrap().unwrap();
        let key = |role| {
            let db = self.state.db.clone();
            async move { auth::create_key(&db, t.id, role, None).await.unwrap().1 }
        };
        (
            t.id,
            key(auth::Role::Admin).await,
            key(auth::Role::Analyst).await,
            key(auth::Role::Agent).await,
        )
    }

    /// Sends a request and returns (status, JSON body or Null).
    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        key: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut req = self.client.request(method, self.url(path));
        if let Some(k) = key {
            req = req.bearer_auth(k);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    pub async fn get(&self, path: &str, key: &str) -> (u16, Value) {
        self.send(reqwest::Method::GET, path, Some(key), None).await
    }

    pub async fn post(&self, path: &str, key: &str, body: Value) -> (u16, Value) {
        self.send(reqwest::Method::POST, path, Some(key), Some(body))
            .await
    }

    pub async fn patch(&self, path: &str, key: &str, body: Value) -> (u16, Value) {
        self.send(reqwest::Method::PATCH, path, Some(key), Some(body))
            .await
    }

    /// POSTs a raw body.
    pub async fn post_raw(
        &self,
        path: &str,
        key: &str,
        body: impl Into<String>,
        ctype: &str,
    ) -> (u16, Value) {
        let body: String = body.into();
        // A server that rejects an oversize body early answers 413 and closes the connection
        // while the client is still sending: the client may then see a reset instead of the
        // answer (TCP, not the server). Retry a few times to read the answer.
        let mut attempt = 0;
        let resp = loop {
            let r = self
                .client
                .post(self.url(path))
                .bearer_auth(key)
                .header("content-type", ctype)
                .body(body.clone())
                .send()
                .await;
            match r {
                Ok(resp) => break resp,
                Err(e) if attempt < 10 => {
                    attempt += 1;
                    eprintln!("retrying after a connection error: {e}");
                }
                Err(e) => panic!("{e}"),
            }
        };
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// Registers an agent and returns its id.
    pub async fn agent(&self, agent_key: &str, hostname: &str) -> i64 {
        let (s, b) = self
            .post(
                "/api/agents/register",
                agent_key,
                serde_json::json!({"hostname": hostname}),
            )
            .await;
        assert!(s == 201 || s == 200, "{s} {b}");
        b["agent"]["id"].as_i64().unwrap()
    }
}

/// Asserts the error shape and returns the code.
pub fn error_code(body: &Value) -> &str {
    let code = body["error"]["code"]
        .as_str()
        .unwrap_or_else(|| panic!("not an error body: {body}"));
    assert!(body["error"]["message"].is_string(), "{body}");
    code
}

/// Runs each listed async test fn (taking a `Backend`) on SQLite and on PostgreSQL.
#[macro_export]
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() { super::$name($crate::common::Backend::Sqlite).await }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    if $crate::common::pg_url().is_none() {
                        eprintln!("skipped: SOC_TEST_PG_URL is not set (run under scripts/with-postgres.sh)");
                        return;
                    }
                    super::$name($crate::common::Backend::Postgres).await
                }
            )*
        }
    };
}

/// Start (UTC midnight, ms) of the day of `tenant`'s oldest log archivable before `before_ms`:
/// the day an archive run handles first.
pub async fn oldest_archive_day(db: &Db, tenant: i64, before_ms: i64) -> i64 {
    const DAY_MS: i64 = 86_400_000;
    let oldest = db
        .oldest_archivable(tenant, before_ms)
        .await
        .unwrap()
        .expect("an archivable log");
    oldest.div_euclid(DAY_MS) * DAY_MS
}
