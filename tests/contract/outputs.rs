//! The Binder port's `outputs` binder (issue 6) against `cloudify-sim` through the real
//! Cloudify adapter: a deployment installed on the simulator, bound through the port as the
//! broker does (configure, credentials), fetched (outputs read again from Cloudify),
//! revoked and removed (nothing to do). Nothing secret or generated is kept: the binding
//! state names the outputs only.

use std::sync::Arc;

use cloudify_osb::adapters::outputs::{NAME, OutputsBinder};
use cloudify_osb::domain::binding::{Binding, BindingState};
use cloudify_osb::domain::catalog::ServiceSettings;
use cloudify_osb::domain::error::BinderError;
use cloudify_osb::domain::ids::{BindingId, InstanceId, PlanId, ServiceId};
use cloudify_osb::domain::instance::{Instance, InstanceState};
use cloudify_osb::domain::ports::{
    BindContext, Binder, Bound, ExecutionState, Orchestrator, Workflow,
};
use serde_json::{Map, Value, json};
use time::OffsetDateTime;

use crate::cloudify::sim::Sim;
use crate::cloudify::{EXEC_SECONDS, SAMPLE, adapter, finish, spec, start};

fn instance(id: &str) -> Instance {
    let id = InstanceId::parse(id).unwrap();
    Instance {
        deployment_id: id.deployment_id(),
        id,
        service_id: ServiceId::parse("svc").unwrap(),
        plan_id: PlanId::parse("plan").unwrap(),
        blueprint_id: SAMPLE.into(),
        organization_guid: "org".into(),
        space_guid: "space".into(),
        context: None,
        parameters: Map::new(),
        maintenance_info_version: None,
        dashboard_url: None,
        request_hash: "h".into(),
        state: InstanceState::Provisioned,
        operation: None,
        created_at: OffsetDateTime::now_utc(),
        version: 1,
    }
}

fn with_config(config: &str) -> ServiceSettings {
    ServiceSettings {
        blueprint_id: SAMPLE.into(),
        binder: NAME.into(),
        binder_config: config.into(),
        binding_rotatable: false,
    }
}

fn record(inst: &Instance, id: &BindingId, bound: &Bound) -> Binding {
    Binding {
        instance_id: inst.id.clone(),
        id: id.clone(),
        service_id: inst.service_id.clone(),
        plan_id: inst.plan_id.clone(),
        request_hash: "h".into(),
        parameters: Map::new(),
        context: None,
        bind_resource: None,
        predecessor_binding_id: None,
        binder: NAME.into(),
        binder_state: bound.state.clone(),
        state: BindingState::Bound,
        expires_at: None,
        renew_before: None,
        created_at: OffsetDateTime::now_utc(),
        version: 1,
    }
}

async fn bind(
    binder: &OutputsBinder,
    inst: &Instance,
    binding: &BindingId,
    outputs: &Map<String, Value>,
    settings: &ServiceSettings,
) -> Result<Bound, BinderError> {
    let params = Map::new();
    let ctx = BindContext {
        instance: inst,
        binding_id: binding,
        parameters: &params,
        outputs,
        settings,
    };
    binder.configure(&ctx).await?;
    binder.credentials(&ctx).await
}

#[tokio::test]
async fn the_outputs_binder_binds_fetches_and_forgets_through_the_port() {
    let sim = Sim::start("7.0", EXEC_SECONDS);
    let cloudify = Arc::new(adapter(&sim.url));
    let inst = instance("outputs-1");
    cloudify
        .create_deployment(&spec(
            &inst.deployment_id,
            SAMPLE,
            json!({"db_name": "orders"}),
        ))
        .await
        .unwrap();
    let install = start(&cloudify, &inst.deployment_id, Workflow::Install).await;
    assert_eq!(finish(&cloudify, &install).await, ExecutionState::Succeeded);
    let outputs = cloudify.outputs(&inst.deployment_id).await.unwrap();

    let binder = OutputsBinder::new(Some(cloudify.clone() as Arc<dyn Orchestrator>));
    assert_eq!(binder.name(), "outputs");
    binder.connect().await.expect("nothing to reach");
    let id = BindingId::parse("b1").unwrap();
    let allowed = with_config("db_name, mysql_ip");
    let bound = bind(&binder, &inst, &id, &outputs, &allowed).await.unwrap();
    let c = &bound.credentials;
    assert_eq!(c.get("db_name"), Some("orders"));
    assert_eq!(c.get("mysql_ip"), outputs["mysql_ip"].as_str());
    assert_eq!(c.get("type"), Some(SAMPLE));
    assert_eq!(c.get("provider"), Some("cloudify"));
    assert_eq!(
        c.0.len(),
        4,
        "nothing but the allow-list, type and provider"
    );
    assert!(bound.lease.is_none());
    assert_eq!(
        bound.state,
        json!({"outputs": ["db_name", "mysql_ip"], "type": SAMPLE}),
        "the state names outputs, never values"
    );

    let rec = record(&inst, &id, &bound);
    assert_eq!(binder.stored_credentials(&rec).await.unwrap(), *c);
    // The settings changing later does not change what an existing binding hands out.
    let other = with_config("db_name");
    let b2 = bind(
        &binder,
        &inst,
        &BindingId::parse("b2").unwrap(),
        &outputs,
        &other,
    )
    .await
    .unwrap();
    assert_eq!(b2.credentials.0.len(), 3);
    assert_eq!(binder.stored_credentials(&rec).await.unwrap(), *c);

    // Unbind and deprovision have nothing to remove, and may be repeated.
    binder.revoke(&rec).await.unwrap();
    binder.revoke(&rec).await.unwrap();
    binder.remove_instance(&inst, &allowed).await.unwrap();
    assert_eq!(binder.renew(&rec).await.unwrap(), None);

    // A missing output fails the bind naming it; a bad allow-list is a config error.
    let err = bind(&binder, &inst, &id, &outputs, &with_config("db_name,nope"))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, BinderError::MissingOutput(n) if n == "nope"),
        "{err}"
    );
    let err = bind(&binder, &inst, &id, &outputs, &with_config("db name"))
        .await
        .unwrap_err();
    assert!(matches!(err, BinderError::Config(_)), "{err}");

    // Fetch once the deployment is gone: the binder says so (422), not a crash or a 500.
    let mut gone = rec.clone();
    gone.instance_id = InstanceId::parse("outputs-gone").unwrap();
    let err = binder.stored_credentials(&gone).await.unwrap_err();
    assert!(matches!(err, BinderError::Rejected(_)), "{err}");
    // Without Cloudify (a process that does not reach it), fetch is unavailable, bind works.
    let offline = OutputsBinder::new(None);
    assert!(matches!(
        offline.stored_credentials(&rec).await,
        Err(BinderError::Unavailable(_))
    ));
    assert!(bind(&offline, &inst, &id, &outputs, &allowed).await.is_ok());
}
