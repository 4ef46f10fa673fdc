//! HTTP API tests: a server on port 0, on SQLite and (with `SOC_TEST_PG_URL`) PostgreSQL.

mod common;

use common::{Backend, error_code, spawn};
use reqwest::Method;
use serde_json::{Value, json};
use soc_core::store::{NewDetection, PendingLog, Storage};

async fn health_and_status(b: Backend) {
    let s = spawn(b, false).await.unwrap();
    let (st, body) = s.send(Method::GET, "/healthz", None, None).await;
    assert_eq!((st, body["status"].as_str()), (200, Some("ok")));
    let (st, body) = s.send(Method::GET, "/api/system/status", None, None).await;
    assert_eq!((st, error_code(&body)), (401, "unauthorized"));
    let (st, body) = s.get("/api/system/status", &s.admin_key).await;
    assert_eq!(st, 200, "{body}");
    assert_eq!(body["status"]["database_status"], "connected");
    assert_eq!(body["status"]["model_store_status"], "available");
    assert_eq!(body["status"]["ai_agents"]["backlog"], 0);
    assert!(body["version"].is_string() && body["uptime_seconds"].is_u64());
    // The first admin key was written to a 0600 file.
    let path = s.state.config.data_dir.join("admin-api-key");
    assert_eq!(std::fs::read_to_string(&path).unwrap().trim(), s.admin_key);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    // A second start does not create another tenant or key.
    assert!(soc_server::bootstrap(&s.state).await.unwrap().is_none());
}

