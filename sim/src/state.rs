//! The simulated manager's state: blueprints, deployments, executions, tokens and injected
//! faults, with the execution clock (`tick`) and the JSON renderings per emulated version.
//!
//! No HTTP types here; handlers in `api` and `control` lock the state, call `tick`, act and
//! render.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value, json};

use crate::fixtures::{Fixture, evaluate};
use crate::version::Version;

/// Start-up configuration.
#[derive(Clone, Debug)]
pub struct Config {
    /// Emulated manager version.
    pub version: Version,
    /// Accepted user name.
    pub username: String,
    /// Accepted password.
    pub password: String,
    /// Time from `pending` to the end of an execution.
    pub execution: Duration,
    /// Blueprints loaded at start and after a reset.
    pub fixtures: Vec<Fixture>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            version: Version(7, 0, 0),
            username: "admin".into(),
            password: "admin".into(),
            execution: Duration::from_secs(2),
            fixtures: vec![Fixture::builtin_sample()],
        }
    }
}

/// The only tenant.
pub const TENANT: &str = "default_tenant";

/// Execution status names (`reference/cloudify-api.md` §7.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// Created, not yet running.
    Pending,
    /// Waiting for another execution on the deployment (4.5+).
    Queued,
    /// Running.
    Started,
    /// `cancel` requested.
    Cancelling,
    /// `force-cancel` requested.
    ForceCancelling,
    /// `kill` requested (4.4+).
    KillCancelling,
    /// Succeeded.
    Terminated,
    /// Failed with `error`.
    Failed,
    /// Cancelled.
    Cancelled,
}

impl Status {
    /// Wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Queued => "queued",
            Status::Started => "started",
            Status::Cancelling => "cancelling",
            Status::ForceCancelling => "force_cancelling",
            Status::KillCancelling => "kill_cancelling",
            Status::Terminated => "terminated",
            Status::Failed => "failed",
            Status::Cancelled => "cancelled",
        }
    }

    /// Ended (terminated, failed or cancelled).
    pub fn is_ended(self) -> bool {
        matches!(
            self,
            Status::Terminated | Status::Failed | Status::Cancelled
        )
    }

    /// Occupies the deployment (running, not queued, not ended).
    pub fn is_running(self) -> bool {
        !self.is_ended() && self != Status::Queued
    }

    fn display(self) -> &'static str {
        match self {
            Status::Terminated => "completed",
            other => other.as_str(),
        }
    }
}

/// A blueprint in the manager.
#[derive(Clone, Debug)]
pub struct Blueprint {
    /// Its fixture.
    pub fx: Arc<Fixture>,
    /// Upload time.
    pub created_at: String,
    /// Its rendering without `plan`, built once (lists filter and sort on it).
    pub light: Arc<Value>,
    /// Its `plan` serialized once (lists splice it into their JSON text).
    pub plan_json: Arc<str>,
}

/// A deployment.
#[derive(Clone, Debug)]
pub struct Deployment {
    /// ID.
    pub id: String,
    /// Blueprint snapshot (deployments outlive a forced blueprint removal).
    pub blueprint: Arc<Fixture>,
    /// Inputs as given in the PUT.
    pub given_inputs: Map<String, Value>,
    /// Given inputs over defaults.
    pub inputs: Map<String, Value>,
    /// Labels.
    pub labels: Vec<(String, String)>,
    /// `display_name` (6.0+).
    pub display_name: String,
    /// `visibility`.
    pub visibility: String,
    /// `site_name`.
    pub site_name: Option<String>,
    /// `runtime_only_evaluation`.
    pub runtime_only_evaluation: bool,
    /// Creation time.
    pub created_at: String,
    /// Last change.
    pub updated_at: String,
    /// ID of its `create_deployment_environment` execution.
    pub create_execution: String,
    /// ID of its latest execution.
    pub latest_execution: String,
    /// Node instances are live (`install` terminated, no `uninstall` since).
    pub installed: bool,
}

