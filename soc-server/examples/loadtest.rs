//! Load benchmark, loopback only and bounded in time: starts an in-process soc-server (with
//! its detection pipeline) on 127.0.0.1, pushes realistic sample logs through `POST /api/logs`
//! from concurrent clients, waits for the pipeline to drain, and prints sustained logs/s,
//! ingest latency p50/p99 and detection lag p50/p99 (detection commit − log commit).
//!
//! ```text
//! cargo run --release -p soc-server --example loadtest -- [SECONDS] [CLIENTS] [BATCH] [RATE] [RETRAIN]
//! DATABASE_URL=postgres://… cargo run --release -p soc-server --example loadtest
//! ```
//! Without `DATABASE_URL` it uses a fresh SQLite file in a temporary directory. `RATE` caps the
//! offered load in logs/s (0 = as fast as the server answers), to measure detection lag at a
//! load the pipeline sustains. `RETRAIN=1` runs the load twice, the second time with a retrain
//! of the tenant running (labels imported with `POST /api/labels`, then
//! `POST /api/models/retrain`; the retrain also reads the tenant's recent logs,
//! `ML_ANOMALY_SAMPLE_SIZE`), and prints both ingest rates and their ratio.

use std::time::{Duration, Instant};

use soc_core::store::Storage;
use soc_server::{Config, auth, db, sample};

fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Labels imported before the mid-run retrain (with the sample corpus: its training set).
const RETRAIN_LABELS: usize = 20_000;