async fn auth_missing_wrong_revoked_and_roles(b: Backend) {
    let s = spawn(b, false).await.unwrap();
    let (_, admin, analyst, agent) = s.tenant("acme").await;
    // Missing, malformed, wrong keys.
    let (st, body) = s.send(Method::GET, "/api/agents", None, None).await;
    assert_eq!((st, error_code(&body)), (401, "unauthorized"));
    for bad in [
        "ak_wrongwrongwrongwrongwrongwrongwrongwrongwro",
        "nonsense",
        "ak_é",
        &format!("{admin}x"),
    ] {
        let (st, body) = s.get("/api/agents", bad).await;
        assert_eq!((st, error_code(&body)), (401, "unauthorized"), "{bad}");
    }
    let resp = s
        .client
        .get(s.url("/api/agents"))
        .header("authorization", format!("Basic {admin}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    // Wrong roles.
    let (st, body) = s.get("/api/threats", &agent).await;
    assert_eq!((st, error_code(&body)), (403, "forbidden"));
    let (st, _) = s.get("/api/logs", &agent).await;
    assert_eq!(st, 403);
    let (st, _) = s
        .post(
            "/api/logs",
            &analyst,
            json!([{"agent_id": 1, "message": "x"}]),
        )
        .await;
    assert_eq!(st, 403);
    let (st, _) = s
        .post("/api/agents/register", &analyst, json!({"hostname": "h"}))
        .await;
    assert_eq!(st, 403);
    let (st, _) = s
        .post("/api/keys", &analyst, json!({"role": "admin"}))
        .await;
    assert_eq!(st, 403);
    let (st, _) = s
        .post("/api/test/create-sample-agents", &analyst, json!({}))
        .await;
    assert_eq!(st, 403);
    // Admin may do everything; analyst reads.
    let (st, _) = s.get("/api/agents", &analyst).await;
    assert_eq!(st, 200);
    let (st, _) = s
        .post("/api/agents/register", &admin, json!({"hostname": "h"}))
        .await;
    assert_eq!(st, 201);
    // Keys created over the API work, and stop working once revoked.
    let (st, k) = s
        .post(
            "/api/keys",
            &admin,
            json!({"role": "analyst", "name": "soc-1"}),
        )
        .await;
    assert_eq!(st, 201, "{k}");
    let key = k["key"].as_str().unwrap();
    assert_eq!(s.get("/api/agents", key).await.0, 200);
    let (st, _) = s
        .send(
            Method::DELETE,
            &format!("/api/keys/{}", k["id"]),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(st, 204);
    let (st, body) = s.get("/api/agents", key).await;
    assert_eq!((st, error_code(&body)), (401, "unauthorized"));
    let (st, body) = s.post("/api/keys", &admin, json!({"role": "root"})).await;
    assert_eq!((st, error_code(&body)), (422, "invalid_input"));
}

async fn agents_register_idempotent_and_limit(b: Backend) {
    let s = spawn(b, false).await.unwrap();
    let (t, admin, analyst, agent) = s.tenant("acme").await;
    let (st, first) = s
        .post(
            "/api/agents/register",
            &agent,
            json!({"hostname": "web-1", "os": "linux"}),
        )
        .await;
    assert_eq!(st, 201, "{first}");
    let (st, again) = s
        .post(
            "/api/agents/register",
            &agent,
            json!({"hostname": "web-1", "version": "2"}),
        )
        .await;
    assert_eq!(st, 200);
    assert_eq!(first["agent"]["id"], again["agent"]["id"]);
    assert_eq!(again["agent"]["os"], "linux");
    assert_eq!(again["agent"]["version"], "2");
    let id = first["agent"]["id"].as_i64().unwrap();
    let (st, one) = s.get(&format!("/api/agents/{id}"), &analyst).await;
    assert_eq!(
        (st, one["agent"]["hostname"].as_str()),
        (200, Some("web-1"))
    );
    let (st, _) = s
        .send(
            Method::POST,
            &format!("/api/agents/{id}/heartbeat"),
            Some(&agent),
            None,
        )
        .await;
    assert_eq!(st, 204);
    // Limit per tenant, set by the tenant's admin.
    let (st, tenant) = s
        .patch("/api/tenant", &admin, json!({"max_agents": 2}))
        .await;
    assert_eq!(st, 200, "{tenant}");
    assert_eq!(tenant["effective_max_agents"], 2);
    assert_eq!(tenant["tenant"]["id"], t);
    assert_eq!(
        s.patch("/api/tenant", &analyst, json!({"max_agents": 9}))
            .await
            .0,
        403
    );
    let (st, body) = s
        .patch("/api/tenant", &admin, json!({"max_agents": -1}))
        .await;
    assert_eq!((st, error_code(&body)), (422, "invalid_input"));
    assert_eq!(
        s.post("/api/agents/register", &agent, json!({"hostname": "web-2"}))
            .await
            .0,
        201
    );
    let (st, body) = s
        .post("/api/agents/register", &agent, json!({"hostname": "web-3"}))
        .await;
    assert_eq!((st, error_code(&body)), (409, "agent_limit_reached"));
    // Re-registering a known host still works at the limit.
    assert_eq!(
        s.post("/api/agents/register", &agent, json!({"hostname": "web-2"}))
            .await
            .0,
        200
    );
    // Pagination.
    let (st, page) = s.get("/api/agents?limit=1", &analyst).await;
    assert_eq!(st, 200);
    assert_eq!(page["agents"].as_array().unwrap().len(), 1);
    let cursor = page["next_cursor"].as_str().unwrap();
    let (_, page2) = s
        .get(&format!("/api/agents?limit=1&cursor={cursor}"), &analyst)
        .await;
    assert_eq!(page2["agents"][0]["hostname"], "web-2");
    let (_, page3) = s
        .get(
            &format!(
                "/api/agents?limit=1&cursor={}",
                page2["next_cursor"].as_str().unwrap()
            ),
            &analyst,
        )
        .await;
    assert_eq!(page3["agents"].as_array().unwrap().len(), 0);
    assert!(page3["next_cursor"].is_null());
}

async fn logs_ingest_json_and_ndjson_then_list(b: Backend) {
    let s = spawn(b, false).await.unwrap();
    let (_, _, analyst, agent) = s.tenant("acme").await;
    let a1 = s.agent(&agent, "h1").await;
    let a2 = s.agent(&agent, "h2").await;
    let (st, body) = s
        .post("/api/logs", &agent, json!([
            {"agent_id": a1, "message": "sshd: Accepted publickey for alice", "timestamp": "2026-11-24T10:00:00Z", "source": "auth.log"},
            {"agent_id": a2, "message": "GET / 200", "timestamp": "2026-11-24T11:00:00+01:00"},
        ]))
        .await;
    assert_eq!((st, body["accepted"].as_u64()), (201, Some(2)), "{body}");
    let nd = format!(
        "{}\n\n{}\n",
        json!({"agent_id": a1, "message": "cron ran"}),
        json!({"agent_id": a1, "message": "disk ok", "level": "info"})
    );
    let (st, body) = s
        .post_raw("/api/logs", &agent, nd, "application/x-ndjson")
        .await;
    assert_eq!((st, body["accepted"].as_u64()), (201, Some(2)), "{body}");
    let (st, all) = s.get("/api/logs", &analyst).await;
    assert_eq!(st, 200);
    let logs = all["logs"].as_array().unwrap();
    assert_eq!(logs.len(), 4);
    assert_eq!(logs[0]["message"], "disk ok", "newest first");
    assert_eq!(logs[3]["timestamp"], "2026-11-24T10:00:00.000Z");
    let (_, only_a2) = s.get(&format!("/api/logs?agent_id={a2}"), &analyst).await;
    assert_eq!(only_a2["logs"].as_array().unwrap().len(), 1);
    let (_, window) = s
        .get(
            "/api/logs?since=2026-11-24T09:30:00Z&until=2026-11-24T10:30:00Z",
            &analyst,
        )
        .await;
    assert_eq!(window["logs"].as_array().unwrap().len(), 2, "{window}");
    // Cursor pagination walks every log once.
    let mut seen = Vec::new();
    let mut path = "/api/logs?limit=3".to_owned();
    loop {
        let (_, page) = s.get(&path, &analyst).await;
        seen.extend(
            page["logs"]
                .as_array()
                .unwrap()
                .iter()
                .map(|l| l["id"].as_i64().unwrap()),
        );
        match page["next_cursor"].as_str() {
            Some(c) => path = format!("/api/logs?limit=3&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(seen.len(), 4);
    // Ingest refreshed last_seen and the backlog counts the logs.
    let (_, status) = s.get("/api/system/status", &analyst).await;
    assert_eq!(status["status"]["ai_agents"]["backlog"], 4);
}

async fn bad_input_is_a_clear_4xx_and_writes_nothing(b: Backend) {
    let s = spawn(b, false).await.unwrap();
    let (t, _, analyst, agent) = s.tenant("acme").await;
    let a = s.agent(&agent, "h1").await;
    let check = |st: u16, body: &Value, want: u16, code: &str| {
        assert_eq!(st, want, "{body}");
        assert_eq!(error_code(body), code, "{body}");
    };
    let (st, body) = s
        .post_raw(
            "/api/logs",
            &agent,
            "[{\"agent_id\": 1,",
            "application/json",
        )
        .await;
    check(st, &body, 400, "bad_request");
    let (st, body) = s
        .post_raw(
            "/api/logs",
            &agent,
            "{\"agent_id\": 1, \"message\": \"x\"}\nnot json",
            "application/x-ndjson",
        )
        .await;
    check(st, &body, 400, "bad_request");
    let (st, body) = s
        .post(
            "/api/logs",
            &agent,
            json!([{"agent_id": "one", "message": "x"}]),
        )
        .await;
    check(st, &body, 422, "invalid_input");
    let (st, body) = s.post("/api/logs", &agent, json!([{"agent_id": a}])).await;
    check(st, &body, 422, "invalid_input");
    let (st, body) = s
        .post("/api/logs", &agent, json!([{"agent_id": a, "message": ""}]))
        .await;
    check(st, &body, 422, "invalid_input");
    let (st, body) = s
        .post(
            "/api/logs",
            &agent,
            json!([{"agent_id": a, "message": "x", "timestamp": "yesterday"}]),
        )
        .await;
    check(st, &body, 422, "invalid_input");
    let (st, body) = s.post("/api/logs", &agent, json!([])).await;
    check(st, &body, 422, "invalid_input");
    // Unknown agent: nothing of the batch is written.
    let (st, body) = s
        .post(
            "/api/logs",
            &agent,
            json!([{"agent_id": a, "message": "ok"}, {"agent_id": 987654, "message": "x"}]),
        )
        .await;
    check(st, &body, 422, "unknown_agent");
    // Too many lines, too many bytes.
    let many: Vec<Value> = (0..10_001)
        .map(|_| json!({"agent_id": a, "message": "x"}))
        .collect();
    let (st, body) = s.post("/api/logs", &agent, Value::Array(many)).await;
    check(st, &body, 413, "payload_too_large");
    let big = format!(
        "[{{\"agent_id\": {a}, \"message\": \"{}\"}}]",
        "a".repeat(9 * 1024 * 1024)
    );
    let (st, body) = s
        .post_raw("/api/logs", &agent, big, "application/json")
        .await;
    check(st, &body, 413, "payload_too_large");
    let (st, body) = s
        .post_raw(
            "/api/agents/register",
            &agent,
            format!("{{\"hostname\": \"{}\"}}", "h".repeat(100_000)),
            "application/json",
        )
        .await;
    check(st, &body, 413, "payload_too_large");
    assert_eq!(
        s.state.db.counts(t).await.unwrap().0,
        0,
        "nothing was written"
    );
    // Other bodies and paths.
    let (st, body) = s
        .post_raw(
            "/api/agents/register",
            &agent,
            "{\"hostname\":",
            "application/json",
        )
        .await;
    check(st, &body, 400, "bad_request");
    let (st, body) = s
        .post("/api/agents/register", &agent, json!({"hostname": 42}))
        .await;
    check(st, &body, 422, "invalid_input");
    let (st, body) = s
        .post("/api/agents/register", &agent, json!({"hostname": "  "}))
        .await;
    check(st, &body, 422, "invalid_input");
    let (st, body) = s
        .post_raw("/api/agents/register", &agent, "hostname=x", "text/plain")
        .await;
    check(st, &body, 415, "unsupported_media_type");
    let (st, body) = s.get("/api/agents/abc", &analyst).await;
    check(st, &body, 400, "bad_request");
    let (st, body) = s.get("/api/agents/424242", &analyst).await;
    check(st, &body, 404, "not_found");
    let (st, body) = s.get("/api/logs?limit=0", &analyst).await;
    check(st, &body, 400, "bad_request");
    let (st, body) = s.get("/api/logs?since=soon", &analyst).await;
    check(st, &body, 400, "bad_request");
    let (st, body) = s.get("/api/threats?severity=apocalyptic", &analyst).await;
    check(st, &body, 400, "bad_request");
    let (st, body) = s.get("/api/nope", &analyst).await;
    check(st, &body, 404, "not_found");
    let (st, body) = s.send(Method::PUT, "/api/logs", Some(&analyst), None).await;
    check(st, &body, 405, "method_not_allowed");
}

/// Records a detection for each pending log whose message contains "attack" (a test scorer
/// standing in for the pipeline, to exercise the threat endpoints).
async fn detect_attacks(s: &common::TestServer) {
    s.state
        .db
        .score_pending(10_000, &mut |logs: &[PendingLog]| {
            logs.iter()
                .filter(|l| l.message.contains("attack"))
                .map(|l| NewDetection {
                    tenant_id: l.tenant_id,
                    log_id: l.log_id,
                    agent_id: l.agent_id,
                    risk: 9.2,
                    severity: "critical".into(),
                    anomaly: 0.95,
                    malicious_probability: 0.9,
                    model_version: "test".into(),
                    explanation: json!({"top_terms": [["attack", 0.7]]}),
                })
                .collect()
        })
        .await
        .unwrap();
}

async fn threats_list_get_patch(b: Backend) {
    let s = spawn(b, false).await.unwrap();
    let (t, _, analyst, agent) = s.tenant("acme").await;
    let a = s.agent(&agent, "h1").await;
    s.post(
        "/api/logs",
        &agent,
        json!([{"agent_id": a, "message": "benign"}, {"agent_id": a, "message": "attack one"}]),
    )
    .await;
    detect_attacks(&s).await;
    let (st, list) = s
        .get("/api/threats?severity=critical&status=open", &analyst)
        .await;
    assert_eq!(st, 200, "{list}");
    let threats = list["threats"].as_array().unwrap();
    assert_eq!(threats.len(), 1);
    let id = threats[0]["id"].as_i64().unwrap();
    assert_eq!(threats[0]["explanation"]["top_terms"][0][0], "attack");
    let (st, one) = s.get(&format!("/api/threats/{id}"), &analyst).await;
    assert_eq!(st, 200);
    assert_eq!(one["log"]["message"], "attack one");
    assert_eq!(one["threat"]["status"], "open");
    let (_, none) = s.get("/api/threats?severity=low", &analyst).await;
    assert_eq!(none["threats"].as_array().unwrap().len(), 0);
    let (st, patched) = s
        .patch(
            &format!("/api/threats/{id}"),
            &analyst,
            json!({"status": "acknowledged", "assignee": "alice", "note": "looking"}),
        )
        .await;
    assert_eq!(st, 200, "{patched}");
    assert_eq!(patched["threat"]["assignee"], "alice");
    let (st, patched) = s
        .patch(
            &format!("/api/threats/{id}"),
            &analyst,
            json!({"status": "resolved", "verdict": "true_positive"}),
        )
        .await;
    assert_eq!(
        (st, patched["threat"]["verdict"].as_str()),
        (200, Some("true_positive"))
    );
    assert_eq!(
        patched["threat"]["note"], "looking",
        "unchanged fields are kept"
    );
    let ex = s.state.db.training_examples(Some(t), 10).await.unwrap();
    assert_eq!(ex.len(), 1);
    assert!(ex[0].malicious && ex[0].message == "attack one");
    for bad in [
        json!({"status": "done"}),
        json!({"verdict": "maybe"}),
        json!({}),
        json!({"status": 3}),
    ] {
        let (st, body) = s
            .patch(&format!("/api/threats/{id}"), &analyst, bad.clone())
            .await;
        assert_eq!((st, error_code(&body)), (422, "invalid_input"), "{bad}");
    }
    let (st, body) = s
        .patch(
            &format!("/api/threats/{id}"),
            &analyst,
            json!({"tenant_id": 2}),
        )
        .await;
    assert_eq!(st, 422, "{body}");
    let (st, _) = s
        .patch(
            "/api/threats/999999",
            &analyst,
            json!({"status": "resolved"}),
        )
        .await;
    assert_eq!(st, 404);
    assert_eq!(
        s.patch(
            &format!("/api/threats/{id}"),
            &agent,
            json!({"status": "open"})
        )
        .await
        .0,
        403
    );
}

async fn tenant_isolation(b: Backend) {
    let s = spawn(b, false).await.unwrap();
    let (_, admin_a, analyst_a, agent_a) = s.tenant("a").await;
    let (tb, admin_b, analyst_b, agent_b) = s.tenant("b").await;
    let a_agent = s.agent(&agent_a, "shared-name").await;
    let b_agent = s.agent(&agent_b, "shared-name").await;
    assert_ne!(
        a_agent, b_agent,
        "same hostname, different tenants, different agents"
    );
    s.post(
        "/api/logs",
        &agent_a,
        json!([{"agent_id": a_agent, "message": "attack on a"}]),
    )
    .await;
    detect_attacks(&s).await;
    let (_, ta) = s.get("/api/threats", &analyst_a).await;
    let a_threat = ta["threats"][0]["id"].as_i64().unwrap();
    let (_, la) = s.get("/api/logs", &analyst_a).await;
    assert_eq!(la["logs"].as_array().unwrap().len(), 1);
    // B sees none of A's data.
    for key in [&admin_b, &analyst_b] {
        let (_, agents) = s.get("/api/agents", key).await;
        let ids: Vec<i64> = agents["agents"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x["id"].as_i64().unwrap())
            .collect();
        assert_eq!(ids, vec![b_agent]);
        assert_eq!(s.get(&format!("/api/agents/{a_agent}"), key).await.0, 404);
        let (_, logs) = s.get("/api/logs", key).await;
        assert_eq!(logs["logs"].as_array().unwrap().len(), 0);
        let (_, logs) = s.get(&format!("/api/logs?agent_id={a_agent}"), key).await;
        assert_eq!(logs["logs"].as_array().unwrap().len(), 0);
        let (_, threats) = s.get("/api/threats", key).await;
        assert_eq!(threats["threats"].as_array().unwrap().len(), 0);
        assert_eq!(s.get(&format!("/api/threats/{a_threat}"), key).await.0, 404);
        let (st, _) = s
            .patch(
                &format!("/api/threats/{a_threat}"),
                key,
                json!({"status": "resolved", "verdict": "false_positive"}),
            )
            .await;
        assert_eq!(st, 404);
    }
    // B cannot write into A's agents, heartbeat them, or revoke A's keys.
    let (st, body) = s
        .post(
            "/api/logs",
            &agent_b,
            json!([{"agent_id": a_agent, "message": "x"}]),
        )
        .await;
    assert_eq!((st, error_code(&body)), (422, "unknown_agent"));
    assert_eq!(
        s.send(
            Method::POST,
            &format!("/api/agents/{a_agent}/heartbeat"),
            Some(&agent_b),
            None
        )
        .await
        .0,
        404
    );
    // Nor see, poll, complete or issue A's agent commands.
    let cmds = format!("/api/agents/{a_agent}/commands");
    let (st, c) = s.post(&cmds, &analyst_a, json!({"command": "scan"})).await;
    assert_eq!(st, 201, "{c}");
    let done = format!("{cmds}/{}/result", c["command"]["id"]);
    assert_eq!(s.get(&cmds, &analyst_b).await.0, 404);
    assert_eq!(s.get(&format!("{cmds}/pending"), &agent_b).await.0, 404);
    let (st, _) = s.post(&done, &agent_b, json!({"status": "failed"})).await;
    assert_eq!(st, 404);
    let (st, _) = s.post(&cmds, &admin_b, json!({"command": "scan"})).await;
    assert_eq!(st, 404);
    let (_, c) = s.get(&format!("{cmds}/pending"), &agent_a).await;
    assert_eq!(c["commands"][0]["status"], "delivered");
    let (_, k) = s
        .post("/api/keys", &admin_a, json!({"role": "agent"}))
        .await;
    assert_eq!(
        s.send(
            Method::DELETE,
            &format!("/api/keys/{}", k["id"]),
            Some(&admin_b),
            None
        )
        .await
        .0,
        404
    );
    // A's threat is untouched, B has no labels.
    let (_, t) = s.get(&format!("/api/threats/{a_threat}"), &analyst_a).await;
    assert_eq!(
        (
            t["threat"]["status"].as_str(),
            t["threat"]["verdict"].as_str()
        ),
        (Some("open"), None)
    );
    assert!(
        s.state
            .db
            .training_examples(Some(tb), 10)
            .await
            .unwrap()
            .is_empty()
    );
    // The tenant is never taken from the body.
    let (st, _) = s
        .post(
            "/api/agents/register",
            &agent_b,
            json!({"hostname": "x", "tenant_id": 1}),
        )
        .await;
    assert_eq!(st, 201);
    let (_, agents_a) = s.get("/api/agents", &analyst_a).await;
    assert_eq!(agents_a["agents"].as_array().unwrap().len(), 1);
    // Sample data lands in the caller's tenant only.
    let (st, sample) = s
        .post(
            "/api/test/create-sample-agents",
            &admin_b,
            json!({"logs": 50, "seed": 1}),
        )
        .await;
    assert_eq!(st, 201, "{sample}");
    let (_, la2) = s.get("/api/logs?limit=1000", &analyst_a).await;
    assert_eq!(la2["logs"].as_array().unwrap().len(), 1);
}

async fn sample_agents(b: Backend) {
    let s = spawn(b, false).await.unwrap();
    let resp = s
        .client
        .post(s.url("/api/test/create-sample-agents"))
        .bearer_auth(&s.admin_key)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201, "no body is fine");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["agents"].as_array().unwrap().len(), 4);
    assert_eq!(body["logs"], 200);
    let (st, body) = s
        .post(
            "/api/test/create-sample-agents",
            &s.admin_key,
            json!({"logs": 1000, "attack_ratio": 0.2, "seed": 3}),
        )
        .await;
    assert_eq!(st, 201);
    assert_eq!(
        body["agents"].as_array().unwrap().len(),
        4,
        "idempotent agents"
    );
    let attacks = body["attacks"].as_u64().unwrap();
    assert!((120..280).contains(&attacks), "{attacks}");
    let (st, body) = s
        .post(
            "/api/test/create-sample-agents",
            &s.admin_key,
            json!({"logs": 0}),
        )
        .await;
    assert_eq!((st, error_code(&body)), (422, "invalid_input"));
}

async fn agent_commands_poll_complete_and_rate_limit(b: Backend) {
    let s = spawn(b, false).await.unwrap();
    let (_, _, analyst, agent) = s.tenant("acme").await;
    let (_, _, other_analyst, other_agent) = s.tenant("globex").await;
    let host = s.agent(&agent, "web-01").await;
    let path = format!("/api/agents/{host}/commands");

    // Issue: analyst only; validated.
    let cmd = json!({"command": "collect_logs", "parameters": {"path": "/var/log/auth.log"}});
    let (st, body) = s.post(&path, &agent, cmd.clone()).await;
    assert_eq!((st, error_code(&body)), (403, "forbidden"));
    for bad in [
        json!({"command": ""}),
        json!({"command": "rm -rf /"}),
        json!({"command": "scan", "parameters": [1, 2]}),
        json!({"command": "scan", "extra": true}),
    ] {
        let (st, body) = s.post(&path, &analyst, bad.clone()).await;
        assert!(st == 422 || st == 400, "{bad}: {st} {body}");
        error_code(&body);
    }
    let (st, body) = s
        .post("/api/agents/999999/commands", &analyst, cmd.clone())
        .await;
    assert_eq!((st, error_code(&body)), (404, "not_found"));
    // Another tenant cannot reach this agent.
    let (st, _) = s.post(&path, &other_analyst, cmd.clone()).await;
    assert_eq!(st, 404);

    let (st, body) = s.post(&path, &analyst, cmd).await;
    assert_eq!(st, 201, "{body}");
    let first = body["command"]["id"].as_i64().unwrap();
    assert_eq!(body["command"]["status"], "pending");
    assert_eq!(body["command"]["parameters"]["path"], "/var/log/auth.log");
    let (st, _) = s
        .post(&path, &analyst, json!({"command": "isolate_host"}))
        .await;
    assert_eq!(st, 201);

    // Poll: both, oldest first, delivered; polled again until a result arrives.
    let poll = format!("{path}/pending");
    let (st, _) = s.get(&poll, &other_agent).await;
    assert_eq!(st, 404);
    for _ in 0..2 {
        let (st, body) = s.get(&poll, &agent).await;
        assert_eq!(st, 200, "{body}");
        let cmds = body["commands"].as_array().unwrap();
        let names: Vec<&str> = cmds
            .iter()
            .map(|c| c["command"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["collect_logs", "isolate_host"]);
        assert!(cmds.iter().all(|c| c["status"] == "delivered"));
    }
    let (st, _) = s.get(&poll, &analyst).await;
    assert_eq!(st, 403);

    // Result: recorded once; the same report again is fine, a different one conflicts.
    let result = format!("{path}/{first}/result");
    let done = json!({"status": "succeeded", "output": {"lines": 42}});
    let (st, body) = s.post(&result, &agent, done.clone()).await;
    assert_eq!(st, 200, "{body}");
    assert_eq!(body["command"]["status"], "succeeded");
    assert_eq!(body["command"]["result"]["lines"], 42);
    let (st, _) = s.post(&result, &agent, done).await;
    assert_eq!(st, 200);
    let (st, body) = s.post(&result, &agent, json!({"status": "failed"})).await;
    assert_eq!((st, error_code(&body)), (409, "already_completed"));
    let (st, body) = s.post(&result, &agent, json!({"status": "done"})).await;
    assert_eq!((st, error_code(&body)), (422, "invalid_input"));
    let (st, _) = s
        .post(
            &format!("{path}/999999/result"),
            &agent,
            json!({"status": "failed"}),
        )
        .await;
    assert_eq!(st, 404);
    let (_, body) = s.get(&poll, &agent).await;
    assert_eq!(body["commands"].as_array().unwrap().len(), 1);

    // History for analysts, filtered by status.
    let (st, body) = s.get(&format!("{path}?status=succeeded"), &analyst).await;
    assert_eq!(st, 200, "{body}");
    assert_eq!(body["commands"].as_array().unwrap().len(), 1);
    assert_eq!(body["commands"][0]["id"], first);
    let (st, _) = s.get(&format!("{path}?status=bogus"), &analyst).await;
    assert_eq!(st, 400);

    // The per-minute limit holds under concurrency: 2 issued, 98 more fit, then 429.
    let limit = s.state.config.max_commands_per_minute;
    assert_eq!(limit, 100);
    let tries = (0..120).map(|i| {
        let body = json!({"command": format!("scan_{i}")});
        let (s, path, analyst) = (&s, &path, &analyst);
        async move { s.post(path, analyst, body).await }
    });
    let answers = futures_util::future::join_all(tries).await;
    let created = answers.iter().filter(|(st, _)| *st == 201).count();
    assert_eq!(created as i64, limit - 2);
    let (st, body) = answers.iter().find(|(st, _)| *st != 201).unwrap();
    assert_eq!((*st, error_code(body)), (429, "rate_limited"));
    let resp = s
        .client
        .post(s.url(&path))
        .bearer_auth(&analyst)
        .json(&json!({"command": "scan"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 429);
    let retry: u64 = resp.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    // Another tenant has its own allowance.
    let other_host = s.agent(&other_agent, "db-01").await;
    let (st, _) = s
        .post(
            &format!("/api/agents/{other_host}/commands"),
            &other_analyst,
            json!({"command": "scan"}),
        )
        .await;
    assert_eq!(st, 201);
}

both_backends!(
    health_and_status,
    auth_missing_wrong_revoked_and_roles,
    agents_register_idempotent_and_limit,
    logs_ingest_json_and_ndjson_then_list,
    bad_input_is_a_clear_4xx_and_writes_nothing,
    threats_list_get_patch,
    tenant_isolation,
    sample_agents,
    agent_commands_poll_complete_and_rate_limit,
);
