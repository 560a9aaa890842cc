//! Pure translations from Cloudify's wire answers to domain types: error bodies and
//! `error_code`s to [`OrchestratorError`] (cloudify-api.md §4), execution statuses to
//! [`ExecutionState`] (§7.3), manager versions to feature switches (§8), and the sanitising of
//! messages that reach the platform's user. No I/O here, so all of it is unit-tested.

use serde::Deserialize;

use crate::domain::error::OrchestratorError;
use crate::domain::ports::ExecutionState;

/// Longest message (in characters) the adapter passes on to the platform.
pub(super) const MAX_MESSAGE_CHARS: usize = 500;

/// Which call an error answer belongs to: the same `error_code` means different things.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Call {
    /// `PUT /deployments/{id}`: any 400 means "refused, nothing created".
    CreateDeployment,
    /// `POST /executions`.
    StartWorkflow,
    /// Everything else.
    Other,
}

/// An error answer from the manager, parsed as far as it goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Fault {
    pub status: u16,
    /// `error_code`, when the body was Cloudify's JSON error shape.
    pub code: Option<String>,
    /// `message` (or FastAPI's `detail`), raw; empty when absent.
    pub message: String,
    /// Whether the body was JSON at all (proxies answer HTML).
    pub json: bool,
}

#[derive(Deserialize)]
struct ErrorBody {
    #[serde(default)]
    message: Option<serde_json::Value>,
    #[serde(default)]
    detail: Option<serde_json::Value>,
    #[serde(default)]
    error_code: Option<String>,
}

fn text_of(v: serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s,
        serde_json::Value::Null => String::new(),
        other => other.to_string(),
    }
}

impl Fault {
    /// Parses an error answer: `{"message", "error_code", "server_traceback"}`, or `detail`
    /// instead of `message`, or anything else (non-JSON).
    pub fn parse(status: u16, body: &[u8]) -> Self {
        match serde_json::from_slice::<ErrorBody>(body) {
            Ok(b) => Self {
                status,
                code: b.error_code.filter(|c| !c.is_empty()),
                message: b.message.or(b.detail).map(text_of).unwrap_or_default(),
                json: true,
            },
            Err(_) => Self {
                status,
                code: None,
                message: String::new(),
                json: false,
            },
        }
    }

    /// For logs: status, code and a capped message (never the traceback).
    pub fn describe(&self) -> String {
        let code = self.code.as_deref().unwrap_or(if self.json {
            "no error_code"
        } else {
            "non-JSON body"
        });
        format!(
            "HTTP {} ({code}): {}",
            self.status,
            sanitize_message(&self.message)
        )
    }

    /// The message for the platform's user: first meaningful line, sanitised, capped; a
    /// generic text when Cloudify sent none.
    pub fn user_message(&self) -> String {
        let m = sanitize_message(&self.message);
        if m.is_empty() {
            format!("Cloudify refused the request (HTTP {})", self.status)
        } else {
            m
        }
    }

    /// Maps the answer to the port's error.
    ///
    /// 401/403, 5xx, maintenance mode and non-JSON bodies (proxies) are `Unavailable` (for logs
    /// only; a non-JSON 404 comes from a proxy or a wrong URL, not from Cloudify, so it must
    /// not read as "deployment gone"). In [`Call::CreateDeployment`] every other refusal means
    /// nothing was created and the platform's user can act on the message: `InvalidInput`.
    pub fn to_error(&self, call: Call) -> OrchestratorError {
        use OrchestratorError as E;
        if !self.json || self.status == 401 || self.status == 403 || self.status >= 500 {
            return E::Unavailable(self.describe());
        }
        let code = self.code.as_deref().unwrap_or("");
        match code {
            "unauthorized_error"
            | "forbidden_error"
            | "maintenance_mode_active"
            | "entering_maintenance_mode"
            | "internal_server_error" => E::Unavailable(self.describe()),
            "not_found_error" => E::NotFound(self.user_message()),
            "conflict_error" => E::AlreadyExists(self.user_message()),
            "missing_required_deployment_input_error"
            | "unknown_deployment_input_error"
            | "bad_parameters_error"
            | "unknown_deployment_secret_error" => E::InvalidInput(self.user_message()),
            "deployment_environment_creation_pending_error"
            | "deployment_environment_creation_in_progress_error" => E::EnvironmentPending,
            // On PUT this means the blueprint is not deployable (or a 6.x blocking create
            // failed): refused, nothing left behind.
            "deployment_creation_error" if call == Call::CreateDeployment => {
                E::InvalidInput(self.user_message())
            }
            "deployment_creation_error" => E::EnvironmentFailed(self.user_message()),
            "existing_running_execution_error" => E::Busy,
            "dependent_exists_error" => E::DependentsExist(self.user_message()),
            _ if self.status == 404 && code.is_empty() => E::NotFound(self.user_message()),
            _ if self.status == 409 && code.is_empty() => E::AlreadyExists(self.user_message()),
            _ if call == Call::CreateDeployment && self.status == 400 => {
                E::InvalidInput(self.user_message())
            }
            _ => E::Rejected(self.user_message()),
        }
    }
}