/// An execution.
#[derive(Clone, Debug)]
pub struct Execution {
    /// UUID.
    pub id: String,
    /// Workflow name.
    pub workflow_id: String,
    /// Deployment ID.
    pub deployment_id: String,
    /// Blueprint ID.
    pub blueprint_id: String,
    /// Parameters as given.
    pub parameters: Value,
    /// Current status.
    pub status: Status,
    /// Error text (empty unless failed).
    pub error: String,
    /// Creation time.
    pub created_at: String,
    /// When it left `pending`.
    pub started_at: Option<String>,
    /// When it ended.
    pub ended_at: Option<String>,
    /// `dry_run` flag.
    pub is_dry_run: bool,
    /// When the current status began (simulator clock).
    pub since: Instant,
    /// Fail with this message instead of terminating.
    pub fail_with: Option<String>,
}

/// A scheduled workflow failure.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct FailRule {
    /// Workflow ID to fail.
    pub workflow_id: String,
    /// Only for this deployment (any when absent).
    #[serde(default)]
    pub deployment_id: Option<String>,
    /// The execution's error text.
    #[serde(default = "default_fail_message")]
    pub message: String,
}

/// A request that is carried out but whose answer is replaced by a 500 (the answer lost
/// after the manager acted: the client cannot tell whether it happened).
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct LoseRule {
    /// Only requests with this HTTP method (any when absent).
    #[serde(default)]
    pub method: Option<String>,
    /// Only requests whose path starts with this (any when absent), e.g.
    /// `/api/v3.1/deployments/`.
    #[serde(default)]
    pub path_prefix: Option<String>,
}

impl LoseRule {
    /// Whether the rule applies to this request.
    pub fn matches(&self, method: &str, path: &str) -> bool {
        self.method
            .as_deref()
            .is_none_or(|m| m.eq_ignore_ascii_case(method))
            && self
                .path_prefix
                .as_deref()
                .is_none_or(|p| path.starts_with(p))
    }
}

fn default_fail_message() -> String {
    "Simulated failure injected by cloudify-sim".into()
}

/// Injected HTTP faults (API routes only).
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Faults {
    /// Answer this many next API requests with 500.
    pub http_500: u32,
    /// Close this many next API requests' connections without a response.
    pub drop_connections: u32,
    /// Delay every API request by this many milliseconds.
    pub latency_ms: u64,
    /// Scheduled workflow failures.
    pub fail_next: Vec<FailRule>,
    /// Requests to carry out and then answer with 500 (first matching rule, used once).
    pub lose_answer: Vec<LoseRule>,
}

/// An API token.
#[derive(Clone, Debug)]
pub struct Token {
    /// Token ID.
    pub id: String,
    /// Secret value sent in `Authentication-Token`.
    pub value: String,
    /// Free text.
    pub description: Option<String>,
    /// Expiry as given.
    pub expiration_date: Option<String>,
}

/// Everything mutable.
#[derive(Debug, Default)]
pub struct State {
    /// Blueprints, in upload order.
    pub blueprints: Vec<Blueprint>,
    /// Deployments, in creation order.
    pub deployments: Vec<Deployment>,
    /// Executions, in creation order.
    pub executions: Vec<Execution>,
    /// API tokens.
    pub tokens: Vec<Token>,
    /// Injected faults.
    pub faults: Faults,
    /// Deployment updates, in creation order.
    pub updates: Vec<DeploymentUpdate>,
}

/// A deployment update (`/deployment-updates`): new inputs applied by an `update` execution.
#[derive(Clone, Debug)]
pub struct DeploymentUpdate {
    /// ID (`<deployment>-<uuid>`).
    pub id: String,
    /// Deployment ID.
    pub deployment_id: String,
    /// The `update` execution.
    pub execution_id: String,
    /// `executing_workflow`, then `successful` or `failed`.
    pub state: String,
    /// Blueprint before and after (the same: updates here reuse the blueprint).
    pub blueprint_id: String,
    /// Given inputs before the update.
    pub old_inputs: Map<String, Value>,
    /// Given inputs after the update (old ones with the new ones over them).
    pub new_inputs: Map<String, Value>,
    /// Creation time.
    pub created_at: String,
}

