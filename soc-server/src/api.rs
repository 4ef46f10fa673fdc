//! HTTP handlers: extract, call one `Db` / service function, answer JSON. No SQL, no ML here.

use axum::Json;
use std::collections::BTreeMap;
use std::convert::Infallible;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequest, FromRequestParts, State};
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::{Stream, StreamExt};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use soc_core::store::Storage;
use tokio::sync::watch;

use crate::auth::{self, Auth, Role};
use crate::db::{
    self, AgentInfo, Ingested, LogFilter, NewLog, Registered, ThreatFilter, ThreatUpdate,
};
use crate::error::ApiError;
use crate::{AppState, detection, sample};

/// Most log lines in one `POST /api/logs`.
pub const MAX_LOG_LINES: usize = 10_000;
/// Largest `POST /api/logs` body (8 MiB).
pub const MAX_LOG_BYTES: usize = 8 * 1024 * 1024;
/// Largest body of every other endpoint (64 KiB).
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// Longest log line (64 KiB).
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024;
/// Largest page of a list.
pub const MAX_PAGE: i64 = 1000;

/// `axum::Json` with our error body.
#[derive(Debug, FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub struct AppJson<T>(pub T);

/// `axum::extract::Path` with our error body.
#[derive(Debug, FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub struct AppPath<T>(pub T);

/// `axum::extract::Query` with our error body.
#[derive(Debug, FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub struct AppQuery<T>(pub T);

fn body_error(r: BytesRejection) -> ApiError {
    let status = r.status();
    if status == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::too_large(format!(
            "request body larger than the limit ({MAX_LOG_BYTES} bytes for /api/logs, {MAX_BODY_BYTES} otherwise)"
        ))
    } else {
        ApiError::new(status, "bad_request", r.body_text())
    }
}

fn parse_time(name: &str, s: &str) -> Result<i64, String> {
    chrono::DateTime::parse_from_rfc3339(s)
        .map(|t| t.timestamp_millis())
        .map_err(|e| {
            format!("`{name}`: expected an RFC 3339 timestamp such as 2026-11-24T18:00:00Z ({e})")
        })
}

fn opt_time(name: &str, s: &Option<String>) -> Result<Option<i64>, ApiError> {
    s.as_deref()
        .map(|s| parse_time(name, s))
        .transpose()
        .map_err(ApiError::bad_request)
}

fn page_limit(limit: Option<i64>) -> Result<i64, ApiError> {
    match limit {
        None => Ok(100),
        Some(n) if (1..=MAX_PAGE).contains(&n) => Ok(n),
        Some(_) => Err(ApiError::bad_request(format!(
            "`limit` must be between 1 and {MAX_PAGE}"
        ))),
    }
}

fn cursor(c: &Option<String>) -> Result<Option<i64>, ApiError> {
    c.as_deref()
        .map(|c| {
            c.parse::<i64>()
                .map_err(|_| ApiError::bad_request("invalid `cursor`"))
        })
        .transpose()
}

/// `next_cursor` for a page: the last id when the page is full.
fn next_cursor(
    ids: impl DoubleEndedIterator<Item = i64>,
    len: usize,
    limit: i64,
) -> Option<String> {
    (len as i64 == limit)
        .then(|| ids.last().map(|i| i.to_string()))
        .flatten()
}

// ---- health and status --------------------------------------------------------------------

/// `GET /healthz` (no auth).
pub async fn healthz() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

/// `GET /api/system/status` (any role).
pub async fn system_status(State(st): State<AppState>, _auth: Auth) -> Json<Value> {
    let database_status = match st.db.ping().await {
        Ok(()) => "connected".to_owned(),
        Err(e) => {
            tracing::warn!(error = %e, "status: database check failed");
            "unavailable".to_owned()
        }
    };
    let model_store = crate::model_store::status(st.models.as_ref(), st.s3_models.as_deref()).await;
    let backlog = st.db.pending_count().await.ok();
    let report = st.pipeline.report();
    Json(json!({
        "status": {
            "database_status": database_status,
            "database_backend": st.db.backend(),
            "model_store_status": model_store.status,
            "model_store": model_store,
            "ai_agents": {
                "pipeline_running": report.pipeline_running,
                "workers": report.workers,
                "ml_models_enabled": st.config.ml_models_enabled,
                "backlog": backlog,
                "active_model_version": report.active_model_version,
                "tenant_models": report.tenant_models,
                "last_batch_size": report.last_batch_size,
                "last_batch_threats": report.last_batch_threats,
                "last_batch_latency_ms": report.last_batch_latency_ms,
                "scored_total": report.scored_total,
                "threats_total": report.threats_total,
                "last_error": report.last_error,
            },
        },
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_seconds": st.started.elapsed().as_secs(),
    }))
}

// ---- keys (admin) -------------------------------------------------------------------------

/// Body of `POST /api/keys`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateKey {
    role: String,
    name: Option<String>,
}