/// Offers the load for `seconds`: returns the batch latencies (ms), the logs committed and the
/// phase's wall time (s).
async fn ingest(
    client: &reqwest::Client,
    base: &str,
    key: &str,
    bodies: &[String],
    clients: usize,
    seconds: u64,
    rate: u64,
) -> anyhow::Result<(Vec<f64>, usize, f64)> {
    let batch = bodies.first().map_or(1, |b| b.lines().count());
    let start = Instant::now();
    let deadline = start + Duration::from_secs(seconds);
    let mut tasks = Vec::new();
    for c in 0..clients {
        let (client, key, base, bodies) = (
            client.clone(),
            key.to_owned(),
            base.to_owned(),
            bodies.to_vec(),
        );
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut sent = 0usize;
            let mut i = c;
            let mut tick = (rate > 0).then(|| {
                let period = Duration::from_secs_f64(batch as f64 * clients as f64 / rate as f64);
                tokio::time::interval(period)
            });
            while Instant::now() < deadline {
                if let Some(t) = tick.as_mut() {
                    t.tick().await;
                }
                let body = bodies[i % bodies.len()].clone();
                i += clients;
                let t = Instant::now();
                let r = client
                    .post(format!("{base}/api/logs"))
                    .bearer_auth(&key)
                    .header("content-type", "application/x-ndjson")
                    .body(body)
                    .send()
                    .await;
                match r {
                    Ok(r) if r.status() == 201 => {
                        lat.push(t.elapsed().as_secs_f64() * 1e3);
                        sent += batch;
                    }
                    Ok(r) => eprintln!("ingest answered {}", r.status()),
                    Err(e) => eprintln!("ingest failed: {e}"),
                }
            }
            (lat, sent)
        }));
    }
    let mut lat = Vec::new();
    let mut sent = 0;
    for t in tasks {
        let (l, s) = t.await?;
        lat.extend(l);
        sent += s;
    }
    Ok((lat, sent, start.elapsed().as_secs_f64()))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt().with_env_filter("warn").init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize, d: u64| args.get(i).and_then(|s| s.parse().ok()).unwrap_or(d);
    let (seconds, clients, batch) = (arg(0, 10), arg(1, 4) as usize, arg(2, 500) as usize);
    let rate = arg(3, 0);
    let retrain = arg(4, 0) != 0;

    let dir = std::env::temp_dir().join(format!("soc-loadtest-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let mut config = Config::defaults();
    config.data_dir = dir.clone();
    config.log_dir = Default::default();
    if config.database_url.is_none() {
        config.database_url = Some(format!("sqlite://{}", dir.join("soc.db").display()));
    }
    let state = soc_server::connect(config).await?;
    let backend = state.db.backend();
    soc_server::bootstrap(&state).await?;
    let t = Instant::now();
    let version = soc_server::detection::start(&state).await?;
    println!(
        "backend {backend}; detector {version} ready in {:.1?}",
        t.elapsed()
    );

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let st = state.clone();
    tokio::spawn(async move { soc_server::serve(listener, st, std::future::pending()).await });

    let tenant = state
        .db
        .create_tenant(&format!("loadtest-{}", db::now_ms()))
        .await?
        .ok_or_else(|| anyhow::anyhow!("tenant exists"))?;
    let (_, key) = auth::create_key(&state.db, tenant.id, auth::Role::Agent, None).await?;
    let client = reqwest::Client::new();
    let mut agent_ids = Vec::new();
    for a in &sample::AGENTS {
        let r: serde_json::Value = client
            .post(format!("{base}/api/agents/register"))
            .bearer_auth(&key)
            .json(&serde_json::json!({"hostname": a.hostname, "os": a.os}))
            .send()
            .await?
            .json()
            .await?;
        agent_ids.push(r["agent"]["id"].as_i64().unwrap_or_default());
    }
    // Pre-built NDJSON bodies, so clients measure the server, not the generator.
    let logs = sample::generate(batch * 64, 0.05, 7);
    let bodies: Vec<String> = logs
        .chunks(batch)
        .map(|c| {
            c.iter()
                .map(|l| {
                    serde_json::json!({"agent_id": agent_ids[l.agent], "message": l.message, "source": l.source})
                        .to_string()
                })
                .collect::<Vec<_>>()
                .join("\n")
        })
        .collect();
    let cap = if rate == 0 {
        "unlimited".to_owned()
    } else {
        format!("{rate} logs/s")
    };
    println!(
        "{clients} clients × NDJSON batches of {batch} logs for {seconds} s, offered load {cap} → {base}"
    );

    let start = Instant::now();
    let scored_before = state.pipeline.report().scored_total;
    let (mut lat, mut sent, mut ingest_secs) =
        ingest(&client, &base, &key, &bodies, clients, seconds, rate).await?;
    let scored_phase1 = state.pipeline.report().scored_total - scored_before;
    if retrain {
        // Same load again while a retrain of the tenant runs (through the API, as operators
        // trigger it), compared with the phase above in the same run.
        let (_, admin) = auth::create_key(&state.db, tenant.id, auth::Role::Admin, None).await?;
        let labels: Vec<serde_json::Value> = sample::generate(RETRAIN_LABELS, 0.15, 11)
            .into_iter()
            .map(|l| serde_json::json!({"message": l.message, "malicious": l.malicious}))
            .collect();
        for chunk in labels.chunks(soc_server::api::MAX_LABELS) {
            client
                .post(format!("{base}/api/labels"))
                .bearer_auth(&admin)
                .json(chunk)
                .send()
                .await?
                .error_for_status()?;
        }
        let job: serde_json::Value = client
            .post(format!("{base}/api/models/retrain"))
            .bearer_auth(&admin)
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        let poll = format!("{base}{}", job["poll"].as_str().unwrap_or_default());
        let retrain_start = Instant::now();
        let scored_before = state.pipeline.report().scored_total;
        let (lat2, sent2, secs2) =
            ingest(&client, &base, &key, &bodies, clients, seconds, rate).await?;
        let scored_phase2 = state.pipeline.report().scored_total - scored_before;
        let mut status: serde_json::Value = serde_json::Value::Null;
        while retrain_start.elapsed() < Duration::from_secs(600) {
            status = client
                .get(&poll)
                .bearer_auth(&admin)
                .send()
                .await?
                .json()
                .await?;
            if status["job"]["status"] != "running" {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let at = |field: &str| {
            status["job"][field]
                .as_str()
                .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        };
        let retrain_secs = match (at("started_at"), at("finished_at")) {
            (Some(s), Some(f)) => (f - s).as_seconds_f64(),
            _ => f64::NAN,
        };
        let base_rate = sent as f64 / ingest_secs;
        let retrain_rate = sent2 as f64 / secs2;
        println!(
            "ingest without retrain {base_rate:.0} logs/s; with a retrain running {retrain_rate:.0} logs/s; ratio {:.2}",
            retrain_rate / base_rate
        );
        let (score1, score2) = (
            scored_phase1 as f64 / ingest_secs,
            scored_phase2 as f64 / secs2,
        );
        println!(
            "scoring without retrain {score1:.0} logs/s; with a retrain running {score2:.0} logs/s; ratio {:.2}",
            score2 / score1
        );
        // The retrain also reads the tenant's recent logs (ML_ANOMALY_SAMPLE_SIZE).
        let unlabeled = match status["job"]["outcome"]["version"].as_str() {
            Some(v) => state
                .db
                .model_version(tenant.id, v)
                .await?
                .and_then(|mv| serde_json::from_str::<serde_json::Value>(&mv.metrics).ok())
                .map(|m| m["corpus"]["unlabeled_sample"].clone())
                .unwrap_or_default(),
            None => serde_json::Value::Null,
        };
        println!(
            "retrain ({RETRAIN_LABELS} labels + sample corpus + {unlabeled} unlabeled logs): {}, ran {:.1} s of the {secs2:.1} s ingest phase",
            status["job"]["status"], retrain_secs
        );
        lat.extend(lat2);
        sent += sent2;
        ingest_secs += secs2;
    }

    let backlog_at_end = state.db.pending_count().await?;
    let drain_start = Instant::now();
    while state.db.pending_count().await? > 0 && drain_start.elapsed() < Duration::from_secs(120) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let drain = drain_start.elapsed();
    let total = start.elapsed().as_secs_f64();
    lat.sort_by(f64::total_cmp);
    let mut lags: Vec<f64> = state
        .db
        .detection_lags_ms(tenant.id)
        .await?
        .into_iter()
        .map(|l| l as f64)
        .collect();
    lags.sort_by(f64::total_cmp);
    let (logs_n, scored, threats) = state.db.counts(tenant.id).await?;
    println!(
        "ingested      {sent} logs in {ingest_secs:.1} s = {:.0} logs/s (HTTP, committed)",
        sent as f64 / ingest_secs
    );
    println!(
        "ingest p50/p99 {:.1} / {:.1} ms per batch of {batch} ({} requests)",
        pct(&lat, 0.5),
        pct(&lat, 0.99),
        lat.len()
    );
    println!("backlog at end of ingest {backlog_at_end}; drained in {drain:.1?}");
    println!(
        "end-to-end    {:.0} logs/s scored (ingest + drain)",
        scored as f64 / total
    );
    println!(
        "detection lag p50/p99 {:.0} / {:.0} ms over {} threats",
        pct(&lags, 0.5),
        pct(&lags, 0.99),
        lags.len()
    );
    println!("rows: logs {logs_n}, scored {scored}, threats {threats}");
    let report = state.pipeline.report();
    println!(
        "last batch: {} logs in {:.1} ms",
        report.last_batch_size, report.last_batch_latency_ms
    );
    state.db.close().await;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
