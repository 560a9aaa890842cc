//! Binding rotation (OSB 2.17 §10, issue 6) end to end through the broker with the Vault
//! binder on OpenBao + MariaDB: a bind naming `predecessor_binding_id` on a
//! `binding_rotatable` plan mints fresh credentials, both logins work until each binding is
//! unbound, and the refusals (plan not rotatable, unknown or foreign predecessor) are 400s
//! that create nothing.

use std::sync::Arc;

use cloudify_osb::adapters::sqlite::SqliteStore;
use cloudify_osb::adapters::vault::{VaultBinder, VaultSettings};
use cloudify_osb::domain::broker::{
    BindRequest, Broker, BrokerError, BrokerSettings, UnbindRequest,
};
use cloudify_osb::domain::catalog::ServiceSettings;
use cloudify_osb::domain::ids::{BindingId, DEFAULT_ID_NAMESPACE, InstanceId, PlanId, ServiceId};
use cloudify_osb::domain::ports::{BinderRegistry, Orchestrator, Store};
use cloudify_osb::domain::sync::sync_catalog;
use secrecy::SecretString;

use super::through_the_broker::FakeCloudify;
use super::{Fx, instance, need};

struct World {
    fx: Fx,
    broker: Broker,
    store: Arc<dyn Store>,
    service_id: ServiceId,
    plan_id: PlanId,
}

async fn world(rotatable: bool) -> World {
    let fx = Fx::new().await;
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open_in_memory().unwrap());
    let cloudify = Arc::new(FakeCloudify {
        outputs: fx.outputs(),
    });
    store
        .put_service_settings(&ServiceSettings {
            binding_rotatable: rotatable,
            ..fx.settings.clone()
        })
        .await
        .unwrap();
    sync_catalog(
        cloudify.as_ref(),
        store.as_ref(),
        &DEFAULT_ID_NAMESPACE,
        "default_tenant",
    )
    .await
    .unwrap();
    let entry = store.catalog().await.unwrap().entries.remove(0);
    let plan = &entry.service.plans[0];
    assert_eq!(plan.binding_rotatable, rotatable.then_some(true));
    let mut vs = VaultSettings::new(
        need("VAULT_ADDR", "openbao"),
        SecretString::from(need("VAULT_TOKEN", "openbao")),
    );
    vs.kv_mount = fx.kv();
    vs.name_prefix = fx.tag.clone();
    let mut binders = BinderRegistry::new();
    binders.register(Arc::new(VaultBinder::new(vs).unwrap()));
    let broker = Broker::new(
        store.clone(),
        Some(cloudify as Arc<dyn Orchestrator>),
        binders,
        BrokerSettings::default(),
    );
    World {
        plan_id: plan.id.clone(),
        service_id: entry.service.id.clone(),
        fx,
        broker,
        store,
    }
}

impl World {
    async fn instance(&self, id: &str) -> InstanceId {
        let mut inst = instance(id);
        inst.service_id = self.service_id.clone();
        inst.plan_id = self.plan_id.clone();
        self.store.create_instance(&inst).await.unwrap();
        inst.id
    }

    fn request(&self, predecessor: Option<&str>) -> BindRequest {
        BindRequest {
            service_id: Some(self.service_id.clone()),
            plan_id: Some(self.plan_id.clone()),
            context: None,
            bind_resource: None,
            app_guid: None,
            parameters: None,
            predecessor_binding_id: predecessor.map(|p| BindingId::parse(p).unwrap()),
        }
    }