/// `POST /api/keys` (admin): a new key of the caller's tenant, shown once.
pub async fn create_key(
    State(st): State<AppState>,
    auth: Auth,
    AppJson(body): AppJson<CreateKey>,
) -> Result<impl IntoResponse, ApiError> {
    auth.require(&[Role::Admin])?;
    let role = Role::parse(&body.role)
        .ok_or_else(|| ApiError::invalid("`role` must be admin, analyst or agent"))?;
    let (id, key) = auth::create_key(&st.db, auth.tenant_id, role, body.name.as_deref()).await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"id": id, "tenant_id": auth.tenant_id, "role": role.as_str(), "key": key})),
    ))
}

/// `DELETE /api/keys/{id}` (admin): revokes a key of the caller's tenant.
pub async fn revoke_key(
    State(st): State<AppState>,
    auth: Auth,
    AppPath(id): AppPath<i64>,
) -> Result<StatusCode, ApiError> {
    auth.require(&[Role::Admin])?;
    if st.db.revoke_api_key(auth.tenant_id, id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!("API key {id}")))
    }
}

// ---- tenant settings (admin) --------------------------------------------------------------

/// `GET /api/tenant` (admin): the caller's tenant and its effective agent limit.
pub async fn get_tenant(State(st): State<AppState>, auth: Auth) -> Result<Json<Value>, ApiError> {
    auth.require(&[Role::Admin])?;
    let t = st
        .db
        .tenant(auth.tenant_id)
        .await?
        .ok_or_else(|| ApiError::not_found("tenant"))?;
    let effective = t.max_agents.unwrap_or(st.config.max_agents_per_tenant);
    Ok(Json(
        json!({"tenant": t, "effective_max_agents": effective}),
    ))
}

/// Body of `PATCH /api/tenant`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PatchTenant {
    /// New agent limit; `null` = the server default (SOC_MAX_AGENTS_PER_TENANT).
    max_agents: Option<i64>,
}

/// `PATCH /api/tenant` (admin): sets the tenant's agent limit override.
pub async fn patch_tenant(
    State(st): State<AppState>,
    auth: Auth,
    AppJson(b): AppJson<PatchTenant>,
) -> Result<Json<Value>, ApiError> {
    auth.require(&[Role::Admin])?;
    if b.max_agents.is_some_and(|n| n < 0) {
        return Err(ApiError::invalid("`max_agents` must be ≥ 0 or null"));
    }
    st.db
        .set_tenant_max_agents(auth.tenant_id, b.max_agents)
        .await?;
    get_tenant(State(st), auth).await
}

// ---- agents -------------------------------------------------------------------------------

/// Body of `POST /api/agents/register`.
#[derive(Debug, Deserialize)]
pub struct RegisterAgent {
    hostname: String,
    os: Option<String>,
    ip_address: Option<String>,
    version: Option<String>,
}

fn check_len(name: &str, v: &Option<String>, max: usize) -> Result<(), ApiError> {
    match v {
        Some(s) if s.len() > max => Err(ApiError::invalid(format!(
            "`{name}` is longer than {max} bytes"
        ))),
        _ => Ok(()),
    }
}

/// `POST /api/agents/register` (agent): idempotent per hostname; 201 when new, 200 when known.
pub async fn register_agent(
    State(st): State<AppState>,
    auth: Auth,
    AppJson(b): AppJson<RegisterAgent>,
) -> Result<impl IntoResponse, ApiError> {
    auth.require(&[Role::Agent])?;
    let hostname = b.hostname.trim();
    if hostname.is_empty() || hostname.len() > 255 {
        return Err(ApiError::invalid("`hostname` must be 1 to 255 bytes"));
    }
    check_len("os", &b.os, 255)?;
    check_len("ip_address", &b.ip_address, 64)?;
    check_len("version", &b.version, 64)?;
    let info = AgentInfo {
        hostname: hostname.to_owned(),
        os: b.os,
        ip_address: b.ip_address,
        version: b.version,
    };
    match st
        .db
        .register_agent(auth.tenant_id, &info, st.config.max_agents_per_tenant)
        .await?
    {
        Registered::Created(a) => Ok((StatusCode::CREATED, Json(json!({"agent": a})))),
        Registered::Existing(a) => Ok((StatusCode::OK, Json(json!({"agent": a})))),
        Registered::LimitReached(limit) => Err(ApiError::new(
            StatusCode::CONFLICT,
            "agent_limit_reached",
            format!("this tenant may register at most {limit} agents (SOC_MAX_AGENTS_PER_TENANT)"),
        )),
    }
}

/// Pagination query.
#[derive(Debug, Deserialize)]
pub struct PageQuery {
    cursor: Option<String>,
    limit: Option<i64>,
}

/// `GET /api/agents` (analyst).
pub async fn list_agents(
    State(st): State<AppState>,
    auth: Auth,
    AppQuery(q): AppQuery<PageQuery>,
) -> Result<Json<Value>, ApiError> {
    auth.require(&[Role::Analyst])?;
    let limit = page_limit(q.limit)?;
    let after = cursor(&q.cursor)?.unwrap_or(0);
    let agents = st.db.list_agents(auth.tenant_id, after, limit).await?;
    let next = next_cursor(agents.iter().map(|a| a.id), agents.len(), limit);
    Ok(Json(json!({"agents": agents, "next_cursor": next})))
}

