//! The Orchestrator port's Cloudify adapter against `cloudify-sim` (DESIGN.md §8.3), on each
//! emulated manager version 4.3, 5.1, 6.4 and 7.0. Every test starts its own simulator from
//! `$CLOUDIFY_SIM_BIN` (faults and resets must not leak into other tests), except one that
//! runs a prefixed lifecycle on the shared 7.0 simulator at `$CLOUDIFY_SIM_URL`.

pub(crate) mod sim;

use std::future::Future;
use std::time::{Duration, Instant};

use cloudify_osb::adapters::cloudify::{
    CloudifyConfig, CloudifyCredentials, CloudifyOrchestrator, RetryPolicy,
};
use cloudify_osb::domain::error::OrchestratorError;
use cloudify_osb::domain::ports::{DeploymentSpec, ExecutionState, Orchestrator, Workflow};
use secrecy::SecretString;
use serde_json::{Value, json};

use sim::Sim;

pub(crate) const EXEC_SECONDS: f64 = 0.3;
pub(crate) const SAMPLE: &str = "sample-mysql";

fn adapter_with(url: &str, password: &str, page_size: u32) -> CloudifyOrchestrator {
    let mut c = CloudifyConfig::new(url);
    c.credentials = CloudifyCredentials::Basic {
        username: "admin".into(),
        password: SecretString::from(password.to_owned()),
    };
    c.retry = RetryPolicy {
        max_attempts: 4,
        initial_backoff: Duration::from_millis(50),
        max_backoff: Duration::from_millis(200),
        total_budget: Duration::from_secs(10),
    };
    c.request_timeout = Duration::from_secs(5);
    c.page_size = page_size;
    CloudifyOrchestrator::new(c).expect("adapter config")
}

pub(crate) fn adapter(url: &str) -> CloudifyOrchestrator {
    adapter_with(url, "admin", 100)
}

pub(crate) fn spec(deployment_id: &str, blueprint_id: &str, inputs: Value) -> DeploymentSpec {
    DeploymentSpec {
        deployment_id: deployment_id.into(),
        blueprint_id: blueprint_id.into(),
        inputs: inputs.as_object().cloned().unwrap_or_default(),
        labels: vec![(
            "osb-instance".into(),
            deployment_id.trim_start_matches("osb-").into(),
        )],
    }
}

/// Polls `f` until it gives `Some`, for at most 20 s.
async fn until<T, F, Fut>(what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Starts `workflow`, retrying while the deployment's environment is being created.
pub(crate) async fn start(o: &CloudifyOrchestrator, d: &str, workflow: Workflow) -> String {
    until("the workflow to start", || async {
        match o.start_workflow(d, workflow).await {
            Ok(id) => Some(id),
            Err(OrchestratorError::EnvironmentPending) => None,
            Err(e) => panic!("starting {workflow:?} on {d}: {e:?}"),
        }
    })
    .await
}

/// Polls an execution until it ends.
pub(crate) async fn finish(o: &CloudifyOrchestrator, execution: &str) -> ExecutionState {
    until("the execution to end", || async {
        match o.execution(execution).await.expect("execution state") {
            ExecutionState::InProgress(_) => None,
            done => Some(done),
        }
    })
    .await
}

async fn wait_gone(o: &CloudifyOrchestrator, d: &str) {
    until("the deployment to disappear", || async {
        (!o.deployment_exists(d).await.expect("deployment_exists")).then_some(())
    })
    .await;
}

fn simple_blueprint(id: &str) -> Value {
    json!({"id": id, "description": format!("blueprint {id}"), "plan": {"inputs": {}, "outputs": {}}})
}

/// The whole lifecycle; returns round trips per step for the report.
async fn lifecycle(sim: &Sim, o: &CloudifyOrchestrator, d: &str) -> Vec<(&'static str, u64)> {
    let mut trips = Vec::new();
    let mut last = o.round_trips();
    let mut mark = |name: &'static str, now: u64| {
        trips.push((name, now - last));
        last = now;
    };

    o.create_deployment(&spec(d, SAMPLE, json!({"db_name": "orders"})))
        .await
        .expect("create deployment");
    mark("create (incl. version)", o.round_trips());
    assert!(o.deployment_exists(d).await.unwrap());
    let install = start(o, d, Workflow::Install).await;
    mark("wait environment + start install", o.round_trips());
    assert_eq!(
        o.running_execution(d).await.unwrap().as_deref(),
        Some(install.as_str()),
        "the install runs"
    );
    assert_eq!(finish(o, &install).await, ExecutionState::Succeeded);
    mark("running_execution + poll install", o.round_trips());
    assert_eq!(o.running_execution(d).await.unwrap(), None);
    let outputs = o.outputs(d).await.expect("outputs");
    assert_eq!(outputs["mysql_ip"], "127.0.0.1:3306", "{outputs:?}");
    assert_eq!(outputs["db_name"], "orders", "{outputs:?}");
    mark("running_execution + outputs", o.round_trips());

    // Installed deployments cannot be deleted before uninstall.
    match o.delete_deployment(d).await {
        Err(OrchestratorError::DependentsExist(m)) => assert!(!m.is_empty()),
        other => panic!("delete before uninstall: {other:?}"),
    }
    let uninstall = start(o, d, Workflow::Uninstall).await;
    assert_eq!(finish(o, &uninstall).await, ExecutionState::Succeeded);
    mark("refused delete + uninstall", o.round_trips());
    o.delete_deployment(d).await.expect("delete");
    wait_gone(o, d).await;
    mark("delete + poll until gone", o.round_trips());
    assert!(
        sim.deployment_ids(d).await.iter().all(|id| id != d),
        "the simulator still holds {d}"
    );
    trips
}

