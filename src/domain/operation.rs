//! Asynchronous operations on instances (provision, update, deprovision) and their state
//! machine phases, as `last_operation` reports them (spec "Polling Last Operation").
//! Must not import adapter crates.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use time::OffsetDateTime;

use super::ids::{OperationId, PlanId};

/// The OSB `state` of an operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum OperationState {
    #[serde(rename = "in progress")]
    InProgress,
    #[serde(rename = "succeeded")]
    Succeeded,
    #[serde(rename = "failed")]
    Failed,
}

impl OperationState {
    /// The wire string (`in progress`, `succeeded`, `failed`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InProgress => "in progress",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
        }
    }
}

/// What an operation does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OperationKind {
    Provision,
    Update,
    Deprovision,
}

impl OperationKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Provision => "provision",
            Self::Update => "update",
            Self::Deprovision => "deprovision",
        }
    }
}

/// Where an operation stands in the orchestrator's workflow sequence.
///
/// Provision: `CreateEnvironment` → `Install` → done. Update: `Update` → done.
/// Deprovision: (`Cancel`) → `Uninstall` → `Delete` → done (deployment gone).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// The deployment's environment is still being created; `install` not started yet.
    CreateEnvironment,
    Install,
    Update,
    /// A still-running execution is being cancelled before uninstalling.
    Cancel,
    Uninstall,
    /// Delete requested; waiting for the deployment to disappear.
    Delete,
    /// Terminal: the operation ended (see its state).
    Done,
}

/// The instance's plan, parameters and maintenance version after a successful update.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UpdateTarget {
    pub plan_id: PlanId,
    pub parameters: Map<String, Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maintenance_info_version: Option<String>,
}

/// One asynchronous operation, stored with its instance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Operation {
    pub id: OperationId,
    pub kind: OperationKind,
    pub phase: Phase,
    pub state: OperationState,
    /// The orchestrator execution the current phase waits on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub execution_id: Option<String>,
    /// What `last_operation` reports as `description` (e.g. the orchestrator's error text).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Hash of the request that started it (an identical resend gets the same operation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_hash: Option<String>,
    /// What an update changes once it succeeds (plan, parameters, maintenance version).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<UpdateTarget>,
    #[serde(with = "time::serde::rfc3339")]
    pub started_at: OffsetDateTime,
    #[serde(
        default,
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub finished_at: Option<OffsetDateTime>,
}

impl Operation {
    /// A new operation in progress at its first phase.
    pub fn start(kind: OperationKind, phase: Phase, request_hash: Option<String>) -> Self {
        Self {
            id: OperationId::generate(kind.as_str()),
            kind,
            phase,
            state: OperationState::InProgress,
            execution_id: None,
            description: None,
            request_hash,
            target: None,
            started_at: OffsetDateTime::now_utc(),
            finished_at: None,
        }
    }

    /// Moves to another in-progress phase waiting on an execution.
    pub fn advance(&mut self, phase: Phase, execution_id: Option<String>) {
        self.phase = phase;
        self.execution_id = execution_id;
    }

    /// Ends the operation successfully.
    pub fn succeed(&mut self) {
        self.finish(OperationState::Succeeded, None);
    }

    /// Ends the operation as failed with a description for the platform's user.
    pub fn fail(&mut self, description: impl Into<String>) {
        self.finish(OperationState::Failed, Some(description.into()));
    }

    fn finish(&mut self, state: OperationState, description: Option<String>) {
        self.phase = Phase::Done;
        self.state = state;
        self.execution_id = None;
        if description.is_some() {
            self.description = description;
        }
        self.finished_at = Some(OffsetDateTime::now_utc());
    }

    /// Whether the operation still runs.
    pub fn in_progress(&self) -> bool {
        self.state == OperationState::InProgress
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_operation_is_done_with_its_description() {
        let mut op = Operation::start(OperationKind::Provision, Phase::CreateEnvironment, None);
        assert!(op.in_progress());
        assert!(op.id.as_str().starts_with("provision-"));
        op.advance(Phase::Install, Some("e1".into()));
        op.fail("install failed: boom");
        assert_eq!(op.state, OperationState::Failed);
        assert_eq!(op.phase, Phase::Done);
        assert_eq!(op.execution_id, None);
        assert_eq!(op.description.as_deref(), Some("install failed: boom"));
    }

    #[test]
    fn states_use_the_spec_strings() {
        assert_eq!(
            serde_json::to_string(&OperationState::InProgress).unwrap(),
            "\"in progress\""
        );
        assert_eq!(OperationState::Succeeded.as_str(), "succeeded");
    }
}