/// `GET /api/agents/{id}` (analyst).
pub async fn get_agent(
    State(st): State<AppState>,
    auth: Auth,
    AppPath(id): AppPath<i64>,
) -> Result<Json<Value>, ApiError> {
    auth.require(&[Role::Analyst])?;
    let a = st
        .db
        .agent(auth.tenant_id, id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("agent {id}")))?;
    Ok(Json(json!({"agent": a})))
}

/// `POST /api/agents/{id}/heartbeat` (agent).
pub async fn heartbeat(
    State(st): State<AppState>,
    auth: Auth,
    AppPath(id): AppPath<i64>,
) -> Result<StatusCode, ApiError> {
    auth.require(&[Role::Agent])?;
    if st.db.touch_agent(auth.tenant_id, id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!("agent {id}")))
    }
}

// ---- agent commands -----------------------------------------------------------------------

/// Body of `POST /api/agents/{id}/commands`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IssueCommand {
    command: String,
    #[serde(default)]
    parameters: Option<Value>,
}

/// A command with its JSON fields parsed.
#[derive(Debug, Serialize)]
struct CommandOut {
    id: i64,
    agent_id: i64,
    command: String,
    parameters: Value,
    status: String,
    issued_by_key: Option<i64>,
    #[serde(serialize_with = "db::ser_ms")]
    created_at: i64,
    #[serde(serialize_with = "db::ser_opt_ms")]
    delivered_at: Option<i64>,
    #[serde(serialize_with = "db::ser_opt_ms")]
    completed_at: Option<i64>,
    result: Option<Value>,
}

fn command_out(c: db::AgentCommand) -> CommandOut {
    let json = |s: &str| serde_json::from_str(s).unwrap_or(Value::Null);
    CommandOut {
        parameters: json(&c.parameters),
        result: c.result.as_deref().map(json),
        id: c.id,
        agent_id: c.agent_id,
        command: c.command,
        status: c.status,
        issued_by_key: c.issued_by_key,
        created_at: c.created_at,
        delivered_at: c.delivered_at,
        completed_at: c.completed_at,
    }
}

/// `POST /api/agents/{id}/commands` (analyst): queues a command for the agent; at most
/// `SOC_MAX_COMMANDS_PER_MINUTE` per tenant (429 with `Retry-After` beyond).
pub async fn issue_command(
    State(st): State<AppState>,
    auth: Auth,
    AppPath(agent_id): AppPath<i64>,
    AppJson(b): AppJson<IssueCommand>,
) -> Result<impl IntoResponse, ApiError> {
    auth.require(&[Role::Analyst])?;
    let name_ok = |c: char| c.is_ascii_alphanumeric() || "_.:-".contains(c);
    if b.command.is_empty() || b.command.len() > 64 || !b.command.chars().all(name_ok) {
        return Err(ApiError::invalid(
            "`command` must be 1 to 64 characters of letters, digits, `_`, `.`, `:` or `-`",
        ));
    }
    let parameters = match b.parameters {
        None | Some(Value::Null) => json!({}),
        Some(v @ Value::Object(_)) => v,
        Some(_) => return Err(ApiError::invalid("`parameters` must be a JSON object")),
    };
    let issued = st
        .db
        .issue_command(
            auth.tenant_id,
            agent_id,
            &b.command,
            &parameters.to_string(),
            auth.key_id,
            st.config.max_commands_per_minute,
        )
        .await?;
    match issued {
        db::CommandIssued::Created(c) => Ok((
            StatusCode::CREATED,
            Json(json!({"command": command_out(c)})),
        )
            .into_response()),
        db::CommandIssued::NoSuchAgent => Err(ApiError::not_found(format!("agent {agent_id}"))),
        db::CommandIssued::RateLimited { retry_after_ms } => {
            let limit = st.config.max_commands_per_minute;
            let err = ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                format!(
                    "this tenant may issue at most {limit} commands per minute (SOC_MAX_COMMANDS_PER_MINUTE)"
                ),
            );
            let retry_after = (retry_after_ms + 999) / 1000;
            Ok(([(header::RETRY_AFTER, retry_after.to_string())], err).into_response())
        }
    }
}

/// Query of `GET /api/agents/{id}/commands`.
#[derive(Debug, Deserialize)]
pub struct CommandQuery {
    status: Option<String>,
    cursor: Option<String>,
    limit: Option<i64>,
}

