//! The `cloudify-osb` command line: `serve` (all routes, graceful shutdown on SIGINT and
//! SIGTERM). Later commands (`sync`, `service …`, `instance …`) join the [`Command`] enum.
//! Must not import adapter crates (it builds through `wiring`).

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::Config;
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
}

/// Parses the command line and runs it.
pub async fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(config) => serve(*config).await,
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
    if config.tls_cert.is_some() || config.tls_key.is_some() {
        return Err(wiring::StartupError(
            "--tls-cert/--tls-key are not supported by this build yet; terminate TLS in front \
             of the broker"
                .into(),
        ));
    }
    let broker = wiring::build_broker(&config).await?;
    let state = wiring::api_state(&config, broker)?;
    let app = router(state, &Route::ALL);
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|e| wiring::StartupError(format!("cannot listen on {}: {e}", config.listen)))?;
    let address = listener
        .local_addr()
        .map_err(|e| wiring::StartupError(e.to_string()))?;
    tracing::info!(%address, store = %config.store, "cloudify-osb serving the OSB API");
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown_signal())
        .await
        .map_err(|e| wiring::StartupError(format!("server failed: {e}")))?;
    tracing::info!("cloudify-osb stopped");
    Ok(())
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
