//! Parameter validation against a plan's schema (DESIGN.md §3b, last check before anything
//! reaches Cloudify or a binder): `schemas.service_instance.create/update.parameters` and
//! `schemas.service_binding.create.parameters` compiled with the
//! `jsonschema` crate (draft-04, the `regex` engine for `pattern`), once per plan and catalog
//! version, and a 400 message naming the offending parameter. Must not import adapter, HTTP
//! or AWS crates.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use jsonschema::error::ValidationErrorKind;
use jsonschema::{PatternOptions, ValidationError, Validator};
use serde_json::{Map, Value};

use super::catalog::Plan;
use super::ids::PlanId;

/// Which of a plan's parameter schemas applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SchemaKind {
    /// `schemas.service_instance.create` (provision).
    Create,
    /// `schemas.service_instance.update` (update).
    Update,
    /// `schemas.service_binding.create` (bind).
    Bind,
}

/// The most errors one 400 lists.
const MAX_REPORTED: usize = 5;

/// A plan's compiled validator per schema kind (`None`: no schema, or it did not compile).
type Compiled = HashMap<(PlanId, SchemaKind), Option<Arc<Validator>>>;

/// Compiled validators of one catalog version, built on first use per plan and kind.
#[derive(Default)]
pub struct ParameterValidators {
    compiled: Mutex<Compiled>,
}

impl std::fmt::Debug for ParameterValidators {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.compiled.lock().map(|m| m.len()).unwrap_or_default();
        f.debug_struct("ParameterValidators")
            .field("compiled", &n)
            .finish()
    }
}

/// The schema of `kind` in `plan`, if the plan declares one.
pub fn plan_schema(plan: &Plan, kind: SchemaKind) -> Option<&Value> {
    let schemas = plan.schemas.as_ref()?;
    let parameters = match kind {
        SchemaKind::Create => schemas.service_instance.as_ref()?.create.as_ref(),
        SchemaKind::Update => schemas.service_instance.as_ref()?.update.as_ref(),
        SchemaKind::Bind => schemas.service_binding.as_ref()?.create.as_ref(),
    };
    parameters.map(|p| &p.parameters)
}

/// Compiles a parameters schema (draft-04 keywords, `regex`-engine patterns, no remote refs).
pub fn compile(schema: &Value) -> Result<Validator, String> {
    jsonschema::draft4::options()
        .with_pattern_options(PatternOptions::regex())
        .build(schema)
        .map_err(|e| e.to_string())
}

impl ParameterValidators {
    pub fn new() -> Self {
        Self::default()
    }

    /// How many validators were compiled (for tests and logs).
    pub fn compiled(&self) -> usize {
        self.compiled
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .filter(|v| v.is_some())
            .count()
    }

    fn validator(&self, plan: &Plan, kind: SchemaKind) -> Option<Arc<Validator>> {
        let key = (plan.id.clone(), kind);
        let mut compiled = self.compiled.lock().unwrap_or_else(PoisonError::into_inner);
        compiled
            .entry(key)
            .or_insert_with(|| {
                let schema = plan_schema(plan, kind)?;
                match compile(schema) {
                    Ok(v) => Some(Arc::new(v)),
                    Err(e) => {
                        // Never an error for the platform: Cloudify validates the inputs again.
                        tracing::warn!(plan_id = %plan.id, error = %e, "plan schema does not compile; parameters not checked");
                        None
                    }
                }
            })
            .clone()
    }

    /// Checks `parameters` against the plan's schema of `kind`; `Err` is a message for a 400
    /// that names each offending parameter. A plan without schema accepts anything.
    pub fn check(
        &self,
        plan: &Plan,
        kind: SchemaKind,
        parameters: &Map<String, Value>,
    ) -> Result<(), String> {
        let Some(validator) = self.validator(plan, kind) else {
            return Ok(());
        };
        let instance = Value::Object(parameters.clone());
        let errors: Vec<String> = validator
            .iter_errors(&instance)
            .take(MAX_REPORTED)
            .map(|e| describe(&e))
            .collect();
        if errors.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "invalid parameters for plan {}: {}",
                plan.name,
                errors.join("; ")
            ))
        }
    }
}