/// `GET /api/agents/{id}/commands` (analyst): the agent's commands, newest first.
pub async fn list_commands(
    State(st): State<AppState>,
    auth: Auth,
    AppPath(agent_id): AppPath<i64>,
    AppQuery(q): AppQuery<CommandQuery>,
) -> Result<Json<Value>, ApiError> {
    auth.require(&[Role::Analyst])?;
    one_of(
        "status",
        &q.status,
        &db::COMMAND_STATUSES,
        ApiError::bad_request,
    )?;
    if st.db.agent(auth.tenant_id, agent_id).await?.is_none() {
        return Err(ApiError::not_found(format!("agent {agent_id}")));
    }
    let limit = page_limit(q.limit)?;
    let cmds = st
        .db
        .list_commands(
            auth.tenant_id,
            agent_id,
            q.status.as_deref(),
            cursor(&q.cursor)?,
            limit,
        )
        .await?;
    let next = next_cursor(cmds.iter().map(|c| c.id), cmds.len(), limit);
    let cmds: Vec<CommandOut> = cmds.into_iter().map(command_out).collect();
    Ok(Json(json!({"commands": cmds, "next_cursor": next})))
}

/// Most commands handed to an agent in one poll.
const MAX_POLLED_COMMANDS: i64 = 100;

/// `GET /api/agents/{id}/commands/pending` (agent): the poll. Returns the agent's unfinished
/// commands, oldest first, until it reports their results; counts as a heartbeat.
pub async fn poll_commands(
    State(st): State<AppState>,
    auth: Auth,
    AppPath(agent_id): AppPath<i64>,
) -> Result<Json<Value>, ApiError> {
    auth.require(&[Role::Agent])?;
    let cmds = st
        .db
        .poll_commands(auth.tenant_id, agent_id, MAX_POLLED_COMMANDS)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("agent {agent_id}")))?;
    let cmds: Vec<CommandOut> = cmds.into_iter().map(command_out).collect();
    Ok(Json(json!({"commands": cmds})))
}

/// Body of `POST /api/agents/{id}/commands/{command_id}/result`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommandResult {
    status: String,
    #[serde(default)]
    output: Value,
}

/// `POST /api/agents/{id}/commands/{command_id}/result` (agent): the command's outcome,
/// `succeeded` or `failed`, with any JSON `output`. Repeating the same report is harmless.
pub async fn complete_command(
    State(st): State<AppState>,
    auth: Auth,
    AppPath((agent_id, command_id)): AppPath<(i64, i64)>,
    AppJson(b): AppJson<CommandResult>,
) -> Result<Json<Value>, ApiError> {
    auth.require(&[Role::Agent])?;
    if !db::COMMAND_RESULTS.contains(&b.status.as_str()) {
        return Err(ApiError::invalid(
            "`status` must be `succeeded` or `failed`",
        ));
    }
    let done = st
        .db
        .complete_command(
            auth.tenant_id,
            agent_id,
            command_id,
            &b.status,
            &b.output.to_string(),
        )
        .await?;
    match done {
        db::CommandCompleted::Completed(c) => Ok(Json(json!({"command": command_out(c)}))),
        db::CommandCompleted::AlreadyCompleted(c) if c.status == b.status => {
            Ok(Json(json!({"command": command_out(c)})))
        }
        db::CommandCompleted::AlreadyCompleted(c) => Err(ApiError::new(
            StatusCode::CONFLICT,
            "already_completed",
            format!("command {command_id} already completed as `{}`", c.status),
        )),
        db::CommandCompleted::NotFound => Err(ApiError::not_found(format!(
            "command {command_id} of agent {agent_id}"
        ))),
    }
}

// ---- logs ---------------------------------------------------------------------------------

/// One log as shipped by an agent.
#[derive(Debug, Deserialize)]
pub struct LogIn {
    agent_id: i64,
    message: String,
    timestamp: Option<String>,
    source: Option<String>,
    level: Option<String>,
}

fn to_new_log(l: LogIn, now: i64, line: usize) -> Result<NewLog, ApiError> {
    let at = |m: String| ApiError::invalid(format!("log {line}: {m}"));
    if l.message.is_empty() {
        return Err(at("`message` is empty".into()));
    }
    if l.message.len() > MAX_MESSAGE_BYTES {
        return Err(at(format!(
            "`message` is longer than {MAX_MESSAGE_BYTES} bytes"
        )));
    }
    if l.source.as_ref().is_some_and(|s| s.len() > 255)
        || l.level.as_ref().is_some_and(|s| s.len() > 32)
    {
        return Err(at("`source` (255) or `level` (32) too long".into()));
    }
    let timestamp = match &l.timestamp {
        Some(t) => parse_time("timestamp", t).map_err(at)?,
        None => now,
    };
    Ok(NewLog {
        agent_id: l.agent_id,
        timestamp,
        source: l.source,
        level: l.level,
        message: l.message,
    })
}