/// The simulator: configuration, clock and state.
#[derive(Debug)]
pub struct Sim {
    /// Configuration.
    pub cfg: Config,
    /// Mutable state; never held across an `.await`.
    pub state: std::sync::Mutex<State>,
    base_instant: Instant,
    base_system: SystemTime,
}

/// Formats a time as Cloudify does: `2026-11-29T16:11:58.123Z`.
pub fn iso(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs() as i64;
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    // Civil-from-days (proleptic Gregorian).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        sod / 3600,
        (sod / 60) % 60,
        sod % 60,
        d.subsec_millis()
    )
}

impl Sim {
    /// A simulator with its fixtures loaded.
    pub fn new(cfg: Config) -> Sim {
        let sim = Sim {
            cfg,
            state: std::sync::Mutex::new(State::default()),
            base_instant: Instant::now(),
            base_system: SystemTime::now(),
        };
        sim.reset();
        sim
    }

    /// Locks the state (recovering from a poisoned lock: state stays usable in tests).
    pub fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Drops deployments, executions, tokens and faults; reloads the fixtures.
    pub fn reset(&self) {
        let now = self.ts(Instant::now());
        let blueprints = self
            .cfg
            .fixtures
            .iter()
            .map(|f| self.make_blueprint(f.clone(), now.clone()))
            .collect();
        let mut st = self.lock();
        *st = State::default();
        st.blueprints = blueprints;
    }

    /// Wall-clock timestamp of a simulator instant.
    pub fn ts(&self, t: Instant) -> String {
        let offset = t.saturating_duration_since(self.base_instant);
        iso(self.base_system + offset)
    }

    fn pending_span(&self) -> Duration {
        self.cfg.execution / 4
    }

    fn started_span(&self) -> Duration {
        self.cfg.execution - self.pending_span()
    }

    fn next_transition(&self, e: &Execution) -> Option<Instant> {
        match e.status {
            Status::Pending => Some(e.since + self.pending_span()),
            Status::Started => Some(e.since + self.started_span()),
            Status::Cancelling | Status::ForceCancelling | Status::KillCancelling => {
                Some(e.since + self.pending_span().min(Duration::from_millis(500)))
            }
            _ => None,
        }
    }

    /// Advances every execution to `now`, in time order, applying workflow effects and
    /// starting queued executions as their deployment frees up.
    pub fn tick(&self, st: &mut State, now: Instant) {
        loop {
            let mut best: Option<(Instant, usize)> = None;
            for (i, e) in st.executions.iter().enumerate() {
                if let Some(t) = self.next_transition(e) {
                    if t <= now && best.is_none_or(|(bt, _)| t < bt) {
                        best = Some((t, i));
                    }
                }
            }
            let Some((t, i)) = best else { break };
            let e = &mut st.executions[i];
            match e.status {
                Status::Pending => {
                    e.status = Status::Started;
                    e.since = t;
                    e.started_at = Some(self.ts(t));
                }
                Status::Started => {
                    let end = if e.fail_with.is_some() {
                        Status::Failed
                    } else {
                        Status::Terminated
                    };
                    self.end_execution(st, i, end, t);
                }
                _ => self.end_execution(st, i, Status::Cancelled, t),
            }
        }
    }

