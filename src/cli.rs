//! The `cloudify-osb` command line: `serve` (all routes, graceful shutdown on SIGINT and
//! SIGTERM) and `sync` (one catalog sync run). Later commands (`service …`, `instance …`)
//! join the [`Command`] enum.
//! Must not import adapter crates (it builds through `wiring`).

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, Subcommand};

use crate::config::Config;
use crate::domain::broker::Broker;
use crate::domain::renewal::renew_due;
use crate::domain::sync::{SyncOptions, sync_catalog_with};
use crate::http::{Route, router};
use crate::{telemetry, wiring};

/// The Open Service Broker for Cloudify.
#[derive(Debug, Parser)]
#[command(name = "cloudify-osb", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the OSB API (every route) over HTTP.
    Serve(Box<Config>),
    /// Run one catalog sync from Cloudify into the store and print what changed.
    Sync(Box<Config>),
    /// Admin settings of a blueprint's offering (binder and binder config).
    Service(crate::admin::ServiceArgs),
    /// The state store itself (create its table).
    Store(crate::store_admin::StoreArgs),
    /// Service instances: list, show, purge a stuck one.
    Instance(crate::ops::InstanceArgs),
    /// Report (and with --fix repair) drift between the store, Cloudify and Vault.
    Reconcile(crate::ops::ReconcileArgs),
}

/// Parses the command line and runs it.
pub async fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(config) => serve(*config).await,
        Command::Sync(config) => sync(*config).await,
        Command::Service(args) => crate::admin::run(args).await,
        Command::Store(args) => crate::store_admin::run(args).await,
        Command::Instance(args) => crate::ops::run_instance(args).await,
        Command::Reconcile(args) => crate::ops::run_reconcile(args).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "cloudify-osb failed");
            eprintln!("cloudify-osb: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `cloudify-osb serve`.
pub async fn serve(config: Config) -> Result<(), wiring::StartupError> {
    telemetry::init(config.log_format);
    let tls = match (&config.tls_cert, &config.tls_key) {
        (Some(cert), Some(key)) => Some(crate::tls::acceptor(cert, key)?),
        (None, None) => None,
        _ => {
            return Err(wiring::StartupError(
                "--tls-cert and --tls-key go together".into(),
            ));
        }
    };
    let broker = wiring::build_broker(&config).await?;
    let state = wiring::api_state(&config, broker)?;
    if let Some(every) = config.sync_interval {
        spawn_sync(state.broker.clone(), every, config.sync_options());
    }
    spawn_renewal(state.broker.clone(), config.renew_interval);
    let app = router(state, &Route::ALL);
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|e| wiring::StartupError(format!("cannot listen on {}: {e}", config.listen)))?;
    let address = listener
        .local_addr()
        .map_err(|e| wiring::StartupError(e.to_string()))?;
    tracing::info!(%address, store = %config.store, tls = tls.is_some(), "cloudify-osb serving the OSB API");
    match tls {
        Some(acceptor) => crate::tls::serve(listener, acceptor, app, shutdown_signal()).await?,
        None => axum::serve(listener, app)
            .with_graceful_shutdown(shutdown_signal())
            .await
            .map_err(|e| wiring::StartupError(format!("server failed: {e}")))?,
    }
    tracing::info!("cloudify-osb stopped");
    Ok(())
}

/// `cloudify-osb sync`: one catalog sync run; prints its report. Fails (exit 1) when
/// Cloudify is not configured or cannot be listed; the catalog is then left as it was.
pub async fn sync(config: Config) -> Result<(), wiring::StartupError> {
    telemetry::init(config.log_format);
    let store = wiring::open_store(&config.store).await?;
    let Some(orchestrator) = wiring::cloudify_orchestrator(&config)? else {
        return Err(wiring::StartupError(
            "--cloudify-url (CLOUDIFY_URL) is required for sync".into(),
        ));
    };
    let report = sync_catalog_with(&orchestrator, store.as_ref(), &config.sync_options())
        .await
        .map_err(|e| wiring::StartupError(format!("catalog sync failed: {e}")))?;
    println!("catalog sync: {report}");
    Ok(())
}

/// `serve --sync-interval`: the catalog sync in the background, first at start-up, then
/// every `every`. A failed run is logged and the last good catalog stays served.
fn spawn_sync(broker: Arc<Broker>, every: Duration, options: SyncOptions) {
    let Some(orchestrator) = broker.orchestrator().cloned() else {
        tracing::warn!("--sync-interval is set but Cloudify is not configured; no catalog sync");
        return;
    };
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            match sync_catalog_with(orchestrator.as_ref(), broker.store().as_ref(), &options).await
            {
                Ok(report) => tracing::info!(%report, "scheduled catalog sync done"),
                Err(e) => tracing::error!(
                    error = %e,
                    "scheduled catalog sync failed; the last good catalog stays served"
                ),
            }
        }
    });
}

/// `serve --renew-interval`: the lease renewal pass in the background, every `every`
/// (renewing what falls due before the next pass). Failures are logged; leases left over
/// are retried on the next pass.
fn spawn_renewal(broker: Arc<Broker>, every: Duration) {
    if broker.binders().is_empty() {
        return;
    }
    let horizon = time::Duration::try_from(every).unwrap_or(time::Duration::minutes(5));
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let now = time::OffsetDateTime::now_utc();
            match renew_due(broker.store().as_ref(), broker.binders(), now, horizon).await {
                Ok(report) => tracing::info!(%report, "lease renewal pass done"),
                Err(e) => tracing::error!(error = %e, "lease renewal pass could not list bindings"),
            }
        }
    });
}

async fn shutdown_signal() {
    let interrupt = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for SIGINT");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = interrupt => {},
        _ = terminate => {},
    }
    tracing::info!("shutting down");
}