/// Parses a JSON array or NDJSON body (one object a line) of at most `max` items; `noun`
/// names an item in messages (`log 3: …`).
fn parse_batch<T: serde::de::DeserializeOwned>(
    body: &[u8],
    noun: &str,
    max: usize,
) -> Result<Vec<T>, ApiError> {
    let text = std::str::from_utf8(body).map_err(|_| ApiError::bad_request("body is not UTF-8"))?;
    let trimmed = text.trim_start();
    let json_err = |line: usize, e: serde_json::Error| {
        if e.is_data() {
            ApiError::invalid(format!("{noun} {line}: {e}"))
        } else {
            ApiError::bad_request(format!("{noun} {line}: malformed JSON: {e}"))
        }
    };
    let too_many = || ApiError::too_large(format!("at most {max} {noun}s per request"));
    let items: Vec<T> = if trimmed.starts_with('[') {
        let v: Vec<T> = serde_json::from_str(trimmed).map_err(|e| json_err(0, e))?;
        if v.len() > max {
            return Err(too_many());
        }
        v
    } else {
        let mut v = Vec::new();
        for (i, line) in trimmed.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            if v.len() == max {
                return Err(too_many());
            }
            v.push(serde_json::from_str(line).map_err(|e| json_err(i, e))?);
        }
        v
    };
    if items.is_empty() {
        return Err(ApiError::invalid(format!("no {noun}s in the body")));
    }
    Ok(items)
}

/// Parses a JSON array or NDJSON body into logs.
fn parse_logs(body: &[u8]) -> Result<Vec<NewLog>, ApiError> {
    let now = db::now_ms();
    let items: Vec<LogIn> = parse_batch(body, "log", MAX_LOG_LINES)?;
    items
        .into_iter()
        .enumerate()
        .map(|(i, l)| to_new_log(l, now, i))
        .collect()
}

/// `POST /api/logs` (agent): JSON array or NDJSON, ≤ 10 000 logs and ≤ 8 MiB; answers after
/// the batch is committed.
pub async fn ingest_logs(
    State(st): State<AppState>,
    auth: Auth,
    body: Result<Bytes, BytesRejection>,
) -> Result<impl IntoResponse, ApiError> {
    auth.require(&[Role::Agent])?;
    let body = body.map_err(body_error)?;
    let logs = parse_logs(&body)?;
    match st.db.insert_logs(auth.tenant_id, &logs).await? {
        Ingested::Committed { count, received_at } => {
            st.pipeline.wake();
            Ok((
                StatusCode::CREATED,
                Json(json!({"accepted": count, "received_at": db::ms_to_rfc3339(received_at)})),
            ))
        }
        Ingested::UnknownAgents(ids) => Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "unknown_agent",
            format!("no agent with id {ids:?} in this tenant; nothing was written"),
        )),
    }
}

/// Query of `GET /api/logs`.
#[derive(Debug, Deserialize)]
pub struct LogQuery {
    agent_id: Option<i64>,
    since: Option<String>,
    until: Option<String>,
    cursor: Option<String>,
    limit: Option<i64>,
}

/// `GET /api/logs` (analyst): newest first.
pub async fn list_logs(
    State(st): State<AppState>,
    auth: Auth,
    AppQuery(q): AppQuery<LogQuery>,
) -> Result<Json<Value>, ApiError> {
    auth.require(&[Role::Analyst])?;
    let f = LogFilter {
        agent_id: q.agent_id,
        since: opt_time("since", &q.since)?,
        until: opt_time("until", &q.until)?,
        before_id: cursor(&q.cursor)?,
        limit: page_limit(q.limit)?,
    };
    let logs = st.db.list_logs(auth.tenant_id, &f).await?;
    let next = next_cursor(logs.iter().map(|l| l.id), logs.len(), f.limit);
    Ok(Json(json!({"logs": logs, "next_cursor": next})))
}

// ---- threats ------------------------------------------------------------------------------

const SEVERITIES: [&str; 4] = ["low", "medium", "high", "critical"];
const STATUSES: [&str; 3] = ["open", "acknowledged", "resolved"];
const VERDICTS: [&str; 2] = ["true_positive", "false_positive"];

fn one_of(
    name: &str,
    v: &Option<String>,
    allowed: &[&str],
    bad: fn(String) -> ApiError,
) -> Result<(), ApiError> {
    match v {
        Some(s) if !allowed.contains(&s.as_str()) => {
            Err(bad(format!("`{name}` must be one of {allowed:?}")))
        }
        _ => Ok(()),
    }
}

/// Query of `GET /api/threats`.
#[derive(Debug, Deserialize)]
pub struct ThreatQuery {
    severity: Option<String>,
    status: Option<String>,
    agent_id: Option<i64>,
    since: Option<String>,
    until: Option<String>,
    cursor: Option<String>,
    limit: Option<i64>,
}

/// A threat with its explanation parsed.
#[derive(Debug, Serialize)]
struct ThreatOut {
    #[serde(flatten)]
    threat: db::Threat,
    explanation: Value,
}

fn threat_out(t: db::Threat) -> ThreatOut {
    let explanation = serde_json::from_str(&t.explanation).unwrap_or(Value::Null);
    ThreatOut {
        threat: t,
        explanation,
    }
}

