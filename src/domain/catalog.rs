//! The catalog in the OSB JSON shape (`GET /v2/catalog`, spec "Catalog Management"), plus
//! what the broker keeps beside each offering (blueprint, presets, active flag) and the
//! admin-owned service settings that sync never overwrites. Must not import adapter crates.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::ids::{PlanId, ServiceId};

/// A service offering exactly as the catalog route serves it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Service {
    pub id: ServiceId,
    pub name: String,
    pub description: String,
    pub bindable: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    #[serde(default)]
    pub instances_retrievable: bool,
    #[serde(default)]
    pub bindings_retrievable: bool,
    #[serde(default)]
    pub plan_updateable: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_context_updates: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Map<String, Value>>,
    pub plans: Vec<Plan>,
}

/// A plan exactly as the catalog route serves it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    pub id: PlanId,
    pub name: String,
    pub description: String,
    #[serde(default = "yes")]
    pub free: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bindable: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan_updateable: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub binding_rotatable: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maximum_polling_duration: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maintenance_info: Option<MaintenanceInfo>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Map<String, Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schemas: Option<Schemas>,
}

fn yes() -> bool {
    true
}

/// `maintenance_info`: never emitted without a version (strict clients reject `{}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MaintenanceInfo {
    pub version: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// Plan `schemas` (JSON Schemas of parameters).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Schemas {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_instance: Option<ServiceInstanceSchemas>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_binding: Option<ServiceBindingSchemas>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ServiceInstanceSchemas {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub create: Option<InputParameters>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update: Option<InputParameters>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ServiceBindingSchemas {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub create: Option<InputParameters>,
}

/// `{"parameters": <JSON Schema>}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InputParameters {
    pub parameters: Value,
}

/// One offering as the broker keeps it: the OSB shape plus where it comes from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CatalogEntry {
    pub service: Service,
    /// The Cloudify blueprint this offering deploys.
    pub blueprint_id: String,
    /// The Cloudify tenant of the blueprint.
    #[serde(default)]
    pub tenant: String,
    /// False once the blueprint disappeared: hidden from the catalog, still serving the
    /// existing instances (update, fetch, unbind, deprovision).
    pub active: bool,
    /// The blueprint's `updated_at` when it was last mapped (lets sync skip unchanged ones).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blueprint_updated_at: Option<String>,
    /// Per plan: the deployment inputs the plan presets (merged under the user's parameters).
    /// Kept for retired plans too.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub presets: BTreeMap<PlanId, Map<String, Value>>,
    /// Plans the blueprint no longer declares (removed from `metadata.osb.plans`): never
    /// served in the catalog nor accepted for new instances or plan changes, but kept so
    /// that instances already on them can still be fetched, updated, bound, unbound and
    /// deprovisioned. Kept for good, in plan ID order; a plan declared again becomes active.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub retired_plans: Vec<Plan>,
}

impl CatalogEntry {
    /// The active plan with this ID, if it belongs to this offering (provision, plan changes).
    pub fn plan(&self, id: &PlanId) -> Option<&Plan> {
        self.service.plans.iter().find(|p| &p.id == id)
    }

    /// The plan of an existing instance: active or retired.
    pub fn instance_plan(&self, id: &PlanId) -> Option<&Plan> {
        self.plan(id)
            .or_else(|| self.retired_plans.iter().find(|p| &p.id == id))
    }

    /// Carries over from `previous` (the stored entry of the same offering) every plan this
    /// entry no longer declares, as retired, with its presets.
    pub fn retire_plans_from(&mut self, previous: &CatalogEntry) {
        let active: std::collections::BTreeSet<&PlanId> =
            self.service.plans.iter().map(|p| &p.id).collect();
        let mut retired: BTreeMap<PlanId, Plan> = BTreeMap::new();
        for p in previous.service.plans.iter().chain(&previous.retired_plans) {
            if !active.contains(&p.id) && !retired.contains_key(&p.id) {
                retired.insert(p.id.clone(), p.clone());
                if let Some(preset) = previous.presets.get(&p.id) {
                    self.presets.insert(p.id.clone(), preset.clone());
                }
            }
        }
        self.retired_plans = retired.into_values().collect();
    }

    /// Whether a plan is bindable (the plan's value overrides the offering's).
    pub fn plan_bindable(&self, plan: &Plan) -> bool {
        plan.bindable.unwrap_or(self.service.bindable)
    }

    /// Whether a plan can be changed by update (the plan's value overrides the offering's).
    pub fn plan_updateable(&self, plan: &Plan) -> bool {
        plan.plan_updateable.unwrap_or(self.service.plan_updateable)
    }
}