    /// Ends execution `i` with `status` at `t`, applies its effects and starts the next queued
    /// execution of its deployment.
    pub fn end_execution(&self, st: &mut State, i: usize, status: Status, t: Instant) {
        let stamp = self.ts(t);
        let e = &mut st.executions[i];
        e.status = status;
        e.since = t;
        e.ended_at = Some(stamp.clone());
        if e.started_at.is_none() {
            e.started_at = Some(stamp.clone());
        }
        if status == Status::Failed {
            e.error = e.fail_with.clone().unwrap_or_else(|| "failed".into());
        }
        let dep_id = e.deployment_id.clone();
        let workflow = e.workflow_id.clone();
        let dry = e.is_dry_run;
        let exec_id = e.id.clone();
        if let Some(u) = st.updates.iter_mut().find(|u| u.execution_id == exec_id) {
            u.state = if status == Status::Terminated {
                "successful".into()
            } else {
                "failed".into()
            };
        }
        if status == Status::Terminated && !dry {
            match workflow.as_str() {
                "delete_deployment_environment" => {
                    st.deployments.retain(|d| d.id != dep_id);
                    st.executions.retain(|x| x.deployment_id != dep_id);
                    return;
                }
                "install" => self.set_installed(st, &dep_id, true, &stamp),
                "update" => self.apply_update(st, &dep_id, &stamp),
                "uninstall" => self.set_installed(st, &dep_id, false, &stamp),
                _ => {}
            }
        }
        self.dequeue(st, &dep_id, t);
    }

    /// A successful `update` execution: the deployment takes its update's new inputs.
    fn apply_update(&self, st: &mut State, dep_id: &str, stamp: &str) {
        let Some(u) = st
            .updates
            .iter()
            .rev()
            .find(|u| u.deployment_id == dep_id && u.state == "successful")
            .cloned()
        else {
            return;
        };
        if let Some(d) = st.deployments.iter_mut().find(|d| d.id == dep_id) {
            let mut inputs = d.inputs.clone();
            inputs.extend(u.new_inputs.clone());
            d.inputs = inputs;
            d.given_inputs = u.new_inputs;
            d.updated_at = stamp.to_string();
        }
    }

    fn set_installed(&self, st: &mut State, dep_id: &str, installed: bool, stamp: &str) {
        if let Some(d) = st.deployments.iter_mut().find(|d| d.id == dep_id) {
            d.installed = installed;
            d.updated_at = stamp.to_string();
        }
    }

    fn dequeue(&self, st: &mut State, dep_id: &str, t: Instant) {
        let busy = st
            .executions
            .iter()
            .any(|e| e.deployment_id == dep_id && e.status.is_running());
        if busy {
            return;
        }
        if let Some(e) = st
            .executions
            .iter_mut()
            .find(|e| e.deployment_id == dep_id && e.status == Status::Queued)
        {
            e.status = Status::Pending;
            e.since = t;
        }
    }

    /// Takes the first matching scheduled failure for a new execution.
    pub fn take_fail_rule(st: &mut State, workflow: &str, dep_id: &str) -> Option<String> {
        let pos = st.faults.fail_next.iter().position(|r| {
            r.workflow_id == workflow && r.deployment_id.as_deref().is_none_or(|d| d == dep_id)
        })?;
        Some(st.faults.fail_next.remove(pos).message)
    }

    /// Creates an execution record (not yet validated against running ones).
    #[allow(clippy::too_many_arguments)]
    pub fn new_execution(
        &self,
        st: &mut State,
        dep_id: &str,
        blueprint_id: &str,
        workflow: &str,
        parameters: Value,
        status: Status,
        dry_run: bool,
        fail_with: Option<String>,
        now: Instant,
    ) -> String {
        let fail_with = Self::take_fail_rule(st, workflow, dep_id).or(fail_with);
        let id = uuid::Uuid::new_v4().to_string();
        st.executions.push(Execution {
            id: id.clone(),
            workflow_id: workflow.into(),
            deployment_id: dep_id.into(),
            blueprint_id: blueprint_id.into(),
            parameters,
            status,
            error: String::new(),
            created_at: self.ts(now),
            started_at: None,
            ended_at: None,
            is_dry_run: dry_run,
            since: now,
            fail_with,
        });
        if let Some(d) = st.deployments.iter_mut().find(|d| d.id == dep_id) {
            d.latest_execution = id.clone();
        }
        id
    }

