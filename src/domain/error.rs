//! Errors of the ports and of the broker (DESIGN.md §7). Adapters map their SDK, HTTP and
//! database errors into the port errors; `http::error` maps [`BrokerError`] to OSB answers.
//! Must not import adapter crates.

use std::fmt;

/// A backend the broker depends on; named in 5xx/503 descriptions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dependency {
    Store,
    Cloudify,
    Vault,
    Binder,
}

impl fmt::Display for Dependency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Store => "store",
            Self::Cloudify => "Cloudify",
            Self::Vault => "Vault",
            Self::Binder => "binder",
        })
    }
}

/// Errors of the [`Store`](super::ports::Store) port.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A conditional create found the item already there.
    #[error("item already exists")]
    AlreadyExists,
    /// A version-checked write found another version (or no item): someone else won.
    #[error("item was modified or removed concurrently")]
    Conflict,
    /// The backend could not be reached or failed; the message is for logs only.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// A stored item could not be decoded.
    #[error("stored item is corrupt: {0}")]
    Corrupt(String),
}

/// Errors of the [`Orchestrator`](super::ports::Orchestrator) port.
#[derive(Debug, thiserror::Error)]
pub enum OrchestratorError {
    /// The deployment, execution or blueprint does not exist.
    #[error("not found: {0}")]
    NotFound(String),
    /// A deployment with this ID already exists.
    #[error("already exists: {0}")]
    AlreadyExists(String),
    /// The orchestrator refused the inputs (4.x/5.x validate them when the deployment is
    /// created). The message is the orchestrator's, meant for the platform's user.
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// The deployment's environment is still being created; try again later.
    #[error("deployment environment not ready yet")]
    EnvironmentPending,
    /// Creating the deployment's environment failed; the message is the orchestrator's.
    #[error("deployment environment creation failed: {0}")]
    EnvironmentFailed(String),
    /// Another execution runs on the deployment.
    #[error("another execution is running on the deployment")]
    Busy,
    /// The deployment still has live nodes or running executions and cannot be deleted yet.
    #[error("deployment cannot be deleted yet: {0}")]
    DependentsExist(String),
    /// Any other refusal (4xx) with the orchestrator's message.
    #[error("rejected: {0}")]
    Rejected(String),
    /// Not configured, unreachable, timing out, 5xx or authentication failure: for logs.
    #[error("orchestrator unavailable: {0}")]
    Unavailable(String),
}

/// Errors of the [`Binder`](super::ports::Binder) port.
#[derive(Debug, thiserror::Error)]
pub enum BinderError {
    /// The service has no usable binder configuration (message for the platform's user).
    #[error("binder configuration error: {0}")]
    Config(String),
    /// The binder config references a deployment output the deployment does not have.
    #[error("deployment output {0:?} is missing")]
    MissingOutput(String),
    /// The secrets backend refused the request (message safe for the platform's user).
    #[error("rejected by the secrets backend: {0}")]
    Rejected(String),
    /// The secrets backend could not be reached, is sealed or failed: for logs.
    #[error("secrets backend unavailable: {0}")]
    Unavailable(String),
}
