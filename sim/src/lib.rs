//! `cloudify-sim`: a stateful Cloudify manager simulator (REST API v3.1, versions 4.3 – 7.x)
//! for testing cloudify-osb's Cloudify adapter. Written from Cloudify's API
//! (`reference/cloudify-api.md`); it must not depend on the `cloudify-osb` crate.
//!
//! Modules: `version` (behaviour switches), `fixtures` (blueprint files, inputs, outputs),
//! `state` (model, execution clock, renderings), `api` (`/api/...`), `control` (`/_sim/...`),
//! `net` (listener whose connections can be dropped).

pub mod api;
pub mod control;
pub mod fixtures;
pub mod net;
pub mod state;
pub mod version;

use std::net::SocketAddr;
use std::sync::Arc;

pub use state::{Config, Sim};
pub use version::Version;

/// The full router: `/api/...` and `/_sim/...`.
pub fn app(sim: Arc<Sim>) -> axum::Router {
    control::router(sim.clone()).merge(api::router(sim))
}

/// Serves `sim` on an already bound listener until the future is dropped.
pub async fn serve(listener: tokio::net::TcpListener, sim: Arc<Sim>) -> std::io::Result<()> {
    let app = app(sim).into_make_service_with_connect_info::<net::ConnHandle>();
    axum::serve(net::KillableListener::new(listener), app).await
}

/// Binds `addr`, starts serving in the background and returns the bound address and the
/// simulator (for tests and embedding).
pub async fn spawn(addr: SocketAddr, cfg: Config) -> std::io::Result<(SocketAddr, Arc<Sim>)> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    let sim = Arc::new(Sim::new(cfg));
    let s = sim.clone();
    tokio::spawn(async move {
        if let Err(e) = serve(listener, s).await {
            eprintln!("cloudify-sim: server error: {e}");
        }
    });
    Ok((local, sim))
}
