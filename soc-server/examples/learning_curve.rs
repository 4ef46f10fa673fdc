//! The learning loop, measured through the real API: analyst verdicts arrive in batches
//! (`POST /api/labels`), each batch is followed by `POST /api/models/retrain`, and every model
//! version the server produces is downloaded (`GET /api/models/{version}/artifact`) and scored
//! on one fixed external test split it never trained on.
//!
//! ```text
//! cargo run --release -p soc-server --example learning_curve -- [DATA_DIR] [BATCHES]
//! ```
//! `DATA_DIR` defaults to `../shared/data/httpparams` (labels from `payload_train.csv`, test on
//! `payload_test.csv`: the dataset author's split). `BATCHES` is a comma-separated list of
//! cumulative label counts (default `50,100,200,500,1000,2000,5000`). Runs on a fresh SQLite
//! file in a temporary directory (`DATABASE_URL` selects another database).

use std::time::{Duration, Instant};

use rand::SeedableRng;
use rand::seq::SliceRandom;
use serde_json::{Value, json};
use soc_core::{Detector, metrics};
use soc_server::{Config, auth};

fn read_split(path: &std::path::Path) -> anyhow::Result<Vec<(String, bool)>> {
    let mut rows = Vec::new();
    let mut r = csv::Reader::from_path(path)
        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
    let headers = r.headers()?.clone();
    let col = |name: &str| {
        headers
            .iter()
            .position(|h| h == name)
            .ok_or_else(|| anyhow::anyhow!("{}: no `{name}` column", path.display()))
    };
    let (payload, label) = (col("payload")?, col("label")?);
    for rec in r.records() {
        let rec = rec?;
        let text = rec.get(payload).unwrap_or_default();
        if text.is_empty() {
            continue;
        }
        rows.push((text.to_owned(), rec.get(label) == Some("anom")));
    }
    Ok(rows)
}

fn auc(detector: &Detector, test: &[(String, bool)]) -> f64 {
    let texts: Vec<&str> = test.iter().map(|(t, _)| t.as_str()).collect();
    let labels: Vec<bool> = test.iter().map(|(_, y)| *y).collect();
    let risks: Vec<f64> = detector.score(&texts).iter().map(|s| s.risk).collect();
    metrics::roc_auc(&risks, &labels).unwrap_or(f64::NAN)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt().with_env_filter("warn").init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let data = std::path::PathBuf::from(
        args.first()
            .map_or("../shared/data/httpparams", String::as_str),
    );
    let batches: Vec<usize> = args
        .get(1)
        .map_or("50,100,200,500,1000,2000,5000", String::as_str)
        .split(',')
        .map(str::parse)
        .collect::<Result<_, _>>()?;
    let mut train = read_split(&data.join("payload_train.csv"))?;
    let test = read_split(&data.join("payload_test.csv"))?;
    // Verdicts arrive in a random order (seeded: the same curve every run).
    train.shuffle(&mut rand::rngs::StdRng::seed_from_u64(1));

    let dir = std::env::temp_dir().join(format!("soc-learning-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let mut config = Config::defaults();
    config.data_dir = dir.clone();
    config.log_dir = Default::default();
    if config.database_url.is_none() {
        config.database_url = Some(format!("sqlite://{}", dir.join("soc.db").display()));
    }
    let state = soc_server::connect(config).await?;
    soc_server::bootstrap(&state).await?;
    soc_server::detection::start(&state).await?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let st = state.clone();
    tokio::spawn(async move { soc_server::serve(listener, st, std::future::pending()).await });
    let tenant = state
        .db
        .create_tenant("learning-curve")
        .await?
        .ok_or_else(|| anyhow::anyhow!("tenant exists"))?;
    let (_, admin) = auth::create_key(&state.db, tenant.id, auth::Role::Admin, None).await?;
    let (_, analyst) = auth::create_key(&state.db, tenant.id, auth::Role::Analyst, None).await?;
    let http = reqwest::Client::new();

    let download = |version: String| {
        let (http, base, key) = (http.clone(), base.clone(), analyst.clone());
        async move {
            let bytes = http
                .get(format!("{base}/api/models/{version}/artifact"))
                .bearer_auth(&key)
                .send()
                .await?
                .error_for_status()?
                .bytes()
                .await?;
            anyhow::Ok(Detector::from_bytes(&bytes)?)
        }
    };

    println!(
        "{}: {} verdicts available, external test split {} rows ({} attacks)",
        data.display(),
        train.len(),
        test.len(),
        test.iter().filter(|(_, y)| *y).count()
    );
    println!(
        "{:>8}  {:<34} {:>9} {:>14} {:>14} {:>9}",
        "labels", "version", "status", "held-out AUC", "external AUC", "train s"
    );
    let list: Value = http
        .get(format!("{base}/api/models"))
        .bearer_auth(&analyst)
        .send()
        .await?
        .json()
        .await?;
    let global = list["serving_version"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let d = download(global.clone()).await?;
    println!(
        "{:>8}  {:<34} {:>9} {:>14} {:>14.4} {:>9}",
        0,
        global,
        "global",
        "-",
        auc(&d, &test),
        "-"
    );

    let mut sent = 0;
    for &target in &batches {
        let target = target.min(train.len());
        if target <= sent {
            continue;
        }
        let body: Vec<Value> = train[sent..target]
            .iter()
            .map(|(m, y)| json!({"message": m, "malicious": y}))
            .collect();
        for chunk in body.chunks(soc_server::api::MAX_LABELS) {
            http.post(format!("{base}/api/labels"))
                .bearer_auth(&analyst)
                .json(chunk)
                .send()
                .await?
                .error_for_status()?;
        }
        sent = target;
        let job: Value = http
            .post(format!("{base}/api/models/retrain"))
            .bearer_auth(&admin)
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        let poll = job["poll"].as_str().unwrap_or_default().to_owned();
        let t0 = Instant::now();
        let job = loop {
            let r: Value = http
                .get(format!("{base}{poll}"))
                .bearer_auth(&admin)
                .send()
                .await?
                .json()
                .await?;
            if r["job"]["status"] != "running" {
                break r["job"].clone();
            }
            anyhow::ensure!(t0.elapsed() < Duration::from_secs(900), "retrain too slow");
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        anyhow::ensure!(job["status"] == "succeeded", "retrain failed: {job}");
        let o = &job["outcome"];
        let version = o["version"].as_str().unwrap_or_default().to_owned();
        let m: Value = http
            .get(format!("{base}/api/models/{version}"))
            .bearer_auth(&analyst)
            .send()
            .await?
            .json()
            .await?;
        let d = download(version.clone()).await?;
        println!(
            "{:>8}  {:<34} {:>9} {:>14.4} {:>14.4} {:>9.1}",
            sent,
            version,
            m["model"]["status"].as_str().unwrap_or_default(),
            o["roc_auc"].as_f64().unwrap_or(f64::NAN),
            auc(&d, &test),
            m["model"]["training_seconds"].as_f64().unwrap_or(f64::NAN),
        );
    }
    println!(
        "held-out AUC: the server's promotion figure (the 1 in 5 of the tenant's labels held out by hash); \
         status: active = promoted (at least as good as the serving model on the same held-out labels); \
         external AUC: {} (never sent to the server)",
        data.join("payload_test.csv").display()
    );
    state.db.close().await;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
