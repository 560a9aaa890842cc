use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use cloudify_sim::fixtures::{Fixture, load_dir};
use cloudify_sim::{Config, Sim, Version};

/// Cloudify manager simulator (REST API v3.1) for testing cloudify-osb.
#[derive(Parser, Debug)]
#[command(name = "cloudify-sim", version)]
struct Args {
    /// Address to listen on; port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Emulated manager version (4.3, 5.1, 6.4, 7.0, or any 4.3–7.x MAJOR.MINOR[.PATCH]).
    #[arg(long, default_value = "7.0")]
    manager_version: Version,
    /// Folder of blueprint fixture files (*.json); without it one built-in sample blueprint.
    #[arg(long)]
    fixtures: Option<PathBuf>,
    /// Seconds an execution takes from pending to its end.
    #[arg(long, default_value_t = 2.0)]
    execution_seconds: f64,
    /// Accepted user name.
    #[arg(long, default_value = "admin")]
    username: String,
    /// Accepted password.
    #[arg(long, default_value = "admin")]
    password: String,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    if !(args.execution_seconds.is_finite() && args.execution_seconds >= 0.0) {
        return Err("--execution-seconds must be a non-negative number".into());
    }
    let fixtures = match &args.fixtures {
        Some(dir) => load_dir(dir)?,
        None => vec![Fixture::builtin_sample()],
    };
    let cfg = Config {
        version: args.manager_version,
        username: args.username,
        password: args.password,
        execution: Duration::from_secs_f64(args.execution_seconds),
        fixtures,
    };
    let listener = tokio::net::TcpListener::bind(args.listen).await?;
    let addr = listener.local_addr()?;
    let sim = Arc::new(Sim::new(cfg));
    println!("cloudify-sim listening on http://{addr}");
    std::io::stdout().flush()?;
    tokio::select! {
        r = cloudify_sim::serve(listener, sim) => r?,
        _ = tokio::signal::ctrl_c() => {}
    }
    Ok(())
}