    /// A blueprint record uploaded at `created_at`.
    pub fn make_blueprint(&self, fx: Fixture, created_at: String) -> Blueprint {
        let fx = Arc::new(fx);
        let light = Arc::new(self.render_blueprint_light(&fx, &created_at));
        let plan_json = serde_json::to_string(&fx.plan)
            .unwrap_or_else(|_| "{}".into())
            .into();
        Blueprint {
            fx,
            created_at,
            light,
            plan_json,
        }
    }

    /// Renders a blueprint for this version.
    pub fn render_blueprint(&self, b: &Blueprint) -> Value {
        let mut v = (*b.light).clone();
        if let Some(m) = v.as_object_mut() {
            m.insert("plan".into(), Value::Object(b.fx.plan.clone()));
        }
        v
    }

    /// Renders a blueprint without its (large) `plan`.
    fn render_blueprint_light(&self, fx: &Fixture, created_at: &str) -> Value {
        let v = self.cfg.version;
        let mut m = Map::new();
        m.insert("id".into(), json!(fx.id));
        m.insert("description".into(), json!(fx.description));
        m.insert("main_file_name".into(), json!(fx.main_file_name));
        m.insert("created_at".into(), json!(created_at));
        m.insert("updated_at".into(), json!(created_at));
        m.insert("tenant_name".into(), json!(TENANT));
        m.insert("created_by".into(), json!(self.cfg.username));
        m.insert("visibility".into(), json!("tenant"));
        m.insert("private_resource".into(), json!(false));
        m.insert("resource_availability".into(), json!("tenant"));
        if v.blueprint_has_state() {
            m.insert("state".into(), json!(fx.state));
            m.insert("error".into(), json!(fx.error));
            m.insert("error_traceback".into(), Value::Null);
            m.insert("is_hidden".into(), json!(false));
        }
        if v.blueprint_has_labels() {
            m.insert("labels".into(), self.render_labels(&fx.labels, created_at));
            m.insert("upload_execution".into(), Value::Null);
        }
        if v.blueprint_has_requirements() {
            m.insert(
                "requirements".into(),
                json!({"parent_capabilities": [], "secrets": []}),
            );
        }
        Value::Object(m)
    }

    fn render_labels(&self, labels: &[(String, String)], at: &str) -> Value {
        Value::Array(
            labels
                .iter()
                .map(|(k, val)| {
                    json!({"key": k, "value": val, "created_at": at,
                           "created_by": self.cfg.username, "creator_id": 0})
                })
                .collect(),
        )
    }

    /// Status of a deployment's environment.
    pub fn env_status(st: &State, d: &Deployment) -> Option<Status> {
        st.executions
            .iter()
            .find(|e| e.id == d.create_execution)
            .map(|e| e.status)
    }

