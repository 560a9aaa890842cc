//! Logging through `tracing`: human-readable locally, JSON in Lambda (`--log-format`).
//! Filtering by `RUST_LOG` (default `info`). Nothing logs credentials: secrets are
//! `SecretString` and `Credentials` redacts its values. Must not import adapter crates.

use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// Installs the global subscriber; a second call does nothing.
pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Human => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}
