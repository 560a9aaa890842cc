//! cloudify-osb: an Open Service Broker (OSB API v2.17) for the Cloudify orchestrator.
//!
//! Map of the modules (DESIGN.md §3):
//! - [`domain`]: ids, catalog, instance, binding, operation state machines, the broker and
//!   the ports `Store`, `Orchestrator`, `Binder`. No adapter, HTTP or AWS types.
//! - `adapters`: implementations of the ports (memory, sqlite, dynamodb, cloudify, vault).
//! - `http`: the one axum router that owns the OSB protocol.
//! - `config`, `telemetry`: typed configuration and logging; `deadline`: the deadline of the
//!   OSB request being served, which adapters' calls must end within.
//! - `wiring`: builds the broker and its adapters from the configuration.
//! - `cli`: the `cloudify-osb` command line (`serve`, …); `store_admin`: `store create-table`.
//! - `lambda` (feature `aws`): the Lambda entry points, one function per route plus the
//!   scheduled sync.

pub mod adapters;
pub mod admin;
pub mod cli;
pub mod config;
pub mod deadline;
pub mod domain;
pub mod http;
#[cfg(feature = "aws")]
pub mod lambda;
pub mod ops;
pub mod store_admin;
pub mod telemetry;
pub mod tls;
pub mod wiring;