/// One error as `parameter "NAME": what is wrong`.
fn describe(e: &ValidationError<'_>) -> String {
    let path = e.instance_path().as_str();
    let top = path
        .trim_start_matches('/')
        .split('/')
        .next()
        .unwrap_or_default()
        .replace("~1", "/")
        .replace("~0", "~");
    match e.kind() {
        ValidationErrorKind::Required { property } if top.is_empty() => {
            let name = property
                .as_str()
                .map(str::to_owned)
                .unwrap_or_else(|| property.to_string());
            format!("parameter {name:?} is required")
        }
        ValidationErrorKind::AdditionalProperties { unexpected } if top.is_empty() => {
            let names: Vec<String> = unexpected.iter().map(|n| format!("{n:?}")).collect();
            format!(
                "unknown parameter {} (not in this plan's schema)",
                names.join(", ")
            )
        }
        _ if top.is_empty() => format!("parameters: {e}"),
        _ => format!("parameter {top:?}: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::domain::catalog::{InputParameters, Schemas, ServiceInstanceSchemas};
    use crate::domain::ids::{DEFAULT_ID_NAMESPACE, plan_id_for};
    use crate::domain::mapping::inputs_schema;

    fn plan(inputs: Value) -> Plan {
        let inputs = inputs.as_object().unwrap();
        let create = inputs_schema(inputs, &Default::default(), false, &mut Vec::new());
        let update = inputs_schema(inputs, &Default::default(), true, &mut Vec::new());
        Plan {
            id: plan_id_for(&DEFAULT_ID_NAMESPACE, "t", "b", "default"),
            name: "default".into(),
            description: "d".into(),
            free: true,
            bindable: None,
            plan_updateable: None,
            binding_rotatable: None,
            maximum_polling_duration: None,
            maintenance_info: None,
            metadata: None,
            schemas: Some(Schemas {
                service_instance: Some(ServiceInstanceSchemas {
                    create: Some(InputParameters { parameters: create }),
                    update: Some(InputParameters { parameters: update }),
                }),
                service_binding: None,
            }),
        }
    }

    fn params(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    fn db_plan() -> Plan {
        plan(json!({
            "port": {"type": "integer", "default": 3306, "constraints": [{"in_range": [1, 65535]}]},
            "db_name": {"type": "string", "constraints": [{"pattern": "^[a-z_]+$"}]},
            "size": {"type": "string", "default": "small", "constraints": [{"valid_values": ["small", "large"]}]}
        }))
    }

    #[test]
    fn valid_parameters_pass_and_the_validator_is_compiled_once() {
        let p = db_plan();
        let v = ParameterValidators::new();
        for _ in 0..3 {
            v.check(
                &p,
                SchemaKind::Create,
                &params(json!({"db_name": "app", "port": 3307})),
            )
            .unwrap();
        }
        assert_eq!(v.compiled(), 1);
    }

    #[test]
    fn a_wrong_type_names_the_parameter() {
        let e = ParameterValidators::new()
            .check(
                &db_plan(),
                SchemaKind::Create,
                &params(json!({"db_name": "app", "port": "x"})),
            )
            .unwrap_err();
        assert!(e.contains("parameter \"port\""), "{e}");
    }

    #[test]
    fn missing_unknown_and_out_of_range_parameters_are_named() {
        let v = ParameterValidators::new();
        let p = db_plan();
        let e = v
            .check(&p, SchemaKind::Create, &params(json!({})))
            .unwrap_err();
        assert!(e.contains("parameter \"db_name\" is required"), "{e}");
        let e = v
            .check(
                &p,
                SchemaKind::Create,
                &params(json!({"db_name": "a", "colour": 1})),
            )
            .unwrap_err();
        assert!(e.contains("\"colour\""), "{e}");
        let e = v
            .check(
                &p,
                SchemaKind::Create,
                &params(json!({"db_name": "A-1", "size": "huge", "port": 0})),
            )
            .unwrap_err();
        for name in ["db_name", "size", "port"] {
            assert!(e.contains(&format!("parameter \"{name}\"")), "{e}");
        }
    }

    #[test]
    fn the_update_schema_requires_nothing() {
        let v = ParameterValidators::new();
        v.check(
            &db_plan(),
            SchemaKind::Update,
            &params(json!({"size": "large"})),
        )
        .unwrap();
        assert!(
            v.check(&db_plan(), SchemaKind::Update, &params(json!({"size": 1})))
                .is_err()
        );
    }

    #[test]
    fn bind_parameters_are_checked_against_the_binding_schema_only() {
        let mut p = db_plan();
        if let Some(s) = p.schemas.as_mut() {
            s.service_binding = Some(crate::domain::catalog::ServiceBindingSchemas {
                create: Some(InputParameters {
                    parameters: json!({"type": "object", "additionalProperties": false,
                        "properties": {"role": {"type": "string", "enum": ["ro", "rw"]}}}),
                }),
            });
        }
        let v = ParameterValidators::new();
        v.check(&p, SchemaKind::Bind, &params(json!({"role": "ro"})))
            .unwrap();
        let e = v
            .check(&p, SchemaKind::Bind, &params(json!({"role": "admin"})))
            .unwrap_err();
        assert!(e.contains("parameter \"role\""), "{e}");
        let e = v
            .check(&p, SchemaKind::Bind, &params(json!({"port": 1})))
            .unwrap_err();
        assert!(e.contains("unknown parameter \"port\""), "{e}");
        // Without a binding schema, bind parameters are not checked.
        ParameterValidators::new()
            .check(&db_plan(), SchemaKind::Bind, &params(json!({"x": 1})))
            .unwrap();
    }

    #[test]
    fn a_plan_without_schema_accepts_anything() {
        let mut p = db_plan();
        p.schemas = None;
        ParameterValidators::new()
            .check(&p, SchemaKind::Create, &params(json!({"anything": [1]})))
            .unwrap();
    }
}