/// First meaningful line of a Cloudify message, free of control characters, whitespace
/// collapsed, at most [`MAX_MESSAGE_CHARS`] characters. A Python traceback contributes its
/// last line (the exception), not `Traceback (most recent call last):`.
pub(super) fn sanitize_message(raw: &str) -> String {
    let lines: Vec<&str> = raw
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let Some(first) = lines.first() else {
        return String::new();
    };
    let chosen = if first.starts_with("Traceback (most recent call last)") {
        lines
            .iter()
            .rev()
            .find(|l| !l.starts_with("File \"") && !l.starts_with("Traceback"))
            .copied()
            .unwrap_or(first)
    } else {
        first
    };
    let mut out = String::with_capacity(chosen.len().min(MAX_MESSAGE_CHARS + 1));
    let mut last_space = false;
    let mut count = 0;
    for c in chosen.chars() {
        let c = if c.is_whitespace() { ' ' } else { c };
        if c.is_control() {
            continue;
        }
        if c == ' ' && last_space {
            continue;
        }
        last_space = c == ' ';
        if count == MAX_MESSAGE_CHARS {
            out.truncate(out.trim_end().len());
            out.push('…');
            return out;
        }
        out.push(c);
        count += 1;
    }
    out.trim_end().to_owned()
}

/// Maps an execution status (cloudify-api.md §7.3). Unknown statuses stay in progress.
pub(super) fn execution_state(status: &str, error: Option<&str>) -> ExecutionState {
    match status {
        "terminated" => ExecutionState::Succeeded,
        "failed" => {
            let msg = error.map(sanitize_message).unwrap_or_default();
            ExecutionState::Failed(if msg.is_empty() {
                "the Cloudify execution failed without an error message".to_owned()
            } else {
                msg
            })
        }
        "cancelled" => ExecutionState::Cancelled,
        other => ExecutionState::InProgress(other.to_owned()),
    }
}

/// Whether an execution status is final (`terminated`, `failed`, `cancelled`).
pub(super) fn is_terminal(status: &str) -> bool {
    matches!(status, "terminated" | "failed" | "cancelled")
}

/// The manager's version, as far as the feature switches need it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct ManagerVersion {
    pub major: u32,
    pub minor: u32,
    pub patch: u32,
}

impl ManagerVersion {
    /// What an unparsable version is taken for: the newest behaviour.
    pub const NEWEST: Self = Self::new(7, 0, 0);

    pub const fn new(major: u32, minor: u32, patch: u32) -> Self {
        Self {
            major,
            minor,
            patch,
        }
    }

    /// Parses `7.0.4`, `6.4.0-ga`, `5.1.2.dev1`, `4.3`: leading digits of up to three
    /// dot-separated parts; `None` without a major number.
    pub fn parse(s: &str) -> Option<Self> {
        let mut parts = s.trim().trim_start_matches(['v', 'V']).split('.');
        let num = |p: Option<&str>| -> Option<u32> {
            let p = p?;
            let digits: String = p.chars().take_while(char::is_ascii_digit).collect();
            digits.parse().ok()
        };
        let major = num(parts.next())?;
        let minor = num(parts.next()).unwrap_or(0);
        let patch = num(parts.next()).unwrap_or(0);
        Some(Self::new(major, minor, patch))
    }

    /// Deployment updates with an existing blueprint and new inputs (4.3+: every version
    /// this adapter supports).
    pub fn deployment_updates(self) -> bool {
        self >= Self::new(4, 3, 0)
    }

    /// Clients of 5.0+ start an update with `POST …/update/initiate`; older ones with `PUT`.
    pub fn update_initiate_is_post(self) -> bool {
        self >= Self::new(5, 0, 0)
    }

    /// Deployment labels on PUT (sent by the official client from 5.2).
    pub fn deployment_labels(self) -> bool {
        self >= Self::new(5, 2, 0)
    }

    /// Blueprint `state` (and the `state=uploaded` filter).
    pub fn blueprint_state(self) -> bool {
        self >= Self::new(5, 2, 0)
    }

