//! # soc-server: the CodeGrey SOC server
//!
//! Multi-tenant HTTP API (axum) over PostgreSQL or an embedded SQLite file (sqlx), with the
//! detection pipeline of soc-core running in-process. `main.rs` parses the configuration and
//! calls [`connect`], [`bootstrap`] and [`serve`]; tests do the same on port 0.
#![forbid(unsafe_code)]

pub mod api;
pub mod archive;
pub mod auth;
pub mod config;
pub mod db;
pub mod detection;
pub mod error;
pub mod export;
pub mod model_store;
pub mod pipeline;
pub mod s3;
pub mod sample;
pub mod sanitize;

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{delete, get, patch, post};
use soc_core::store::ModelStore;
use tower_http::trace::TraceLayer;

pub use config::{Cli, Command, Config};
pub use db::Db;

/// What every handler gets.
#[derive(Clone)]
pub struct AppState {
    /// The database.
    pub db: Db,
    /// Model artifacts.
    pub models: Arc<dyn ModelStore>,
    /// The same store when it is S3-backed (`S3_BUCKET`): its status and pending uploads.
    pub s3_models: Option<Arc<model_store::CachedModelStore>>,
    /// Settings.
    pub config: Arc<Config>,
    /// Detection pipeline state.
    pub pipeline: Arc<pipeline::Pipeline>,
    /// Start time, for uptime.
    pub started: Instant,
}

/// Connects to the configured database, runs the migrations and opens the model store.
/// Errors say which of the two failed.
pub async fn connect(config: Config) -> anyhow::Result<AppState> {
    let url = config.database_url();
    let db = Db::connect(&url)
        .await
        .map_err(|e| anyhow::anyhow!("database unreachable ({}): {e}", redact(&url)))?;
    db.migrate()
        .await
        .map_err(|e| anyhow::anyhow!("database migration failed: {e}"))?;
    let store = model_store::open(&config).await.map_err(|e| {
        anyhow::anyhow!(
            "model store unusable ({}): {e}",
            config.models_dir().display()
        )
    })?;
    if let Some(s3) = &store.s3 {
        // S3 down or slow must not stop the start: the cache serves, the status says degraded.
        let active: Vec<String> = match db.active_model_versions().await {
            Ok(v) => v.into_iter().map(|mv| mv.key).collect(),
            Err(e) => anyhow::bail!("cannot read the active model versions: {e}"),
        };
        s3.prefetch(&active).await;
        s3.spawn_sync();
    }
    Ok(AppState {
        db,
        models: store.models,
        s3_models: store.s3,
        config: Arc::new(config),
        pipeline: Arc::default(),
        started: Instant::now(),
    })
}

/// The URL without its password, for messages.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let userinfo = &url[s + 3..at];
            let user = userinfo.split(':').next().unwrap_or_default();
            format!("{}{}:***{}", &url[..s + 3], user, &url[at..])
        }
        _ => url.to_owned(),
    }
}

/// First start on an empty database: creates the `default` tenant and its admin key, writes
/// the key to `{data_dir}/admin-api-key` (mode 0600) and returns it (to print once). `None`
/// when a tenant exists already.
pub async fn bootstrap(state: &AppState) -> anyhow::Result<Option<String>> {
    if state.db.tenant_count().await? > 0 {
        return Ok(None);
    }
    // Replicas starting together: only the one that creates the tenant makes a key.
    let Some(tenant) = state.db.create_tenant("default").await? else {
        return Ok(None);
    };
    let (_, key) =
        auth::create_key(&state.db, tenant.id, auth::Role::Admin, Some("bootstrap")).await?;
    let path = state.config.data_dir.join("admin-api-key");
    write_secret(&path, &key)?;
    Ok(Some(key))
}

fn write_secret(path: &std::path::Path, secret: &str) -> std::io::Result<()> {
    use std::io::Write;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    }
    writeln!(f, "{secret}")
}

/// The HTTP API.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(api::healthz))
        .route("/api/system/status", get(api::system_status))
        .route("/api/tenant", get(api::get_tenant).patch(api::patch_tenant))
        .route("/api/keys", post(api::create_key))
        .route("/api/keys/{id}", delete(api::revoke_key))
        .route("/api/agents/register", post(api::register_agent))
        .route("/api/agents", get(api::list_agents))
        .route("/api/agents/{id}", get(api::get_agent))
        .route("/api/agents/{id}/heartbeat", post(api::heartbeat))
        .route(
            "/api/agents/{id}/commands",
            post(api::issue_command).get(api::list_commands),
        )
        .route("/api/agents/{id}/commands/pending", get(api::poll_commands))
        .route(
            "/api/agents/{id}/commands/{command_id}/result",
            post(api::complete_command),
        )
        .route(
            "/api/logs",
            post(api::ingest_logs)
                .get(api::list_logs)
                .layer(DefaultBodyLimit::max(api::MAX_LOG_BYTES)),
        )
        .route("/api/threats", get(api::list_threats))
        .route("/api/threats/stream", get(api::threat_stream))
        .route(
            "/api/threats/{id}",
            get(api::get_threat).merge(patch(api::patch_threat)),
        )
        // Models and training labels.
        .route(
            "/api/models",
            get(api::list_models)
                .post(api::upload_model)
                .layer(DefaultBodyLimit::max(api::MAX_MODEL_BYTES)),
        )
        .route("/api/models/retrain", post(api::retrain_models))
        .route("/api/models/retrain/{id}", get(api::retrain_job))
        .route("/api/models/{version}", get(api::get_model))
        .route("/api/models/{version}/artifact", get(api::model_artifact))
        .route("/api/models/{version}/activate", post(api::activate_model))
        .route(
            "/api/labels",
            post(api::import_labels).layer(DefaultBodyLimit::max(api::MAX_LOG_BYTES)),
        )
        .route(
            "/api/test/create-sample-agents",
            post(api::create_sample_agents),
        )
        .fallback(api::not_found)
        .method_not_allowed_fallback(api::method_not_allowed)
        .layer(DefaultBodyLimit::max(api::MAX_BODY_BYTES))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

/// Serves the API on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
}