    async fn unbind(&self, inst: &InstanceId, id: &str) {
        self.broker
            .unbind(
                inst,
                &BindingId::parse(id).unwrap(),
                UnbindRequest {
                    service_id: self.service_id.clone(),
                    plan_id: self.plan_id.clone(),
                },
            )
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn a_rotation_mints_fresh_credentials_and_both_work_until_each_is_unbound() {
    let w = world(true).await;
    let inst = w.instance("rot-1").await;
    let (b1, b2, b3) = (
        BindingId::parse("b1").unwrap(),
        BindingId::parse("b2").unwrap(),
        BindingId::parse("b3").unwrap(),
    );
    let first = w.broker.bind(&inst, &b1, w.request(None)).await.unwrap();
    let c1 = first.body.credentials.clone();
    assert!(first.body.metadata.is_some(), "the lease gives expires_at");

    // The rotation body as the spec's table has it: only the predecessor.
    let mut rotate = w.request(Some("b1"));
    rotate.service_id = None;
    rotate.plan_id = None;
    let second = w.broker.bind(&inst, &b2, rotate.clone()).await.unwrap();
    let c2 = second.body.credentials.clone();
    assert_ne!(c1.get("username"), c2.get("username"), "fresh credentials");
    assert_ne!(c1.get("password"), c2.get("password"));
    let row = format!("{}-row", w.fx.tag);
    assert_eq!(
        w.fx.login(&c1),
        Ok(row.clone()),
        "the predecessor still works"
    );
    assert_eq!(w.fx.login(&c2), Ok(row.clone()));
    // An identical re-PUT of the rotation answers the same credentials.
    let again = w.broker.bind(&inst, &b2, rotate).await.unwrap();
    assert_eq!(again.body.credentials, c2);

    // A rotation of the successor (the usual chain), then unbinding the predecessors.
    let third = w
        .broker
        .bind(&inst, &b3, w.request(Some("b2")))
        .await
        .unwrap();
    let c3 = third.body.credentials.clone();
    w.unbind(&inst, "b1").await;
    let err = w.fx.login(&c1).unwrap_err();
    assert!(err.contains("Access denied"), "{err}");
    assert_eq!(
        w.fx.login(&c2),
        Ok(row.clone()),
        "the successor outlives it"
    );
    assert_eq!(w.fx.login(&c3), Ok(row.clone()));
    w.unbind(&inst, "b2").await;
    assert!(w.fx.login(&c2).is_err());
    assert_eq!(w.fx.login(&c3), Ok(row));
    assert_eq!(
        w.broker.get_binding(&inst, &b3).await.unwrap().credentials,
        c3
    );

    // The unbound predecessor cannot be rotated from any more.
    let err = w
        .broker
        .bind(
            &inst,
            &BindingId::parse("b4").unwrap(),
            w.request(Some("b1")),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, BrokerError::BadRequest(_)), "{err:?}");
    w.unbind(&inst, "b3").await;
    assert!(w.fx.login(&c3).is_err());
    w.fx.cleanup().await;
}

#[tokio::test]
async fn rotations_that_the_spec_forbids_are_refused_with_400_and_create_nothing() {
    let w = world(false).await;
    let inst = w.instance("rot-2").await;
    let other = w.instance("rot-3").await;
    let b1 = BindingId::parse("b1").unwrap();
    let c1 = w
        .broker
        .bind(&inst, &b1, w.request(None))
        .await
        .unwrap()
        .body
        .credentials;
    w.broker
        .bind(&other, &BindingId::parse("ob1").unwrap(), w.request(None))
        .await
        .unwrap();
    let users = w.fx.db.users_with_prefix(&w.fx.tag).len();

    // Plan not rotatable.
    let err = w
        .broker
        .bind(
            &inst,
            &BindingId::parse("b2").unwrap(),
            w.request(Some("b1")),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&err, BrokerError::BadRequest(m) if m.contains("rotation")),
        "{err:?}"
    );
    // An admin makes the service rotatable: now only live predecessors of this very
    // instance are accepted (unknown, or another instance's binding: 400).
    let mut rotatable = w.fx.settings.clone();
    rotatable.binding_rotatable = true;
    w.store.put_service_settings(&rotatable).await.unwrap();
    for bad in ["nope", "ob1"] {
        let err = w
            .broker
            .bind(
                &inst,
                &BindingId::parse("b3").unwrap(),
                w.request(Some(bad)),
            )
            .await
            .unwrap_err();
        assert!(
            matches!(&err, BrokerError::BadRequest(m) if m.contains(bad)),
            "{err:?}"
        );
    }
    assert_eq!(
        w.fx.db.users_with_prefix(&w.fx.tag).len(),
        users,
        "no credentials were minted"
    );
    assert!(
        w.store
            .binding(&inst, &BindingId::parse("b2").unwrap())
            .await
            .unwrap()
            .is_none()
    );
    assert!(w.fx.login(&c1).is_ok());
    w.fx.cleanup().await;
}