async fn lists_uploaded_blueprints_page_by_page(version: &str) {
    let sim = Sim::start(version, EXEC_SECONDS);
    for i in 0..7 {
        sim.add_blueprint(simple_blueprint(&format!("paged-{i}")))
            .await;
    }
    let modern = version >= "5.2";
    if modern {
        let mut broken = simple_blueprint("paged-broken");
        broken["state"] = json!("failed_parsing");
        sim.add_blueprint(broken).await;
    }
    let o = adapter_with(&sim.url, "admin", 3);
    let bps = o.blueprints().await.expect("blueprints");
    let mut ids: Vec<&str> = bps.iter().map(|b| b.id.as_str()).collect();
    ids.sort_unstable();
    let mut want: Vec<String> = (0..7).map(|i| format!("paged-{i}")).collect();
    want.push(SAMPLE.into());
    want.sort();
    assert_eq!(ids, want, "every uploaded blueprint, nothing else");
    // 8 blueprints in pages of 3: version + 3 pages.
    assert_eq!(o.round_trips(), 4);
    let sample = bps.iter().find(|b| b.id == SAMPLE).unwrap();
    assert!(
        sample
            .description
            .as_deref()
            .unwrap_or("")
            .contains("Sample")
    );
    assert!(sample.inputs.contains_key("mysql_host"));
    assert!(sample.metadata.contains_key("cloudify_sim"));
    assert!(sample.updated_at.is_some());
    assert_eq!(sample.tenant, "default_tenant");
    if version >= "6.0" {
        assert_eq!(sample.labels, vec![("osb".to_owned(), "true".to_owned())]);
    } else {
        assert!(sample.labels.is_empty());
    }
}

async fn a_deployment_goes_through_its_whole_lifecycle(version: &str) {
    let sim = Sim::start(version, EXEC_SECONDS);
    let o = adapter(&sim.url);
    // Digit-first instance IDs are fine behind the `osb-` prefix, also on 4.4–5.2.
    let trips = lifecycle(&sim, &o, "osb-1f0e2d3c-lifecycle").await;
    eprintln!("round trips on {version}: {trips:?}");
    assert_eq!(trips[0].1, 2, "create = version + PUT");
}