/// `GET /api/threats` (analyst): newest first.
pub async fn list_threats(
    State(st): State<AppState>,
    auth: Auth,
    AppQuery(q): AppQuery<ThreatQuery>,
) -> Result<Json<Value>, ApiError> {
    auth.require(&[Role::Analyst])?;
    one_of("severity", &q.severity, &SEVERITIES, ApiError::bad_request)?;
    one_of("status", &q.status, &STATUSES, ApiError::bad_request)?;
    let f = ThreatFilter {
        severity: q.severity,
        status: q.status,
        agent_id: q.agent_id,
        since: opt_time("since", &q.since)?,
        until: opt_time("until", &q.until)?,
        before_id: cursor(&q.cursor)?,
        limit: page_limit(q.limit)?,
    };
    let threats = st.db.list_threats(auth.tenant_id, &f).await?;
    let next = next_cursor(threats.iter().map(|t| t.id), threats.len(), f.limit);
    let threats: Vec<ThreatOut> = threats.into_iter().map(threat_out).collect();
    Ok(Json(json!({"threats": threats, "next_cursor": next})))
}

/// `GET /api/threats/{id}` (analyst): with its log and explanation.
pub async fn get_threat(
    State(st): State<AppState>,
    auth: Auth,
    AppPath(id): AppPath<i64>,
) -> Result<Json<Value>, ApiError> {
    auth.require(&[Role::Analyst])?;
    let t = st
        .db
        .threat(auth.tenant_id, id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("threat {id}")))?;
    let log = st.db.log(auth.tenant_id, t.log_id).await?;
    Ok(Json(json!({"threat": threat_out(t), "log": log})))
}

/// Query of `GET /api/threats/stream`.
#[derive(Debug, Deserialize)]
pub struct StreamQuery {
    severity: Option<String>,
}

/// How far back the live stream looks again for threats committed late (a batch's
/// `detected_at` is taken before its commit; concurrent workers commit out of order).
const STREAM_OVERLAP_MS: i64 = 10_000;

/// `GET /api/threats/stream` (analyst): server-sent events, one `threat` event per new threat
/// of the caller's tenant (optionally of one severity). Woken by this process's pipeline, and
/// every second for threats committed by other replicas.
pub async fn threat_stream(
    State(st): State<AppState>,
    auth: Auth,
    AppQuery(q): AppQuery<StreamQuery>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    auth.require(&[Role::Analyst])?;
    one_of("severity", &q.severity, &SEVERITIES, ApiError::bad_request)?;
    struct Cursor {
        st: AppState,
        tenant: i64,
        severity: Option<String>,
        since: i64,
        sent: BTreeMap<i64, i64>,
        rx: watch::Receiver<u64>,
    }
    let cursor = Cursor {
        rx: st.pipeline.threats_committed.subscribe(),
        st,
        tenant: auth.tenant_id,
        severity: q.severity,
        since: db::now_ms(),
        sent: BTreeMap::new(),
    };
    let stream = futures_util::stream::unfold(cursor, |mut c| async move {
        loop {
            let _ = tokio::time::timeout(Duration::from_secs(1), c.rx.changed()).await;
            let from = c.since - STREAM_OVERLAP_MS;
            let Ok(rows) = c.st.db.threats_since(c.tenant, from, 500).await else {
                continue;
            };
            // Forget what is out of the overlap window, skip what was sent already.
            c.sent.retain(|_, at| *at >= from);
            let mut events = Vec::new();
            for t in rows {
                if c.sent.contains_key(&t.id) {
                    continue;
                }
                c.since = c.since.max(t.detected_at);
                c.sent.insert(t.id, t.detected_at);
                if c.severity.as_deref().is_some_and(|s| s != t.severity) {
                    continue;
                }
                let id = t.id;
                let data = serde_json::to_string(&threat_out(t)).unwrap_or_default();
                events.push(Ok(Event::default()
                    .event("threat")
                    .id(id.to_string())
                    .data(data)));
            }
            if !events.is_empty() {
                return Some((futures_util::stream::iter(events), c));
            }
        }
    })
    .flatten();
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}

/// Body of `PATCH /api/threats/{id}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PatchThreat {
    status: Option<String>,
    verdict: Option<String>,
    assignee: Option<String>,
    note: Option<String>,
}

/// `PATCH /api/threats/{id}` (analyst): triage; a verdict is stored as a training label.
pub async fn patch_threat(
    State(st): State<AppState>,
    auth: Auth,
    AppPath(id): AppPath<i64>,
    AppJson(b): AppJson<PatchThreat>,
) -> Result<Json<Value>, ApiError> {
    auth.require(&[Role::Analyst])?;
    one_of("status", &b.status, &STATUSES, ApiError::invalid)?;
    one_of("verdict", &b.verdict, &VERDICTS, ApiError::invalid)?;
    check_len("assignee", &b.assignee, 255)?;
    check_len("note", &b.note, 10_000)?;
    if b.status.is_none() && b.verdict.is_none() && b.assignee.is_none() && b.note.is_none() {
        return Err(ApiError::invalid(
            "nothing to change: give status, verdict, assignee or note",
        ));
    }
    let u = ThreatUpdate {
        status: b.status,
        verdict: b.verdict,
        assignee: b.assignee,
        note: b.note,
    };
    let t = st
        .db
        .update_threat(auth.tenant_id, id, &u)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("threat {id}")))?;
    Ok(Json(json!({"threat": threat_out(t)})))
}