    /// Renders a deployment for this version.
    pub fn render_deployment(&self, st: &State, d: &Deployment) -> Value {
        let v = self.cfg.version;
        let plan = &d.blueprint.plan;
        let mut m = Map::new();
        m.insert("id".into(), json!(d.id));
        m.insert("blueprint_id".into(), json!(d.blueprint.id));
        m.insert("description".into(), json!(d.blueprint.description));
        m.insert("inputs".into(), Value::Object(d.inputs.clone()));
        m.insert(
            "outputs".into(),
            plan.get("outputs").cloned().unwrap_or(json!({})),
        );
        if v.has_capabilities() {
            m.insert(
                "capabilities".into(),
                plan.get("capabilities").cloned().unwrap_or(json!({})),
            );
        }
        let workflows: Vec<Value> = plan
            .get("workflows")
            .and_then(Value::as_object)
            .map(|w| {
                w.iter()
                    .map(|(name, def)| {
                        json!({
                            "name": name,
                            "created_at": Value::Null,
                            "plugin": def.get("plugin").cloned().unwrap_or(Value::Null),
                            "operation": def.get("operation").cloned().unwrap_or(Value::Null),
                            "parameters": def.get("parameters").cloned().unwrap_or(json!({})),
                        })
                    })
                    .collect()
            })
            .unwrap_or_default();
        m.insert("workflows".into(), Value::Array(workflows));
        for key in ["groups", "policy_types", "policy_triggers"] {
            m.insert(key.into(), plan.get(key).cloned().unwrap_or(json!({})));
        }
        m.insert("scaling_groups".into(), json!({}));
        m.insert("created_at".into(), json!(d.created_at));
        m.insert("updated_at".into(), json!(d.updated_at));
        m.insert("created_by".into(), json!(self.cfg.username));
        m.insert("tenant_name".into(), json!(TENANT));
        m.insert("visibility".into(), json!(d.visibility));
        m.insert("private_resource".into(), json!(d.visibility == "private"));
        m.insert("resource_availability".into(), json!(d.visibility));
        m.insert("permalink".into(), Value::Null);
        if v.deployment_has_site() {
            m.insert("site_name".into(), json!(d.site_name));
            m.insert(
                "runtime_only_evaluation".into(),
                json!(d.runtime_only_evaluation),
            );
        }
        if v.deployment_has_labels() {
            m.insert(
                "labels".into(),
                self.render_labels(&d.labels, &d.created_at),
            );
        }
        if v.deployment_has_status_fields() {
            let latest = st.executions.iter().find(|e| e.id == d.latest_execution);
            let busy = st
                .executions
                .iter()
                .any(|e| e.deployment_id == d.id && !e.status.is_ended());
            let failed = latest.is_some_and(|e| e.status == Status::Failed);
            m.insert("display_name".into(), json!(d.display_name));
            m.insert(
                "installation_status".into(),
                json!(if d.installed { "active" } else { "inactive" }),
            );
            m.insert(
                "deployment_status".into(),
                json!(if busy {
                    "in_progress"
                } else if failed {
                    "requires_attention"
                } else {
                    "good"
                }),
            );
            m.insert(
                "latest_execution_status".into(),
                json!(latest.map(|e| match e.status {
                    Status::Terminated => "completed",
                    Status::Failed => "failed",
                    Status::Cancelled => "cancelled",
                    _ => "in_progress",
                })),
            );
            m.insert("create_execution".into(), json!(d.create_execution));
            m.insert("latest_execution".into(), json!(d.latest_execution));
            m.insert(
                "latest_execution_total_operations".into(),
                json!(latest.map(|_| 0)),
            );
            m.insert(
                "latest_execution_finished_operations".into(),
                json!(latest.map(|_| 0)),
            );
            m.insert("environment_type".into(), json!(""));
            m.insert("sub_services_count".into(), json!(0));
            m.insert("sub_environments_count".into(), json!(0));
            m.insert("sub_services_status".into(), Value::Null);
            m.insert("sub_environments_status".into(), Value::Null);
            m.insert("resource_tags".into(), Value::Null);
            m.insert("schedules".into(), json!([]));
        }
        Value::Object(m)
    }

    /// Renders an execution for this version.
    pub fn render_execution(&self, e: &Execution) -> Value {
        let v = self.cfg.version;
        let mut m = Map::new();
        m.insert("id".into(), json!(e.id));
        m.insert("workflow_id".into(), json!(e.workflow_id));
        m.insert("deployment_id".into(), json!(e.deployment_id));
        m.insert("blueprint_id".into(), json!(e.blueprint_id));
        m.insert("status".into(), json!(e.status.as_str()));
        m.insert("error".into(), json!(e.error));
        m.insert("parameters".into(), e.parameters.clone());
        m.insert("is_system_workflow".into(), json!(false));
        m.insert("created_at".into(), json!(e.created_at));
        m.insert("created_by".into(), json!(self.cfg.username));
        m.insert("tenant_name".into(), json!(TENANT));
        m.insert("visibility".into(), json!("tenant"));
        m.insert("private_resource".into(), json!(false));
        m.insert("resource_availability".into(), json!("tenant"));
        if v.execution_has_ended_at() {
            m.insert("ended_at".into(), json!(e.ended_at));
            m.insert("is_dry_run".into(), json!(e.is_dry_run));
        }
        if v.execution_has_started_at() {
            m.insert("started_at".into(), json!(e.started_at));
        }
        if v.execution_has_scheduled_for() {
            m.insert("scheduled_for".into(), Value::Null);
        }
        if v.execution_has_operation_counts() {
            let done = u32::from(e.status == Status::Terminated);
            m.insert("status_display".into(), json!(e.status.display()));
            m.insert("total_operations".into(), json!(1));
            m.insert("finished_operations".into(), json!(done));
        }
        if v.deployment_has_status_fields() {
            m.insert("deployment_display_name".into(), json!(e.deployment_id));
            m.insert("execution_group_id".into(), Value::Null);
            m.insert("resume".into(), json!(false));
            m.insert("allow_custom_parameters".into(), json!(false));
        }
        Value::Object(m)
    }