async fn bad_inputs_are_refused_by_the_put_or_fail_the_environment(version: &str) {
    let sim = Sim::start(version, EXEC_SECONDS);
    let o = adapter(&sim.url);
    let d = "osb-bad-inputs";
    let created = o
        .create_deployment(&spec(d, SAMPLE, json!({"no_such_input": 1})))
        .await;
    if version < "6.0" {
        match created {
            Err(OrchestratorError::InvalidInput(m)) => {
                assert!(m.contains("no_such_input"), "{m}")
            }
            other => panic!("{version}: {other:?}"),
        }
        assert!(
            !o.deployment_exists(d).await.unwrap(),
            "nothing left behind"
        );
    } else {
        created.expect("6.0+ validates in the environment execution");
        let e = until("the environment to fail", || async {
            match o.start_workflow(d, Workflow::Install).await {
                Err(OrchestratorError::EnvironmentPending) => None,
                other => Some(other),
            }
        })
        .await;
        match e {
            Err(OrchestratorError::EnvironmentFailed(m)) => {
                assert!(m.contains("no_such_input"), "Cloudify's message: {m}")
            }
            other => panic!("{version}: {other:?}"),
        }
        // The leftover can be deleted (nothing orphaned).
        o.delete_deployment(d).await.expect("delete leftover");
        wait_gone(&o, d).await;
    }
    // A required input of the wrong type is refused the same way.
    let typed = o
        .create_deployment(&spec("osb-bad-type", SAMPLE, json!({"size": "many"})))
        .await;
    if version < "6.0" {
        assert!(
            matches!(typed, Err(OrchestratorError::InvalidInput(_))),
            "{typed:?}"
        );
    } else {
        typed.expect("created");
    }
}

async fn a_failing_install_reports_the_simulators_text(version: &str) {
    let sim = Sim::start(version, EXEC_SECONDS);
    let o = adapter(&sim.url);
    let d = "osb-failing-install";
    o.create_deployment(&spec(d, SAMPLE, json!({})))
        .await
        .unwrap();
    sim.fail_next(
        "install",
        d,
        "Task failed 'mysql.create' -> disk full on db-host\nTraceback (most recent call last):\n  File \"x.py\"",
    )
    .await;
    let install = start(&o, d, Workflow::Install).await;
    assert_eq!(
        finish(&o, &install).await,
        ExecutionState::Failed("Task failed 'mysql.create' -> disk full on db-host".into())
    );
}

async fn server_errors_and_latency_are_absorbed_by_retries_for_reads(version: &str) {
    let sim = Sim::start(version, EXEC_SECONDS);
    let o = adapter(&sim.url);
    sim.faults(2, 0, 0).await;
    assert_eq!(o.blueprints().await.expect("after two 500s").len(), 1);
    assert_eq!(o.round_trips(), 4, "2 × 500, version, one page");

    sim.faults(0, 0, 300).await;
    let t0 = Instant::now();
    assert!(!o.deployment_exists("osb-none").await.unwrap());
    assert!(t0.elapsed() >= Duration::from_millis(300));
    sim.faults(0, 0, 0).await;

    // A PUT is not retried: one 500 is reported, and nothing was created.
    sim.faults(1, 0, 0).await;
    let before = o.round_trips();
    let e = o
        .create_deployment(&spec("osb-five-hundred", SAMPLE, json!({})))
        .await
        .unwrap_err();
    assert!(matches!(e, OrchestratorError::Unavailable(_)), "{e:?}");
    assert_eq!(o.round_trips() - before, 1);
    assert!(!o.deployment_exists("osb-five-hundred").await.unwrap());

    // A POST /executions is not retried either; the caller re-checks state.
    o.create_deployment(&spec("osb-five-hundred", SAMPLE, json!({})))
        .await
        .unwrap();
    until("the environment", || async {
        o.running_execution("osb-five-hundred")
            .await
            .unwrap()
            .is_none()
            .then_some(())
    })
    .await;
    sim.faults(1, 0, 0).await;
    let e = o
        .start_workflow("osb-five-hundred", Workflow::Install)
        .await
        .unwrap_err();
    assert!(matches!(e, OrchestratorError::Unavailable(_)), "{e:?}");
    assert_eq!(o.running_execution("osb-five-hundred").await.unwrap(), None);
    // Too many 500s for the retry budget: Unavailable, not a wrong answer.
    sim.faults(10, 0, 0).await;
    let e = o.deployment_exists("osb-five-hundred").await.unwrap_err();
    assert!(matches!(e, OrchestratorError::Unavailable(_)), "{e:?}");
}

