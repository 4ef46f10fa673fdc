//! `soc-server`: parse the configuration, set up logging, run the command.

use std::process::ExitCode;

use clap::Parser;
use soc_server::{Cli, Command, Config, auth};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

fn init_tracing(config: &Config) {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,tower_http=info"));
    let stdout = tracing_subscriber::fmt::layer().with_writer(std::io::stdout);
    let file = if config.log_dir.as_os_str().is_empty() {
        None
    } else {
        std::fs::create_dir_all(&config.log_dir)
            .and_then(|()| {
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(config.log_dir.join("soc_server.log"))
            })
            .map_err(|e| eprintln!("warning: cannot open the log file: {e}"))
            .ok()
            .map(|f| {
                tracing_subscriber::fmt::layer()
                    .with_ansi(false)
                    .with_writer(std::sync::Mutex::new(f))
            })
    };
    tracing_subscriber::registry()
        .with(filter)
        .with(stdout)
        .with(file)
        .init();
}

#[tokio::main]
async fn main() -> ExitCode {
    // `.env` first, so clap sees its variables; a missing file is fine.
    let _ = dotenvy::dotenv();
    let cli = Cli::parse();
    init_tracing(&cli.config);
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let config = cli.config;
    match cli.command.unwrap_or(Command::Serve) {
        Command::Migrate => {
            let state = soc_server::connect(config).await?;
            tracing::info!(backend = state.db.backend(), "migrations applied");
        }
        Command::Retrain { tenant: None } => {
            let state = soc_server::connect(config).await?;
            let version = soc_server::detection::retrain(&state).await?;
            println!("new active global model version: {version}");
        }
        Command::Retrain {
            tenant: Some(tenant),
        } => {
            let state = soc_server::connect(config).await?;
            if state.db.tenant(tenant).await?.is_none() {
                anyhow::bail!("no tenant with id {tenant}");
            }
            let o = soc_server::detection::retrain_tenant(&state, tenant).await?;
            let outcome = if o.promoted {
                "active"
            } else {
                "candidate (worse than the serving model)"
            };
            println!(
                "new model version of tenant {tenant}: {} ({outcome})",
                o.version
            );
        }
        Command::CreateTenant { name } => {
            let state = soc_server::connect(config).await?;
            let tenant = state
                .db
                .create_tenant(&name)
                .await?
                .ok_or_else(|| anyhow::anyhow!("a tenant named `{name}` exists already"))?;
            let (_, key) =
                auth::create_key(&state.db, tenant.id, auth::Role::Admin, Some("first admin"))
                    .await?;
            println!(
                "tenant {} `{}` created; admin API key (shown once):",
                tenant.id, tenant.name
            );
            println!("{key}");
        }
        Command::CreateApiKey { tenant, role, name } => {
            let role = auth::Role::parse(&role)
                .ok_or_else(|| anyhow::anyhow!("--role must be admin, analyst or agent"))?;
            let state = soc_server::connect(config).await?;
            if state.db.tenant(tenant).await?.is_none() {
                anyhow::bail!("no tenant with id {tenant}");
            }
            let (id, key) = auth::create_key(&state.db, tenant, role, name.as_deref()).await?;
            println!(
                "API key {id} ({}) for tenant {tenant} (shown once):",
                role.as_str()
            );
            println!("{key}");
        }
        Command::Archive => {
            let settings = soc_server::archive::ArchiveSettings::from_config(&config);
            if settings.retention_days.is_nan() || settings.retention_days <= 0.0 {
                anyhow::bail!("SOC_LOG_RETENTION_DAYS is 0: archival is disabled");
            }
            let store = soc_server::archive::open_archive_store(&config).await?;
            let state = soc_server::connect(config).await?;
            let report = soc_server::archive::archive_old_logs(
                &state.db,
                store.as_ref(),
                settings,
                soc_server::db::now_ms(),
            )
            .await?;
            println!("{}", serde_json::to_string(&report)?);
        }
        Command::RestoreArchive { key } => {
            let store = soc_server::archive::open_archive_store(&config).await?;
            let state = soc_server::connect(config).await?;
            let report = soc_server::archive::restore(&state.db, store.as_ref(), &key).await?;
            println!("{}", serde_json::to_string(&report)?);
        }
        Command::ExportTrainingData { tenant } => {
            let secret = config.secret_key.clone();
            let state = soc_server::connect(config).await?;
            let report = soc_server::export::export_training_data(
                &state.db,
                state.models.as_ref(),
                secret.as_ref().map(|s| s.expose()),
                &tenant,
                soc_server::db::now_ms(),
            )
            .await?;
            println!("{}", serde_json::to_string(&report)?);
        }
        Command::Serve => serve(config).await?,
    }
    Ok(())
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let addr = format!("{}:{}", config.host, config.port);
    let state = soc_server::connect(config).await?;
    tracing::info!(
        backend = state.db.backend(),
        "database connected and migrated"
    );
    if let Some(key) = soc_server::bootstrap(&state).await? {
        let path = state.config.data_dir.join("admin-api-key");
        println!(
            "First start: created tenant `default`. Its admin API key (shown once, also in {}):",
            path.display()
        );
        println!("{key}");
    }
    if state.config.ml_models_enabled {
        let version = soc_server::detection::start(&state).await?;
        tracing::info!(%version, "detection pipeline started");
    } else {
        tracing::warn!("ML_MODELS_ENABLED=false: logs are stored but not scored");
    }
    let archive = soc_server::archive::ArchiveSettings::from_config(&state.config);
    let every = state.config.archive_interval_minutes;
    if archive.retention_days > 0.0 && every.is_finite() && every > 0.0 {
        let store = soc_server::archive::open_archive_store(&state.config).await?;
        soc_server::archive::spawn_periodic(
            state.db.clone(),
            store,
            archive,
            std::time::Duration::from_secs_f64(every * 60.0),
        );
        tracing::info!(
            retention_days = archive.retention_days,
            every_minutes = every,
            "log archival scheduled"
        );
    }
    let listener = tokio::net::TcpListener::bind(&addr)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {addr}: {e}"))?;
    tracing::info!("listening on http://{}", listener.local_addr()?);
    soc_server::serve(listener, state.clone(), shutdown_signal()).await?;
    state.db.close().await;
    Ok(())
}

/// Ctrl-C or SIGTERM (what service managers send): stop accepting, finish in-flight requests.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            },
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM; only Ctrl-C stops the server");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
    tracing::info!("shutting down");
}