// ---- models and labels ------------------------------------------------------------------

/// Largest model artifact `POST /api/models` accepts (256 MiB).
pub const MAX_MODEL_BYTES: usize = 256 * 1024 * 1024;
/// Most labels in one `POST /api/labels`.
pub const MAX_LABELS: usize = 10_000;

/// `GET /api/models` (analyst): the tenant's versions and the global ones, newest first, and
/// which version scores the tenant's logs now.
pub async fn list_models(
    State(st): State<AppState>,
    auth: Auth,
    AppQuery(q): AppQuery<PageQuery>,
) -> Result<Json<Value>, ApiError> {
    auth.require(&[Role::Analyst])?;
    let limit = page_limit(q.limit)?;
    let after = q
        .cursor
        .as_deref()
        .map(|c| {
            db::ModelCursor::decode(c).ok_or_else(|| ApiError::bad_request("invalid `cursor`"))
        })
        .transpose()?;
    let rows = st
        .db
        .list_model_versions(auth.tenant_id, after.as_ref(), limit)
        .await?;
    let next = (rows.len() as i64 == limit)
        .then(|| rows.last().map(db::ModelCursor::encode))
        .flatten();
    let serving = detection::serving_version(&st, auth.tenant_id).await?;
    let models: Vec<detection::ModelVersionOut> = rows.into_iter().map(Into::into).collect();
    Ok(Json(
        json!({"models": models, "serving_version": serving, "next_cursor": next}),
    ))
}

/// `POST /api/models` (admin): body = a detector artifact (`Detector::to_bytes`); registered
/// as a `candidate` version of the caller's tenant after it loads and is measured.
pub async fn upload_model(
    State(st): State<AppState>,
    auth: Auth,
    body: Result<Bytes, BytesRejection>,
) -> Result<impl IntoResponse, ApiError> {
    auth.require(&[Role::Admin])?;
    let body = body.map_err(|r| {
        if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::too_large(format!(
                "model artifacts are limited to {MAX_MODEL_BYTES} bytes"
            ))
        } else {
            body_error(r)
        }
    })?;
    if body.is_empty() {
        return Err(ApiError::bad_request(
            "empty body: send the artifact bytes (application/octet-stream)",
        ));
    }
    let mv = detection::upload(&st, auth.tenant_id, body.to_vec()).await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"model": detection::ModelVersionOut::from(mv)})),
    ))
}

/// `GET /api/models/{version}` (analyst): one version of the tenant (or a global one).
pub async fn get_model(
    State(st): State<AppState>,
    auth: Auth,
    AppPath(version): AppPath<String>,
) -> Result<Json<Value>, ApiError> {
    auth.require(&[Role::Analyst])?;
    let mv = detection::find_version(&st, auth.tenant_id, &version).await?;
    Ok(Json(json!({"model": detection::ModelVersionOut::from(mv)})))
}

/// `GET /api/models/{version}/artifact` (analyst): the artifact bytes.
pub async fn model_artifact(
    State(st): State<AppState>,
    auth: Auth,
    AppPath(version): AppPath<String>,
) -> Result<impl IntoResponse, ApiError> {
    auth.require(&[Role::Analyst])?;
    let bytes = detection::artifact(&st, auth.tenant_id, &version).await?;
    Ok((
        [
            (
                axum::http::header::CONTENT_TYPE,
                "application/octet-stream".to_owned(),
            ),
            (
                axum::http::header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{version}.cgsoc\""),
            ),
        ],
        bytes,
    ))
}

/// `POST /api/models/{version}/activate` (admin): makes a version of the tenant the one
/// scoring its logs (promote a candidate or roll back); the previous one is retired.
pub async fn activate_model(
    State(st): State<AppState>,
    auth: Auth,
    AppPath(version): AppPath<String>,
) -> Result<Json<Value>, ApiError> {
    auth.require(&[Role::Admin])?;
    let a = detection::activate(&st, auth.tenant_id, &version).await?;
    Ok(Json(json!({
        "model": detection::ModelVersionOut::from(a.active),
        "retired_version": a.retired,
    })))
}

/// `POST /api/models/retrain` (admin): starts a retrain of the tenant's model in the
/// background (or returns the one running); 202 with the job to poll.
pub async fn retrain_models(
    State(st): State<AppState>,
    auth: Auth,
) -> Result<impl IntoResponse, ApiError> {
    auth.require(&[Role::Admin])?;
    let (job, started) = detection::start_retrain(&st, auth.tenant_id);
    let poll = format!("/api/models/retrain/{}", job.id);
    Ok((
        StatusCode::ACCEPTED,
        [(axum::http::header::LOCATION, poll.clone())],
        Json(json!({"job": job, "started": started, "poll": poll})),
    ))
}