async fn dropped_connections_are_retried_for_reads_only(version: &str) {
    let sim = Sim::start(version, EXEC_SECONDS);
    let o = adapter(&sim.url);
    assert!(!o.deployment_exists("osb-x").await.unwrap());
    sim.faults(0, 2, 0).await;
    assert!(!o.deployment_exists("osb-x").await.expect("retried"));
    o.ping().await.expect("version cached");
    sim.faults(0, 1, 0).await;
    let e = o
        .create_deployment(&spec("osb-dropped", SAMPLE, json!({})))
        .await
        .unwrap_err();
    assert!(matches!(e, OrchestratorError::Unavailable(_)), "{e:?}");
    assert!(!o.deployment_exists("osb-dropped").await.unwrap());
}

async fn wrong_credentials_are_unavailable_never_not_found(version: &str) {
    let sim = Sim::start(version, EXEC_SECONDS);
    let o = adapter_with(&sim.url, "wrong-password", 100);
    for e in [
        o.ping().await.map(|_| ()).unwrap_err(),
        o.deployment_exists("osb-x").await.map(|_| ()).unwrap_err(),
        o.execution("nope").await.map(|_| ()).unwrap_err(),
        o.delete_deployment("osb-x").await.unwrap_err(),
    ] {
        assert!(matches!(e, OrchestratorError::Unavailable(_)), "{e:?}");
        assert!(!e.to_string().contains("wrong-password"), "{e}");
    }
    // An unknown tenant is refused (403) the same way.
    let mut c = CloudifyConfig::new(&sim.url);
    c.tenant = "no_such_tenant".into();
    c.credentials = CloudifyCredentials::Basic {
        username: "admin".into(),
        password: SecretString::from("admin"),
    };
    let other = CloudifyOrchestrator::new(c).unwrap();
    assert!(matches!(
        other.blueprints().await,
        Err(OrchestratorError::Unavailable(_))
    ));
}

async fn unknown_and_conflicting_things_map_to_their_errors(version: &str) {
    let sim = Sim::start(version, 5.0);
    let o = adapter(&sim.url);
    assert!(o.ping().await.unwrap().starts_with(version));
    assert!(matches!(
        o.execution("no-such-execution").await,
        Err(OrchestratorError::NotFound(_))
    ));
    assert!(matches!(
        o.outputs("osb-missing").await,
        Err(OrchestratorError::NotFound(_))
    ));
    assert!(matches!(
        o.start_workflow("osb-missing", Workflow::Install).await,
        Err(OrchestratorError::NotFound(_))
    ));
    o.delete_deployment("osb-missing")
        .await
        .expect("deleting what is gone is done");
    assert_eq!(o.running_execution("osb-missing").await.unwrap(), None);

    let d = "osb-busy";
    o.create_deployment(&spec(d, SAMPLE, json!({})))
        .await
        .unwrap();
    assert!(matches!(
        o.create_deployment(&spec(d, SAMPLE, json!({}))).await,
        Err(OrchestratorError::AlreadyExists(_))
    ));
    // While the environment is created (5 s here), workflows wait.
    assert!(matches!(
        o.start_workflow(d, Workflow::Install).await,
        Err(OrchestratorError::EnvironmentPending)
    ));
    let create = o
        .running_execution(d)
        .await
        .unwrap()
        .expect("create env runs");
    o.cancel_execution(&create).await.expect("cancel");
    let e = until("the cancelled environment", || async {
        match o.start_workflow(d, Workflow::Install).await {
            Err(OrchestratorError::EnvironmentPending) => None,
            other => Some(other),
        }
    })
    .await;
    assert!(
        matches!(e, Err(OrchestratorError::EnvironmentFailed(_))),
        "{e:?}"
    );
    // Cancelling an execution that already ended is done, not an error.
    o.cancel_execution(&create)
        .await
        .expect("idempotent cancel");

    let d2 = "osb-busy-2";
    o.create_deployment(&spec(d2, SAMPLE, json!({})))
        .await
        .unwrap();
    let install = until("install to start", || async {
        match o.start_workflow(d2, Workflow::Install).await {
            Ok(id) => Some(id),
            Err(OrchestratorError::EnvironmentPending) => None,
            Err(e) => panic!("{e:?}"),
        }
    })
    .await;
    assert!(matches!(
        o.start_workflow(d2, Workflow::Uninstall).await,
        Err(OrchestratorError::Busy)
    ));
    assert!(matches!(
        o.delete_deployment(d2).await,
        Err(OrchestratorError::DependentsExist(_))
    ));
    assert_eq!(
        o.running_execution(d2).await.unwrap().as_deref(),
        Some(install.as_str())
    );
    o.cancel_execution(&install).await.unwrap();
    assert_eq!(
        until("the cancel", || async {
            match o.execution(&install).await.unwrap() {
                ExecutionState::InProgress(_) => None,
                s => Some(s),
            }
        })
        .await,
        ExecutionState::Cancelled
    );
}