    /// Evaluates a deployment's outputs (`which` = "outputs") or capabilities.
    pub fn evaluate_values(&self, d: &Deployment, which: &str) -> Result<Value, String> {
        let defs = d
            .blueprint
            .plan
            .get(which)
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        let overrides = if which == "outputs" {
            &d.blueprint.output_values
        } else {
            &d.blueprint.capability_values
        };
        let mut out = Map::new();
        for (name, def) in &defs {
            let expr = match overrides.get(name) {
                Some(o) if d.installed => o,
                _ => def.get("value").unwrap_or(&Value::Null),
            };
            let v = evaluate(expr, &d.inputs).map_err(|e| format!("{name}: {e}"))?;
            out.insert(name.clone(), v);
        }
        if d.installed {
            for (name, expr) in overrides {
                if !defs.contains_key(name) {
                    let v = evaluate(expr, &d.inputs).map_err(|e| format!("{name}: {e}"))?;
                    out.insert(name.clone(), v);
                }
            }
        }
        Ok(Value::Object(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_formats_known_instants() {
        assert_eq!(iso(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        let t = UNIX_EPOCH + Duration::from_millis(1_796_000_000_123);
        assert_eq!(iso(t), "2026-11-30T00:53:20.123Z");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400);
        assert_eq!(iso(leap), "2000-02-29T00:00:00.000Z");
    }

    #[test]
    fn executions_progress_pending_started_terminated_over_the_configured_time() {
        let sim = Sim::new(Config {
            execution: Duration::from_millis(400),
            ..Config::default()
        });
        let t0 = Instant::now();
        let mut st = sim.lock();
        let id = sim.new_execution(
            &mut st,
            "d",
            "b",
            "install",
            json!({}),
            Status::Pending,
            false,
            None,
            t0,
        );
        let status = |st: &State| st.executions.iter().find(|e| e.id == id).unwrap().status;
        sim.tick(&mut st, t0 + Duration::from_millis(50));
        assert_eq!(status(&st), Status::Pending);
        sim.tick(&mut st, t0 + Duration::from_millis(150));
        assert_eq!(status(&st), Status::Started);
        sim.tick(&mut st, t0 + Duration::from_millis(401));
        assert_eq!(status(&st), Status::Terminated);
    }

    #[test]
    fn queued_execution_starts_when_the_running_one_ends() {
        let sim = Sim::new(Config {
            execution: Duration::from_millis(400),
            ..Config::default()
        });
        let t0 = Instant::now();
        let mut st = sim.lock();
        let a = sim.new_execution(
            &mut st,
            "d",
            "b",
            "install",
            json!({}),
            Status::Pending,
            false,
            None,
            t0,
        );
        let b = sim.new_execution(
            &mut st,
            "d",
            "b",
            "uninstall",
            json!({}),
            Status::Queued,
            false,
            None,
            t0,
        );
        let status =
            |st: &State, id: &str| st.executions.iter().find(|e| e.id == id).unwrap().status;
        sim.tick(&mut st, t0 + Duration::from_millis(450));
        assert_eq!(status(&st, &a), Status::Terminated);
        assert_eq!(status(&st, &b), Status::Pending);
        sim.tick(&mut st, t0 + Duration::from_millis(801));
        assert_eq!(status(&st, &b), Status::Terminated);
    }
}