    /// Blueprint `labels`.
    pub fn blueprint_labels(self) -> bool {
        self >= Self::new(6, 0, 0)
    }

    /// `delete_logs` on DELETE deployment.
    pub fn delete_logs(self) -> bool {
        self >= Self::new(5, 0, 0)
    }
}

impl std::fmt::Display for ManagerVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fault(status: u16, code: &str, message: &str) -> Fault {
        let body = json!({"message": message, "error_code": code, "server_traceback": null});
        Fault::parse(status, body.to_string().as_bytes())
    }

    #[test]
    fn every_documented_error_code_maps_to_a_port_error() {
        use OrchestratorError as E;
        type Check = fn(&E) -> bool;
        let cases: Vec<(u16, &str, Check)> = vec![
            (404, "not_found_error", |e| matches!(e, E::NotFound(_))),
            (409, "conflict_error", |e| matches!(e, E::AlreadyExists(_))),
            (400, "bad_parameters_error", |e| {
                matches!(e, E::InvalidInput(_))
            }),
            (400, "missing_required_deployment_input_error", |e| {
                matches!(e, E::InvalidInput(_))
            }),
            (400, "unknown_deployment_input_error", |e| {
                matches!(e, E::InvalidInput(_))
            }),
            (400, "unknown_deployment_secret_error", |e| {
                matches!(e, E::InvalidInput(_))
            }),
            (400, "deployment_environment_creation_pending_error", |e| {
                matches!(e, E::EnvironmentPending)
            }),
            (
                400,
                "deployment_environment_creation_in_progress_error",
                |e| matches!(e, E::EnvironmentPending),
            ),
            (400, "deployment_creation_error", |e| {
                matches!(e, E::EnvironmentFailed(_))
            }),
            (400, "existing_running_execution_error", |e| {
                matches!(e, E::Busy)
            }),
            (400, "dependent_exists_error", |e| {
                matches!(e, E::DependentsExist(_))
            }),
            (400, "nonexistent_workflow_error", |e| {
                matches!(e, E::Rejected(_))
            }),
            (400, "deployment_outputs_evaluation_error", |e| {
                matches!(e, E::Rejected(_))
            }),
            (400, "deployment_plugin_not_found", |e| {
                matches!(e, E::Rejected(_))
            }),
            (400, "no_such_include_field_error", |e| {
                matches!(e, E::Rejected(_))
            }),
            (401, "unauthorized_error", |e| {
                matches!(e, E::Unavailable(_))
            }),
            (403, "forbidden_error", |e| matches!(e, E::Unavailable(_))),
            (503, "maintenance_mode_active", |e| {
                matches!(e, E::Unavailable(_))
            }),
            (503, "entering_maintenance_mode", |e| {
                matches!(e, E::Unavailable(_))
            }),
            (500, "internal_server_error", |e| {
                matches!(e, E::Unavailable(_))
            }),
        ];
        for (status, code, check) in cases {
            let e = fault(status, code, "some message").to_error(Call::Other);
            assert!(check(&e), "{status} {code} mapped to {e:?}");
        }
    }

    #[test]
    fn input_errors_carry_cloudifys_message() {
        let e = fault(
            400,
            "missing_required_deployment_input_error",
            "Required inputs ['db_name'] were not specified - expected inputs ['db_name']",
        )
        .to_error(Call::CreateDeployment);
        match e {
            OrchestratorError::InvalidInput(m) => assert!(m.contains("db_name"), "{m}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn any_refusal_of_a_deployment_create_is_invalid_input() {
        for code in [
            "deployment_creation_error",
            "deployment_plugin_not_found",
            "something_new_error",
        ] {
            let e =
                fault(400, code, "Blueprint bp is not uploaded").to_error(Call::CreateDeployment);
            assert!(
                matches!(e, OrchestratorError::InvalidInput(_)),
                "{code}: {e:?}"
            );
        }
        // but a conflict on create is still AlreadyExists, and auth is still Unavailable
        assert!(matches!(
            fault(409, "conflict_error", "exists").to_error(Call::CreateDeployment),
            OrchestratorError::AlreadyExists(_)
        ));
        assert!(matches!(
            fault(401, "unauthorized_error", "no").to_error(Call::CreateDeployment),
            OrchestratorError::Unavailable(_)
        ));
    }

    #[test]
    fn non_json_answers_are_unavailable_even_when_they_say_404() {
        for status in [404, 409, 400, 502, 504] {
            let f = Fault::parse(status, b"<html><body>Bad Gateway</body></html>");
            assert!(!f.json);
            let e = f.to_error(Call::Other);
            assert!(
                matches!(e, OrchestratorError::Unavailable(_)),
                "{status}: {e:?}"
            );
            assert!(e.to_string().contains("non-JSON"), "{e}");
        }
    }

    #[test]
    fn fastapi_detail_is_read_like_message() {
        let f = Fault::parse(
            404,
            br#"{"detail": "Not Found", "error_code": "not_found_error"}"#,
        );
        assert_eq!(f.message, "Not Found");
        assert!(matches!(
            f.to_error(Call::Other),
            OrchestratorError::NotFound(_)
        ));
        let bare = Fault::parse(404, br#"{"detail": "Not Found"}"#);
        assert!(matches!(
            bare.to_error(Call::Other),
            OrchestratorError::NotFound(_)
        ));
    }

    #[test]
    fn unavailable_detail_never_carries_the_server_traceback() {
        let body = json!({
            "message": "Internal error occurred in manager REST server - boom",
            "error_code": "internal_server_error",
            "server_traceback": "Traceback (most recent call last):\n  File \"x.py\"\nSECRET"
        });
        let e = Fault::parse(500, body.to_string().as_bytes()).to_error(Call::Other);
        let shown = e.to_string();
        assert!(
            shown.contains("HTTP 500") && shown.contains("boom"),
            "{shown}"
        );
        assert!(!shown.contains("SECRET"), "{shown}");
    }

    #[test]
    fn messages_are_first_line_sanitised_and_capped() {
        assert_eq!(
            sanitize_message("\n  Task failed 'create' -> boom \u{7}\nmore\nlines"),
            "Task failed 'create' -> boom"
        );
        assert_eq!(sanitize_message("a\t\tb    c"), "a b c");
        assert_eq!(sanitize_message("   \n\n"), "");
        let long = "x".repeat(2000);
        let capped = sanitize_message(&long);
        assert_eq!(capped.chars().count(), MAX_MESSAGE_CHARS + 1);
        assert!(capped.ends_with('…'));
        let multibyte = "é".repeat(600);
        assert!(sanitize_message(&multibyte).ends_with('…'));
    }

    #[test]
    fn a_traceback_contributes_its_exception_line() {
        let tb = "Traceback (most recent call last):\n  File \"/opt/x.py\", line 3, in f\n    raise ValueError('bad')\nValueError: input port must be an integer\n";
        assert_eq!(
            sanitize_message(tb),
            "ValueError: input port must be an integer"
        );
    }

    #[test]
    fn execution_statuses_map_per_the_reference_table() {
        assert_eq!(
            execution_state("terminated", None),
            ExecutionState::Succeeded
        );
        assert_eq!(
            execution_state("failed", Some("RuntimeError: boom\nTraceback…")),
            ExecutionState::Failed("RuntimeError: boom".into())
        );
        assert!(
            matches!(execution_state("failed", None), ExecutionState::Failed(m) if !m.is_empty())
        );
        assert_eq!(
            execution_state("cancelled", None),
            ExecutionState::Cancelled
        );
        for s in [
            "pending",
            "started",
            "queued",
            "scheduled",
            "cancelling",
            "force_cancelling",
            "kill_cancelling",
            "waiting_for_godot",
        ] {
            assert_eq!(
                execution_state(s, None),
                ExecutionState::InProgress(s.into())
            );
            assert!(!is_terminal(s));
        }
        assert!(is_terminal("terminated") && is_terminal("failed") && is_terminal("cancelled"));
    }

    #[test]
    fn versions_parse_and_switch_features() {
        let v = |s| ManagerVersion::parse(s).unwrap();
        assert_eq!(v("7.0.4"), ManagerVersion::new(7, 0, 4));
        assert_eq!(v("6.4.0-ga"), ManagerVersion::new(6, 4, 0));
        assert_eq!(v("5.1.2.dev1"), ManagerVersion::new(5, 1, 2));
        assert_eq!(v("4.3"), ManagerVersion::new(4, 3, 0));
        assert_eq!(ManagerVersion::parse("community"), None);

        assert!(!v("4.3").deployment_labels() && !v("5.1").deployment_labels());
        assert!(v("5.2").deployment_labels() && v("7.0").deployment_labels());
        assert!(!v("5.1.2").blueprint_state() && v("5.2.0").blueprint_state());
        assert!(!v("5.2").blueprint_labels() && v("6.0").blueprint_labels());
        assert!(!v("4.6").delete_logs() && v("5.0").delete_logs());
    }
}