macro_rules! per_version {
    ($($module:ident => $version:literal),* $(,)?) => {$(
        mod $module {
            #[tokio::test]
            async fn lists_uploaded_blueprints_page_by_page() {
                super::lists_uploaded_blueprints_page_by_page($version).await;
            }
            #[tokio::test]
            async fn a_deployment_goes_through_its_whole_lifecycle() {
                super::a_deployment_goes_through_its_whole_lifecycle($version).await;
            }
            #[tokio::test]
            async fn bad_inputs_are_refused_by_the_put_or_fail_the_environment() {
                super::bad_inputs_are_refused_by_the_put_or_fail_the_environment($version).await;
            }
            #[tokio::test]
            async fn a_failing_install_reports_the_simulators_text() {
                super::a_failing_install_reports_the_simulators_text($version).await;
            }
            #[tokio::test]
            async fn server_errors_and_latency_are_absorbed_by_retries_for_reads() {
                super::server_errors_and_latency_are_absorbed_by_retries_for_reads($version).await;
            }
            #[tokio::test]
            async fn dropped_connections_are_retried_for_reads_only() {
                super::dropped_connections_are_retried_for_reads_only($version).await;
            }
            #[tokio::test]
            async fn wrong_credentials_are_unavailable_never_not_found() {
                super::wrong_credentials_are_unavailable_never_not_found($version).await;
            }
            #[tokio::test]
            async fn unknown_and_conflicting_things_map_to_their_errors() {
                super::unknown_and_conflicting_things_map_to_their_errors($version).await;
            }
        }
    )*};
}

per_version! {
    v4_3 => "4.3",
    v5_1 => "5.1",
    v6_4 => "6.4",
    v7_0 => "7.0",
}

#[tokio::test]
async fn the_shared_simulator_runs_a_prefixed_lifecycle() {
    let sim = Sim::shared();
    let o = adapter(&sim.url);
    assert!(
        o.ping()
            .await
            .expect("shared simulator answers")
            .starts_with('7')
    );
    let d = format!("osb-contract-cloudify-{}", std::process::id());
    lifecycle(&sim, &o, &d).await;
}

#[tokio::test]
async fn a_token_authenticates_like_basic_credentials() {
    let sim = Sim::start("7.0", EXEC_SECONDS);
    let http = reqwest::Client::new();
    let token: Value = http
        .post(format!("{}/api/v3.1/tokens", sim.url))
        .basic_auth("admin", Some("admin"))
        .header("Tenant", "default_tenant")
        .json(&json!({"description": "contract test"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let value = token["value"].as_str().expect("token value").to_owned();
    let mut c = CloudifyConfig::new(format!("{}/api/v3.1/", sim.url));
    c.credentials = CloudifyCredentials::Token(SecretString::from(value));
    let o = CloudifyOrchestrator::new(c).unwrap();
    assert_eq!(o.blueprints().await.expect("token accepted").len(), 1);
    let mut c = CloudifyConfig::new(&sim.url);
    c.credentials = CloudifyCredentials::Token(SecretString::from("ctok-bogus-token"));
    let bad = CloudifyOrchestrator::new(c).unwrap();
    assert!(matches!(
        bad.blueprints().await,
        Err(OrchestratorError::Unavailable(_))
    ));
}