/// `GET /api/models/retrain/{id}` (admin): a retrain job of the tenant.
pub async fn retrain_job(
    State(st): State<AppState>,
    auth: Auth,
    AppPath(id): AppPath<String>,
) -> Result<Json<Value>, ApiError> {
    auth.require(&[Role::Admin])?;
    let job = st
        .pipeline
        .retrains
        .get(auth.tenant_id, &id)
        .ok_or_else(|| ApiError::not_found(format!("retrain job {id}")))?;
    Ok(Json(json!({"job": job})))
}

/// One imported label.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LabelIn {
    message: String,
    malicious: bool,
}

/// `POST /api/labels` (analyst): training labels `{message, malicious}` as a JSON array or
/// NDJSON, ≤ 10 000 per request and ≤ 8 MiB; used by the tenant's next retrain.
pub async fn import_labels(
    State(st): State<AppState>,
    auth: Auth,
    body: Result<Bytes, BytesRejection>,
) -> Result<impl IntoResponse, ApiError> {
    auth.require(&[Role::Analyst])?;
    let body = body.map_err(body_error)?;
    let labels = parse_labels(&body)?;
    let n = st.db.insert_labels(auth.tenant_id, &labels).await?;
    Ok((StatusCode::CREATED, Json(json!({"accepted": n}))))
}

fn parse_labels(body: &[u8]) -> Result<Vec<(String, bool)>, ApiError> {
    let items: Vec<LabelIn> = parse_batch(body, "label", MAX_LABELS)?;
    items
        .into_iter()
        .enumerate()
        .map(|(i, l)| {
            if l.message.is_empty() || l.message.len() > MAX_MESSAGE_BYTES {
                Err(ApiError::invalid(format!(
                    "label {i}: `message` must be 1 to {MAX_MESSAGE_BYTES} bytes"
                )))
            } else {
                Ok((l.message, l.malicious))
            }
        })
        .collect()
}

// ---- sample data --------------------------------------------------------------------------

/// Body of `POST /api/test/create-sample-agents` (optional).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SampleRequest {
    logs: Option<usize>,
    attack_ratio: Option<f64>,
    seed: Option<u64>,
}

/// `POST /api/test/create-sample-agents` (admin): sample agents plus benign and attack logs.
pub async fn create_sample_agents(
    State(st): State<AppState>,
    auth: Auth,
    body: Result<Bytes, BytesRejection>,
) -> Result<impl IntoResponse, ApiError> {
    auth.require(&[Role::Admin])?;
    let body = body.map_err(body_error)?;
    let req: SampleRequest = if body.iter().all(u8::is_ascii_whitespace) {
        SampleRequest::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| {
            if e.is_data() {
                ApiError::invalid(e.to_string())
            } else {
                ApiError::bad_request(e.to_string())
            }
        })?
    };
    let n = req.logs.unwrap_or(200);
    if n == 0 || n > MAX_LOG_LINES {
        return Err(ApiError::invalid(format!(
            "`logs` must be between 1 and {MAX_LOG_LINES}"
        )));
    }
    let ratio = req.attack_ratio.unwrap_or(0.15);
    if !(0.0..=1.0).contains(&ratio) {
        return Err(ApiError::invalid("`attack_ratio` must be between 0 and 1"));
    }
    let mut agents = Vec::new();
    for a in &sample::AGENTS {
        let info = AgentInfo {
            hostname: a.hostname.to_owned(),
            os: Some(a.os.to_owned()),
            ip_address: Some(a.ip_address.to_owned()),
            version: Some(format!("sample-{}", env!("CARGO_PKG_VERSION"))),
        };
        match st
            .db
            .register_agent(auth.tenant_id, &info, st.config.max_agents_per_tenant)
            .await?
        {
            Registered::Created(a) | Registered::Existing(a) => agents.push(a),
            Registered::LimitReached(limit) => {
                return Err(ApiError::new(
                    StatusCode::CONFLICT,
                    "agent_limit_reached",
                    format!("this tenant may register at most {limit} agents"),
                ));
            }
        }
    }
    let now = db::now_ms();
    let logs = sample::generate(n, ratio, req.seed.unwrap_or_else(rand::random));
    let attacks = logs.iter().filter(|l| l.malicious).count();
    let rows: Vec<NewLog> = logs
        .into_iter()
        .map(|l| NewLog {
            agent_id: agents[l.agent].id,
            timestamp: now,
            source: Some(l.source.to_owned()),
            level: Some(l.level.to_owned()),
            message: l.message,
        })
        .collect();
    match st.db.insert_logs(auth.tenant_id, &rows).await? {
        Ingested::Committed { .. } => st.pipeline.wake(),
        Ingested::UnknownAgents(_) => return Err(ApiError::internal("sample agents vanished")),
    }
    Ok((
        StatusCode::CREATED,
        Json(json!({"agents": agents, "logs": rows.len(), "attacks": attacks})),
    ))
}

/// Fallback: unknown route.
pub async fn not_found() -> ApiError {
    ApiError::not_found("route")
}

/// Fallback: known route, wrong method.
pub async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "method not allowed on this route",
    )
}