/// A snapshot of the whole catalog, active and inactive entries, with its version.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Catalog {
    /// Incremented by every write to the catalog; lets readers skip re-reading it.
    pub version: u64,
    pub entries: Vec<CatalogEntry>,
}

impl Catalog {
    /// The entry of a service ID, active or not.
    pub fn entry(&self, id: &ServiceId) -> Option<&CatalogEntry> {
        self.entries.iter().find(|e| &e.service.id == id)
    }

    /// The offerings the catalog route serves: active entries only, in name order.
    pub fn active_services(&self) -> Vec<&Service> {
        let mut v: Vec<&Service> = self
            .entries
            .iter()
            .filter(|e| e.active)
            .map(|e| &e.service)
            .collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    }
}

/// Admin-owned settings of one blueprint's offering (`cloudify-osb service set-binder`).
/// Keyed by blueprint ID; written only by the admin CLI, never by sync.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceSettings {
    pub blueprint_id: String,
    /// Binder name in the registry, e.g. `vault`.
    pub binder: String,
    /// Where the binder finds its config, e.g. a Vault KV path.
    pub binder_config: String,
    /// Plans of this service allow binding rotation (until the catalog declares it per plan).
    #[serde(default)]
    pub binding_rotatable: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ids::{DEFAULT_ID_NAMESPACE, plan_id_for, service_id_for};

    fn entry() -> CatalogEntry {
        CatalogEntry {
            service: Service {
                id: service_id_for(&DEFAULT_ID_NAMESPACE, "t", "b"),
                name: "b".into(),
                description: "d".into(),
                bindable: false,
                tags: vec![],
                instances_retrievable: true,
                bindings_retrievable: true,
                plan_updateable: false,
                allow_context_updates: None,
                metadata: None,
                plans: vec![Plan {
                    id: plan_id_for(&DEFAULT_ID_NAMESPACE, "t", "b", "default"),
                    name: "default".into(),
                    description: "default plan".into(),
                    free: true,
                    bindable: None,
                    plan_updateable: None,
                    binding_rotatable: None,
                    maximum_polling_duration: None,
                    maintenance_info: None,
                    metadata: None,
                    schemas: None,
                }],
            },
            blueprint_id: "b".into(),
            tenant: "t".into(),
            active: true,
            blueprint_updated_at: None,
            presets: BTreeMap::new(),
            retired_plans: vec![],
        }
    }

    #[test]
    fn a_service_serializes_without_empty_optional_objects() {
        let json = serde_json::to_value(&entry().service).unwrap();
        let plan = &json["plans"][0];
        for absent in ["maintenance_info", "metadata", "schemas", "bindable"] {
            assert!(plan.get(absent).is_none(), "{absent} must be omitted");
        }
        assert!(json.get("tags").is_none());
        assert_eq!(plan["free"], true);
    }

    #[test]
    fn a_plan_no_longer_declared_is_retired_with_its_presets_and_found_only_for_instances() {
        let previous = {
            let mut e = entry();
            let mut gold = e.service.plans[0].clone();
            gold.id = plan_id_for(&DEFAULT_ID_NAMESPACE, "t", "b", "gold");
            gold.name = "gold".into();
            e.presets.insert(
                gold.id.clone(),
                serde_json::json!({"size": "xl"})
                    .as_object()
                    .unwrap()
                    .clone(),
            );
            e.service.plans.push(gold);
            e
        };
        let gold = previous.service.plans[1].id.clone();
        let mut next = entry();
        next.retire_plans_from(&previous);
        assert_eq!(next.service.plans.len(), 1, "not served");
        assert_eq!(next.retired_plans.len(), 1);
        assert!(
            next.plan(&gold).is_none(),
            "no new instances or plan changes"
        );
        assert_eq!(
            next.instance_plan(&gold).map(|p| p.name.as_str()),
            Some("gold")
        );
        assert_eq!(next.presets[&gold]["size"], "xl");
        assert!(
            serde_json::to_value(&next.service)
                .unwrap()
                .to_string()
                .find("gold")
                .is_none()
        );
        // Still retired on the next sync; active again once declared again.
        let mut again = entry();
        again.retire_plans_from(&next);
        assert_eq!(again, next);
        let mut back = previous.clone();
        back.retire_plans_from(&next);
        assert!(back.retired_plans.is_empty());
        assert!(back.plan(&gold).is_some());
    }

    #[test]
    fn inactive_entries_are_hidden_from_the_served_catalog() {
        let mut hidden = entry();
        hidden.active = false;
        let c = Catalog {
            version: 1,
            entries: vec![hidden.clone()],
        };
        assert!(c.active_services().is_empty());
        assert!(c.entry(&hidden.service.id).is_some());
    }
}
