//! Blueprint → service offering mapping (cloudify-api.md §9 "Catalog sync", §10; osb.md §5):
//! which blueprints are offered (`--catalog all|opt-in`), offering and plan names, display
//! metadata and tags from labels and the blueprint's `metadata.osb` block
//! (`schemas/blueprint-metadata.schema.json`), plans with their input presets, and the
//! parameter JSON Schemas (draft-04) built from the blueprint's inputs.
//!
//! Mapping never fails: anything it cannot express (an unknown constraint, a regex the
//! `regex` engine cannot compile, a malformed `metadata.osb` field) is dropped and reported
//! as a warning. Pure functions; must not import adapter, HTTP or AWS crates.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value, json};
use uuid::Uuid;

use super::catalog::{
    CatalogEntry, InputParameters, MaintenanceInfo, Plan, Schemas, Service, ServiceBindingSchemas,
    ServiceInstanceSchemas, ServiceSettings,
};
use super::ids::{plan_id_for, service_id_for};
use super::ports::Blueprint;

/// The name of the one plan of a blueprint that declares none.
pub const DEFAULT_PLAN: &str = "default";

/// Longest offering or plan name (a DNS label; Kubernetes Service Catalog's limit).
pub const MAX_NAME_LEN: usize = 63;

/// Largest parameter schema served (osb.md §5.2).
pub const MAX_SCHEMA_BYTES: usize = 64 * 1024;

/// The `$schema` every parameter schema declares.
pub const DRAFT_04: &str = "http://json-schema.org/draft-04/schema#";

/// Which blueprints become offerings (`--catalog` / `BROKER_CATALOG`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Selection {
    /// Every uploaded blueprint.
    #[default]
    All,
    /// Only blueprints with a `metadata.osb` block or the label `osb=true`.
    OptIn,
}

/// Whether `blueprint` is offered under `selection`.
pub fn selected(blueprint: &Blueprint, selection: Selection) -> bool {
    match selection {
        Selection::All => true,
        Selection::OptIn => {
            blueprint.metadata.get("osb").is_some_and(Value::is_object)
                || blueprint
                    .labels
                    .iter()
                    .any(|(k, v)| k.eq_ignore_ascii_case("osb") && v.eq_ignore_ascii_case("true"))
        }
    }
}

/// Turns a blueprint ID (or a requested name) into an offering or plan name: lower case
/// `[a-z0-9-]`, runs of anything else become one `-`, no leading or trailing `-`, at most
/// `max` characters; `blueprint` if nothing is left.
pub fn sanitize_name(raw: &str, max: usize) -> String {
    sanitize_or(raw, max, "blueprint")
}

fn sanitize_or(raw: &str, max: usize, fallback: &str) -> String {
    let mut out = String::with_capacity(raw.len().min(max));
    for c in raw.chars() {
        let c = c.to_ascii_lowercase();
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            out.push(c);
        } else if !out.is_empty() && !out.ends_with('-') {
            out.push('-');
        }
    }
    out.truncate(max);
    let trimmed = out.trim_end_matches('-');
    if trimmed.is_empty() {
        fallback.chars().take(max).collect()
    } else {
        trimmed.to_owned()
    }
}

/// What an offering's name is made from: `metadata.osb.name` when given, else the blueprint ID.
pub fn name_source(blueprint: &Blueprint) -> &str {
    osb_block(blueprint)
        .and_then(|b| b.get("name"))
        .and_then(Value::as_str)
        .filter(|s| !s.trim().is_empty())
        .unwrap_or(&blueprint.id)
}

/// The offering name with a stable suffix taken from the service ID (`-` + `hex` hex digits),
/// for when the plain name is taken.
pub fn suffixed_name(source: &str, service_id: &str, hex: usize) -> String {
    let tag: String = service_id
        .chars()
        .filter(char::is_ascii_hexdigit)
        .take(hex)
        .collect();
    format!(
        "{}-{tag}",
        sanitize_name(source, MAX_NAME_LEN - tag.len() - 1)
    )
}

/// Assigns unique offering names to `wanted` (service ID → name source), in the order given,
/// keeping each service's `current` name when it is still one of its own candidates and
/// free. Deterministic: the same inputs always give the same names. The plain sanitised name
/// goes to the first claimant; later ones get `-` + 8 (then 12, then 32) hex digits of their
/// service ID.
pub fn assign_names(
    wanted: &[(String, String)],
    current: &BTreeMap<String, String>,
    taken: &mut BTreeSet<String>,
) -> BTreeMap<String, String> {
    let candidates = |id: &str, source: &str| -> Vec<String> {
        let mut v = vec![sanitize_name(source, MAX_NAME_LEN)];
        v.extend([8, 12, 32].map(|n| suffixed_name(source, id, n)));
        v
    };
    let mut names = BTreeMap::new();
    for (id, source) in wanted {
        if let Some(old) = current.get(id) {
            if candidates(id, source).contains(old) && taken.insert(old.clone()) {
                names.insert(id.clone(), old.clone());
            }
        }
    }
    for (id, source) in wanted {
        if names.contains_key(id) {
            continue;
        }
        let all = candidates(id, source);
        let name = all
            .iter()
            .find(|c| !taken.contains(*c))
            .cloned()
            // 32 hex digits of a UUID are unique among services: unreachable in practice.
            .unwrap_or_else(|| all[all.len() - 1].clone());
        taken.insert(name.clone());
        names.insert(id.clone(), name);
    }
    names
}

/// An offering mapped from a blueprint, with what could not be expressed.
#[derive(Debug, Clone, PartialEq)]
pub struct Mapped {
    pub entry: CatalogEntry,
    /// Human-readable notes about dropped constraints or metadata (never fatal).
    pub warnings: Vec<String>,
}

fn osb_block(blueprint: &Blueprint) -> Option<&Map<String, Value>> {
    blueprint.metadata.get("osb").and_then(Value::as_object)
}

/// Service metadata fields (osb.md §5.1 `profile.md` conventions), their `metadata.osb`
/// names and the blueprint label that may set them.
const DISPLAY_FIELDS: &[(&str, &str)] = &[
    ("displayName", "osb-display-name"),
    ("longDescription", "osb-long-description"),
    ("imageUrl", "osb-image-url"),
    ("providerDisplayName", "osb-provider-display-name"),
    ("documentationUrl", "osb-documentation-url"),
    ("supportUrl", "osb-support-url"),
];

/// The label key whose values become tags (repeatable).
pub const TAG_LABEL: &str = "osb-tag";

fn non_empty_str(v: Option<&Value>) -> Option<String> {
    v.and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

fn maintenance_info(
    v: Option<&Value>,
    owner: &str,
    warnings: &mut Vec<String>,
) -> Option<MaintenanceInfo> {
    let m = v?;
    match non_empty_str(m.get("version")) {
        Some(version) => Some(MaintenanceInfo {
            version,
            description: non_empty_str(m.get("description")),
        }),
        None => {
            warnings.push(format!(
                "{owner}: maintenance_info without a version is left out"
            ));
            None
        }
    }
}

fn polling(v: Option<&Value>, owner: &str, warnings: &mut Vec<String>) -> Option<u64> {
    let v = v?;
    match v.as_u64().filter(|n| *n > 0) {
        Some(n) => Some(n),
        None => {
            warnings.push(format!(
                "{owner}: maximum_polling_duration {v} is not a positive integer; left out"
            ));
            None
        }
    }
}

/// Maps one blueprint to its offering named `name` (see [`assign_names`]).
pub fn map_blueprint(
    blueprint: &Blueprint,
    name: String,
    namespace: &Uuid,
    tenant: &str,
    settings: Option<&ServiceSettings>,
) -> Mapped {
    let mut warnings = Vec::new();
    let empty = Map::new();
    let osb = osb_block(blueprint).unwrap_or(&empty);
    if blueprint
        .metadata
        .get("osb")
        .is_some_and(|v| !v.is_object())
    {
        warnings.push("metadata.osb is not an object; ignored".into());
    }
    let label = |key: &str| -> Option<String> {
        blueprint
            .labels
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    };

    let description = non_empty_str(osb.get("description"))
        .or_else(|| {
            blueprint
                .description
                .as_deref()
                .map(str::trim)
                .filter(|d| !d.is_empty())
                .map(str::to_owned)
        })
        .unwrap_or_else(|| format!("Cloudify blueprint {}", blueprint.id));

    let mut metadata = Map::new();
    for (field, label_key) in DISPLAY_FIELDS {
        if let Some(v) = non_empty_str(osb.get(*field)).or_else(|| label(label_key)) {
            metadata.insert((*field).to_owned(), Value::String(v));
        }
    }
    metadata
        .entry("displayName")
        .or_insert_with(|| Value::String(blueprint.id.clone()));

    let mut tags: Vec<String> = Vec::new();
    match osb.get("tags") {
        None => {}
        Some(Value::Array(a)) => {
            for t in a {
                match non_empty_str(Some(t)) {
                    Some(t) => tags.push(t),
                    None => warnings.push(format!("metadata.osb.tags: {t} is not a tag; ignored")),
                }
            }
        }
        Some(other) => warnings.push(format!("metadata.osb.tags: {other} is not a list; ignored")),
    }
    for (k, v) in &blueprint.labels {
        if k.eq_ignore_ascii_case(TAG_LABEL) && !v.trim().is_empty() {
            tags.push(v.trim().to_owned());
        }
    }
    let mut seen = BTreeSet::new();
    tags.retain(|t| seen.insert(t.clone()));

    let service_polling = polling(
        osb.get("maximum_polling_duration"),
        "metadata.osb",
        &mut warnings,
    );
    let service_maintenance =
        maintenance_info(osb.get("maintenance_info"), "metadata.osb", &mut warnings);
    let rotatable = settings.filter(|s| s.binding_rotatable).map(|_| true);
    let service_binding =
        binding_schema(osb.get("binding_parameters"), "metadata.osb", &mut warnings);

    // Plans: declared ones, else one default plan.
    let mut declared: Vec<(String, &Map<String, Value>)> = Vec::new();
    match osb.get("plans") {
        None => {}
        Some(Value::Array(plans)) => {
            let mut names = BTreeSet::new();
            for (i, p) in plans.iter().enumerate() {
                let Some(p) = p.as_object() else {
                    warnings.push(format!("metadata.osb.plans[{i}] is not an object; ignored"));
                    continue;
                };
                let Some(raw) = non_empty_str(p.get("name")) else {
                    warnings.push(format!("metadata.osb.plans[{i}] has no name; ignored"));
                    continue;
                };
                let plan_name = sanitize_or(&raw, MAX_NAME_LEN, DEFAULT_PLAN);
                if !names.insert(plan_name.clone()) {
                    warnings.push(format!(
                        "metadata.osb.plans[{i}]: plan name {plan_name:?} is used twice; ignored"
                    ));
                    continue;
                }
                declared.push((plan_name, p));
            }
        }
        Some(other) => warnings.push(format!(
            "metadata.osb.plans: {other} is not a list; using the default plan"
        )),
    }

    let mut plans = Vec::new();
    let mut presets = BTreeMap::new();
    if declared.is_empty() {
        let (create, update) =
            parameter_schemas(&blueprint.inputs, &BTreeSet::new(), &mut warnings);
        plans.push(Plan {
            id: plan_id_for(namespace, tenant, &blueprint.id, DEFAULT_PLAN),
            name: DEFAULT_PLAN.to_owned(),
            description: format!(
                "Deploys blueprint {} with the given parameters as inputs",
                blueprint.id
            ),
            free: true,
            bindable: None,
            plan_updateable: None,
            binding_rotatable: rotatable,
            maximum_polling_duration: service_polling,
            maintenance_info: service_maintenance.clone(),
            metadata: None,
            schemas: schemas(create, update, service_binding.clone()),
        });
    }
    for (plan_name, p) in declared {
        let owner = format!("plan {plan_name}");
        let id = plan_id_for(namespace, tenant, &blueprint.id, &plan_name);
        let mut preset = Map::new();
        match p.get("inputs") {
            None => {}
            Some(Value::Object(inputs)) => {
                for (k, v) in inputs {
                    if blueprint.inputs.contains_key(k) {
                        preset.insert(k.clone(), v.clone());
                    } else {
                        warnings.push(format!(
                            "{owner}: preset input {k:?} is not an input of the blueprint; ignored"
                        ));
                    }
                }
            }
            Some(other) => {
                warnings.push(format!("{owner}: inputs {other} is not an object; ignored"))
            }
        }
        let bind = match p.get("binding_parameters") {
            None => service_binding.clone(),
            given => binding_schema(given, &owner, &mut warnings),
        };
        let fixed: BTreeSet<String> = preset.keys().cloned().collect();
        let (create, update) = parameter_schemas(&blueprint.inputs, &fixed, &mut warnings);
        let mut plan_metadata = Map::new();
        if let Some(d) = non_empty_str(p.get("displayName")) {
            plan_metadata.insert("displayName".into(), Value::String(d));
        }
        if let Some(Value::Array(b)) = p.get("bullets") {
            let bullets: Vec<Value> = b.iter().filter(|v| v.is_string()).cloned().collect();
            if !bullets.is_empty() {
                plan_metadata.insert("bullets".into(), Value::Array(bullets));
            }
        }
        let free = match p.get("free") {
            None => true,
            Some(Value::Bool(b)) => *b,
            Some(other) => {
                warnings.push(format!(
                    "{owner}: free {other} is not a boolean; true assumed"
                ));
                true
            }
        };
        plans.push(Plan {
            id: id.clone(),
            description: non_empty_str(p.get("description"))
                .unwrap_or_else(|| format!("Plan {plan_name} of blueprint {}", blueprint.id)),
            name: plan_name,
            free,
            bindable: None,
            plan_updateable: None,
            binding_rotatable: rotatable,
            maximum_polling_duration: polling(
                p.get("maximum_polling_duration"),
                &owner,
                &mut warnings,
            )
            .or(service_polling),
            maintenance_info: maintenance_info(p.get("maintenance_info"), &owner, &mut warnings)
                .or_else(|| service_maintenance.clone()),
            metadata: (!plan_metadata.is_empty()).then_some(plan_metadata),
            schemas: schemas(create, update, bind),
        });
        if !preset.is_empty() {
            presets.insert(id, preset);
        }
    }

    let entry = CatalogEntry {
        service: Service {
            id: service_id_for(namespace, tenant, &blueprint.id),
            name,
            description,
            bindable: settings.is_some(),
            tags,
            instances_retrievable: true,
            bindings_retrievable: true,
            plan_updateable: false,
            allow_context_updates: None,
            metadata: Some(metadata),
            plans,
        },
        blueprint_id: blueprint.id.clone(),
        tenant: tenant.to_owned(),
        active: true,
        blueprint_updated_at: blueprint.updated_at.clone(),
        presets,
        retired_plans: Vec::new(),
    };
    let warnings = warnings
        .into_iter()
        .map(|w| format!("blueprint {}: {w}", blueprint.id))
        .collect();
    Mapped { entry, warnings }
}

fn schemas(create: Option<Value>, update: Option<Value>, bind: Option<Value>) -> Option<Schemas> {
    if create.is_none() && update.is_none() && bind.is_none() {
        return None;
    }
    let instance = (create.is_some() || update.is_some()).then(|| ServiceInstanceSchemas {
        create: create.map(|parameters| InputParameters { parameters }),
        update: update.map(|parameters| InputParameters { parameters }),
    });
    Some(Schemas {
        service_instance: instance,
        service_binding: bind.map(|parameters| ServiceBindingSchemas {
            create: Some(InputParameters { parameters }),
        }),
    })
}

/// `binding_parameters` (offering or plan): the JSON Schema of bind parameters, served as
/// `schemas.service_binding.create.parameters`. Draft-04 is assumed (`$schema` added when
/// absent); a value that is not an object, does not compile or exceeds
/// [`MAX_SCHEMA_BYTES`] is left out with a warning (bind parameters are then not checked).
fn binding_schema(v: Option<&Value>, owner: &str, warnings: &mut Vec<String>) -> Option<Value> {
    let v = v?;
    let Some(obj) = v.as_object() else {
        warnings.push(format!(
            "{owner}: binding_parameters is not a JSON Schema object; left out"
        ));
        return None;
    };
    let mut schema = obj.clone();
    schema
        .entry("$schema")
        .or_insert_with(|| json!("http://json-schema.org/draft-04/schema#"));
    let schema = Value::Object(schema);
    if size(&schema) > MAX_SCHEMA_BYTES {
        warnings.push(format!(
            "{owner}: binding_parameters exceeds {MAX_SCHEMA_BYTES} bytes; left out"
        ));
        return None;
    }
    if let Err(e) = super::params::compile(&schema) {
        warnings.push(format!(
            "{owner}: binding_parameters is not a valid JSON Schema ({e}); left out"
        ));
        return None;
    }
    Some(schema)
}

/// The create and update parameter schemas of a plan whose `fixed` inputs are preset. The
/// update schema has no `required` and no defaults (an update sends only what changes). A
/// schema over [`MAX_SCHEMA_BYTES`] loses its descriptions and titles; if still too large it
/// is left out, with a warning.
pub fn parameter_schemas(
    inputs: &Map<String, Value>,
    fixed: &BTreeSet<String>,
    warnings: &mut Vec<String>,
) -> (Option<Value>, Option<Value>) {
    let mut create = inputs_schema(inputs, fixed, false, warnings);
    let mut update = inputs_schema(inputs, fixed, true, &mut Vec::new());
    for schema in [&mut create, &mut update] {
        if size(schema) > MAX_SCHEMA_BYTES {
            strip_texts(schema);
        }
    }
    let fits = |s: Value| (size(&s) <= MAX_SCHEMA_BYTES).then_some(s);
    let (create, update) = (fits(create), fits(update));
    if create.is_none() || update.is_none() {
        warnings.push(format!(
            "the parameter schema exceeds {MAX_SCHEMA_BYTES} bytes; left out"
        ));
    }
    (create, update)
}

fn size(v: &Value) -> usize {
    serde_json::to_vec(v).map(|b| b.len()).unwrap_or(usize::MAX)
}

fn strip_texts(schema: &mut Value) {
    if let Some(props) = schema.get_mut("properties").and_then(Value::as_object_mut) {
        for p in props.values_mut() {
            if let Some(p) = p.as_object_mut() {
                p.remove("description");
                p.remove("title");
            }
        }
    }
}

/// The parameters schema of a set of Cloudify inputs (cloudify-api.md §10): hidden and
/// `fixed` inputs left out, `additionalProperties: false` (plan parameters are exactly the
/// inputs). `for_update` leaves out `required` and defaults.
pub fn inputs_schema(
    inputs: &Map<String, Value>,
    fixed: &BTreeSet<String>,
    for_update: bool,
    warnings: &mut Vec<String>,
) -> Value {
    let mut properties = Map::new();
    let mut required = Vec::new();
    for (name, def) in inputs {
        if fixed.contains(name) {
            continue;
        }
        let empty = Map::new();
        let def = def.as_object().unwrap_or(&empty);
        if def.get("hidden").and_then(Value::as_bool) == Some(true) {
            continue;
        }
        let (mut property, is_required) = input_property(name, def, warnings);
        if for_update {
            property.remove("default");
        } else if is_required {
            required.push(Value::String(name.clone()));
        }
        properties.insert(name.clone(), Value::Object(property));
    }
    let mut schema = Map::new();
    schema.insert("$schema".into(), json!(DRAFT_04));
    schema.insert("type".into(), json!("object"));
    schema.insert("properties".into(), Value::Object(properties));
    if !required.is_empty() {
        schema.insert("required".into(), Value::Array(required));
    }
    schema.insert("additionalProperties".into(), json!(false));
    Value::Object(schema)
}

/// Cloudify input types shown as strings (the object-based types name a Cloudify object).
const STRING_TYPES: &[&str] = &[
    "string",
    "textarea",
    "regex",
    "blueprint_id",
    "deployment_id",
    "secret_key",
    "capability_value",
    "scaling_group",
    "node_id",
    "node_type",
    "node_instance",
    "operation_name",
];

/// The JSON Schema `type` of a Cloudify type name; a custom data type is an object.
fn json_type(cloudify: &str) -> &'static str {
    match cloudify {
        t if STRING_TYPES.contains(&t) => "string",
        "integer" => "integer",
        "float" => "number",
        "boolean" => "boolean",
        "list" => "array",
        _ => "object",
    }
}

/// Names of Cloudify's intrinsic functions: a default using one is not a literal.
const INTRINSICS: &[&str] = &[
    "get_input",
    "get_secret",
    "get_property",
    "get_attribute",
    "get_attributes_list",
    "get_attributes_dict",
    "get_capability",
    "get_environment_capability",
    "get_group_capability",
    "get_label",
    "get_sys",
    "concat",
    "merge",
    "string_find",
    "string_replace",
    "string_lower",
    "string_upper",
    "string_split",
];

/// Whether a value contains no intrinsic function anywhere.
pub fn is_literal(v: &Value) -> bool {
    match v {
        Value::Object(m) => {
            !(m.len() == 1 && m.keys().any(|k| INTRINSICS.contains(&k.as_str())))
                && m.values().all(is_literal)
        }
        Value::Array(a) => a.iter().all(is_literal),
        _ => true,
    }
}

/// One input's property schema and whether it is required (required unless `required:
/// false` or it has a default, literal or not).
pub fn input_property(
    name: &str,
    def: &Map<String, Value>,
    warnings: &mut Vec<String>,
) -> (Map<String, Value>, bool) {
    let mut p = Map::new();
    if let Some(d) = non_empty_str(def.get("display_label")) {
        p.insert("title".into(), Value::String(d));
    }
    if let Some(d) = non_empty_str(def.get("description")) {
        p.insert("description".into(), Value::String(d));
    }
    let cloudify_type = def.get("type").and_then(Value::as_str);
    if let Some(t) = cloudify_type {
        p.insert("type".into(), json!(json_type(t)));
        if t == "list" {
            if let Some(item) = def.get("item_type").and_then(Value::as_str) {
                p.insert("items".into(), json!({"type": json_type(item)}));
            }
        }
    }
    let has_default = def.contains_key("default");
    if let Some(d) = def.get("default").filter(|d| is_literal(d)) {
        p.insert("default".into(), d.clone());
    }
    let kind = match cloudify_type.map(json_type) {
        Some("array") => Sized::Items,
        Some("object") => Sized::Properties,
        _ => Sized::Length,
    };
    let mut extra: Vec<Value> = Vec::new();
    if let Some(constraints) = def.get("constraints") {
        let list: Vec<&Value> = match constraints {
            Value::Array(a) => a.iter().collect(),
            other => vec![other],
        };
        for c in list {
            match constraint_keywords(c, kind) {
                Ok(Some(fragment)) => {
                    // A second bound of the same kind goes into allOf (draft-04 keeps one
                    // `minimum` per schema).
                    if fragment.keys().any(|k| p.contains_key(k)) {
                        extra.push(Value::Object(fragment));
                    } else {
                        p.extend(fragment);
                    }
                }
                Ok(None) => {}
                Err(why) => warnings.push(format!("input {name:?}: constraint {c} dropped: {why}")),
            }
        }
    }
    if !extra.is_empty() {
        p.insert("allOf".into(), Value::Array(extra));
    }
    let required = def.get("required").and_then(Value::as_bool) != Some(false) && !has_default;
    (p, required)
}

#[derive(Clone, Copy)]
enum Sized {
    Length,
    Items,
    Properties,
}

impl Sized {
    fn keywords(self) -> (&'static str, &'static str) {
        match self {
            Self::Length => ("minLength", "maxLength"),
            Self::Items => ("minItems", "maxItems"),
            Self::Properties => ("minProperties", "maxProperties"),
        }
    }
}

/// Constraints without a JSON Schema equivalent, dropped without a warning.
const NO_EQUIVALENT: &[&str] = &[
    "filter_id",
    "labels",
    "tenants",
    "name_pattern",
    "deployment_id",
];

/// The JSON Schema keywords of one Cloudify constraint (`{name: argument}`); `Ok(None)` when
/// Cloudify's constraint has no equivalent; `Err` when it cannot be expressed.
fn constraint_keywords(c: &Value, kind: Sized) -> Result<Option<Map<String, Value>>, String> {
    let Some((key, arg)) = c
        .as_object()
        .filter(|m| m.len() == 1)
        .and_then(|m| m.iter().next())
    else {
        return Err("not a single-key constraint".into());
    };
    let number = |v: &Value| -> Result<Value, String> {
        if v.is_number() {
            Ok(v.clone())
        } else {
            Err(format!("{v} is not a number"))
        }
    };
    let count = |v: &Value| -> Result<Value, String> {
        v.as_u64()
            .map(Value::from)
            .ok_or_else(|| format!("{v} is not a non-negative integer"))
    };
    let mut m = Map::new();
    match key.as_str() {
        "valid_values" => {
            let a = arg.as_array().ok_or("valid_values is not a list")?;
            m.insert("enum".into(), Value::Array(a.clone()));
        }
        "equal" => {
            m.insert("enum".into(), json!([arg]));
        }
        "greater_than" => {
            m.insert("minimum".into(), number(arg)?);
            m.insert("exclusiveMinimum".into(), json!(true));
        }
        "greater_or_equal" => {
            m.insert("minimum".into(), number(arg)?);
        }
        "less_than" => {
            m.insert("maximum".into(), number(arg)?);
            m.insert("exclusiveMaximum".into(), json!(true));
        }
        "less_or_equal" => {
            m.insert("maximum".into(), number(arg)?);
        }
        "in_range" => {
            let pair = arg
                .as_array()
                .filter(|a| a.len() == 2)
                .ok_or("in_range is not a pair")?;
            m.insert("minimum".into(), number(&pair[0])?);
            m.insert("maximum".into(), number(&pair[1])?);
        }
        "length" | "min_length" | "max_length" => {
            let (min, max) = kind.keywords();
            let n = count(arg)?;
            if key != "max_length" {
                m.insert(min.into(), n.clone());
            }
            if key != "min_length" {
                m.insert(max.into(), n);
            }
        }
        "pattern" => {
            let re = arg.as_str().ok_or("pattern is not a string")?;
            regex::Regex::new(re)
                .map_err(|e| format!("the regex engine cannot compile it ({e})"))?;
            m.insert("pattern".into(), Value::String(re.to_owned()));
        }
        k if NO_EQUIVALENT.contains(&k) => return Ok(None),
        other => return Err(format!("unknown constraint {other:?}")),
    }
    Ok(Some(m))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ids::DEFAULT_ID_NAMESPACE;

    fn prop(def: Value) -> (Value, bool, Vec<String>) {
        let mut w = Vec::new();
        let (p, r) = input_property("x", def.as_object().unwrap(), &mut w);
        (Value::Object(p), r, w)
    }

    fn bp(id: &str) -> Blueprint {
        Blueprint {
            id: id.into(),
            tenant: "t".into(),
            description: None,
            inputs: Map::new(),
            metadata: Map::new(),
            labels: vec![],
            updated_at: None,
        }
    }

    // The input → JSON Schema table of cloudify-api.md §10, one test per row.

    #[test]
    fn description_becomes_description_and_display_label_becomes_title() {
        let (p, _, _) =
            prop(json!({"type": "string", "description": " Host ", "display_label": "DB host"}));
        assert_eq!(p["description"], "Host");
        assert_eq!(p["title"], "DB host");
    }

    #[test]
    fn string_like_and_object_based_types_become_string() {
        for t in STRING_TYPES {
            let (p, _, _) = prop(json!({"type": t}));
            assert_eq!(p["type"], "string", "{t}");
        }
    }

    #[test]
    fn integer_float_and_boolean_map_to_their_json_types() {
        assert_eq!(prop(json!({"type": "integer"})).0["type"], "integer");
        assert_eq!(prop(json!({"type": "float"})).0["type"], "number");
        assert_eq!(prop(json!({"type": "boolean"})).0["type"], "boolean");
    }

    #[test]
    fn a_list_becomes_an_array_with_its_item_type() {
        let (p, _, _) = prop(json!({"type": "list", "item_type": "integer"}));
        assert_eq!(p["type"], "array");
        assert_eq!(p["items"], json!({"type": "integer"}));
        assert!(prop(json!({"type": "list"})).0.get("items").is_none());
    }

    #[test]
    fn dict_and_custom_data_types_become_object() {
        assert_eq!(prop(json!({"type": "dict"})).0["type"], "object");
        assert_eq!(prop(json!({"type": "my.types.Db"})).0["type"], "object");
    }

    #[test]
    fn an_input_without_type_accepts_any_value() {
        assert!(
            prop(json!({"description": "anything"}))
                .0
                .get("type")
                .is_none()
        );
    }

    #[test]
    fn required_unless_required_false_or_a_default() {
        assert!(prop(json!({"type": "string"})).1);
        assert!(!prop(json!({"type": "string", "required": false})).1);
        assert!(!prop(json!({"type": "string", "default": "a"})).1);
        assert!(!prop(json!({"type": "string", "default": {"get_secret": "s"}})).1);
    }

    #[test]
    fn only_literal_defaults_are_kept() {
        assert_eq!(prop(json!({"default": 3})).0["default"], 3);
        assert_eq!(
            prop(json!({"default": {"a": [1, 2]}})).0["default"],
            json!({"a": [1, 2]})
        );
        for d in [
            json!({"get_secret": "pw"}),
            json!({"get_input": "other"}),
            json!({"concat": ["a", "b"]}),
            json!({"k": {"get_secret": "pw"}}),
            json!([{"get_input": "x"}]),
        ] {
            assert!(
                prop(json!({"default": d})).0.get("default").is_none(),
                "{d}"
            );
        }
    }

    #[test]
    fn hidden_and_preset_inputs_are_left_out() {
        let inputs = json!({
            "shown": {"type": "string"},
            "secret": {"type": "string", "hidden": true, "default": "x"},
            "size": {"type": "string"}
        });
        let fixed = BTreeSet::from(["size".to_owned()]);
        let s = inputs_schema(inputs.as_object().unwrap(), &fixed, false, &mut Vec::new());
        assert_eq!(s["$schema"], DRAFT_04);
        assert_eq!(s["type"], "object");
        assert_eq!(s["additionalProperties"], false);
        let keys: Vec<&String> = s["properties"].as_object().unwrap().keys().collect();
        assert_eq!(keys, ["shown"]);
        assert_eq!(s["required"], json!(["shown"]));
    }

    #[test]
    fn valid_values_becomes_enum_and_equal_a_one_value_enum() {
        let c = |c: Value| prop(json!({"type": "string", "constraints": [c]})).0;
        assert_eq!(
            c(json!({"valid_values": ["a", "b"]}))["enum"],
            json!(["a", "b"])
        );
        assert_eq!(c(json!({"equal": "a"}))["enum"], json!(["a"]));
    }

    #[test]
    fn bounds_become_minimum_and_maximum_with_exclusive_flags() {
        let c = |c: Value| prop(json!({"type": "integer", "constraints": [c]})).0;
        let gt = c(json!({"greater_than": 1}));
        assert_eq!(
            (gt["minimum"].clone(), gt["exclusiveMinimum"].clone()),
            (json!(1), json!(true))
        );
        let ge = c(json!({"greater_or_equal": 1}));
        assert_eq!(ge["minimum"], 1);
        assert!(ge.get("exclusiveMinimum").is_none());
        let lt = c(json!({"less_than": 9.5}));
        assert_eq!(
            (lt["maximum"].clone(), lt["exclusiveMaximum"].clone()),
            (json!(9.5), json!(true))
        );
        let le = c(json!({"less_or_equal": 9}));
        assert_eq!(le["maximum"], 9);
        assert!(le.get("exclusiveMaximum").is_none());
        let r = c(json!({"in_range": [1, 8]}));
        assert_eq!(
            (r["minimum"].clone(), r["maximum"].clone()),
            (json!(1), json!(8))
        );
    }

    #[test]
    fn a_second_bound_goes_into_all_of() {
        let (p, _, w) = prop(
            json!({"type": "integer", "constraints": [{"greater_or_equal": 1}, {"greater_than": 3}]}),
        );
        assert_eq!(p["minimum"], 1);
        assert_eq!(
            p["allOf"],
            json!([{"minimum": 3, "exclusiveMinimum": true}])
        );
        assert!(w.is_empty());
    }

    #[test]
    fn lengths_apply_to_strings_and_lists() {
        let s =
            prop(json!({"type": "string", "constraints": [{"min_length": 1}, {"max_length": 64}]}))
                .0;
        assert_eq!(
            (s["minLength"].clone(), s["maxLength"].clone()),
            (json!(1), json!(64))
        );
        let l = prop(json!({"type": "list", "constraints": [{"length": 3}]})).0;
        assert_eq!(
            (l["minItems"].clone(), l["maxItems"].clone()),
            (json!(3), json!(3))
        );
    }

    #[test]
    fn a_compilable_pattern_is_kept_and_an_unsupported_one_dropped_with_a_warning() {
        let (p, _, w) = prop(json!({"type": "string", "constraints": [{"pattern": "^[a-z]+$"}]}));
        assert_eq!(p["pattern"], "^[a-z]+$");
        assert!(w.is_empty());
        // Look-ahead: Python accepts it, the `regex` engine does not.
        let (p, _, w) = prop(json!({"type": "string", "constraints": [{"pattern": "^(?=a)a+$"}]}));
        assert!(p.get("pattern").is_none());
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(w[0].contains("regex"), "{w:?}");
    }

    #[test]
    fn object_constraints_are_dropped_silently_and_unknown_ones_with_a_warning() {
        for c in NO_EQUIVALENT {
            let (p, _, w) = prop(json!({"type": "deployment_id", "constraints": [{*c: "x"}]}));
            assert_eq!(p, json!({"type": "string"}));
            assert!(w.is_empty(), "{c}");
        }
        let (_, _, w) = prop(
            json!({"type": "string", "constraints": [{"frobnicate": 1}, {"greater_than": "x"}]}),
        );
        assert_eq!(w.len(), 2, "{w:?}");
    }

    #[test]
    fn the_update_schema_has_no_required_and_no_defaults() {
        let inputs = json!({"a": {"type": "string"}, "b": {"type": "integer", "default": 2}});
        let s = inputs_schema(
            inputs.as_object().unwrap(),
            &BTreeSet::new(),
            true,
            &mut Vec::new(),
        );
        assert!(s.get("required").is_none());
        assert!(s["properties"]["b"].get("default").is_none());
    }

    #[test]
    fn an_oversized_schema_loses_texts_then_is_left_out() {
        let mut inputs = Map::new();
        for i in 0..400 {
            inputs.insert(
                format!("i{i}"),
                json!({"type": "string", "description": "d".repeat(200)}),
            );
        }
        let mut w = Vec::new();
        let (c, _) = parameter_schemas(&inputs, &BTreeSet::new(), &mut w);
        let c = c.unwrap();
        assert!(c["properties"]["i0"].get("description").is_none());
        assert!(w.is_empty());
        for i in 0..4000 {
            inputs.insert(format!("input_{i}"), json!({"type": "string"}));
        }
        let (c, u) = parameter_schemas(&inputs, &BTreeSet::new(), &mut w);
        assert!(c.is_none() && u.is_none());
        assert_eq!(w.len(), 1);
    }

    #[test]
    fn names_are_sanitised_to_dns_labels() {
        assert_eq!(
            sanitize_name("MariaDB_Cluster v2", 63),
            "mariadb-cluster-v2"
        );
        assert_eq!(sanitize_name("__x..y__", 63), "x-y");
        assert_eq!(sanitize_name("ÜÖ", 63), "blueprint");
        assert_eq!(sanitize_name("9lives", 63), "9lives");
        assert_eq!(
            sanitize_name(&format!("{}_tail", "a".repeat(70)), 63).len(),
            63
        );
        assert_eq!(
            sanitize_name(&format!("{}-b", "a".repeat(62)), 63).len(),
            62
        );
    }

    #[test]
    fn colliding_names_are_resolved_deterministically_and_current_names_stay() {
        let ids = |v: &[&str]| -> Vec<(String, String)> {
            v.iter()
                .map(|b| {
                    (
                        service_id_for(&DEFAULT_ID_NAMESPACE, "t", b).to_string(),
                        (*b).to_owned(),
                    )
                })
                .collect()
        };
        let wanted = ids(&["My_DB", "my-db", "my.db"]);
        let a = assign_names(&wanted, &BTreeMap::new(), &mut BTreeSet::new());
        let b = assign_names(&wanted, &BTreeMap::new(), &mut BTreeSet::new());
        assert_eq!(a, b, "deterministic");
        let names: BTreeSet<&String> = a.values().collect();
        assert_eq!(names.len(), 3, "unique: {a:?}");
        assert_eq!(
            a[&wanted[0].0], "my-db",
            "first claimant gets the plain name"
        );
        for (id, _) in &wanted[1..] {
            let n = &a[id];
            assert!(
                n.starts_with("my-db-") && n.len() == "my-db-".len() + 8,
                "{n}"
            );
            assert!(
                n.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            );
        }
        // The holder of "my-db" keeps it even when another claimant comes first.
        let current = BTreeMap::from([(wanted[2].0.clone(), "my-db".to_owned())]);
        let c = assign_names(&wanted, &current, &mut BTreeSet::new());
        assert_eq!(c[&wanted[2].0], "my-db");
        assert_ne!(c[&wanted[0].0], "my-db");
        // A name someone else holds is never reused; long names stay within 63.
        let long = "x".repeat(80);
        let mut taken = BTreeSet::from([sanitize_name(&long, 63)]);
        let d = assign_names(&ids(&[&long]), &BTreeMap::new(), &mut taken);
        let n = d.values().next().unwrap();
        assert_eq!(n.len(), 63);
        assert_ne!(n, &sanitize_name(&long, 63));
    }

    #[test]
    fn opt_in_takes_a_metadata_block_or_the_osb_label() {
        let plain = bp("a");
        let mut meta = bp("b");
        meta.metadata.insert("osb".into(), json!({}));
        let mut label = bp("c");
        label.labels.push(("osb".into(), "true".into()));
        let mut no = bp("d");
        no.labels.push(("osb".into(), "false".into()));
        assert!(selected(&plain, Selection::All));
        assert!(!selected(&plain, Selection::OptIn));
        assert!(selected(&meta, Selection::OptIn));
        assert!(selected(&label, Selection::OptIn));
        assert!(!selected(&no, Selection::OptIn));
    }

    #[test]
    fn metadata_osb_declares_plans_presets_display_fields_and_tags() {
        let mut b = bp("mariadb");
        b.description = Some("from the blueprint".into());
        b.inputs = json!({
            "size": {"type": "string", "constraints": [{"valid_values": ["small", "large"]}]},
            "db_name": {"type": "string"}
        })
        .as_object()
        .unwrap()
        .clone();
        b.labels = vec![
            ("osb-tag".into(), "sql".into()),
            ("osb-support-url".into(), "https://support.example".into()),
        ];
        b.metadata.insert(
            "osb".into(),
            json!({
                "displayName": "MariaDB",
                "tags": ["mariadb", "sql"],
                "maintenance_info": {"version": "1.2.0"},
                "plans": [
                    {"name": "Small", "description": "1 vCPU", "inputs": {"size": "small", "nope": 1}, "bullets": ["1 vCPU"]},
                    {"name": "large", "inputs": {"size": "large"}, "free": false, "maintenance_info": {}},
                    {"name": "small"}
                ]
            }),
        );
        let m = map_blueprint(&b, "mariadb".into(), &DEFAULT_ID_NAMESPACE, "t", None);
        let s = &m.entry.service;
        assert_eq!(s.description, "from the blueprint");
        assert_eq!(s.tags, ["mariadb", "sql"]);
        let md = s.metadata.as_ref().unwrap();
        assert_eq!(md["displayName"], "MariaDB");
        assert_eq!(md["supportUrl"], "https://support.example");
        assert!(!s.bindable && !s.plan_updateable);
        let names: Vec<&str> = s.plans.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["small", "large"]);
        let small = &s.plans[0];
        assert_eq!(
            small.id,
            plan_id_for(&DEFAULT_ID_NAMESPACE, "t", "mariadb", "small")
        );
        assert_eq!(small.maintenance_info.as_ref().unwrap().version, "1.2.0");
        assert_eq!(
            small.metadata.as_ref().unwrap()["bullets"],
            json!(["1 vCPU"])
        );
        assert!(!s.plans[1].free);
        let create = &small
            .schemas
            .as_ref()
            .unwrap()
            .service_instance
            .as_ref()
            .unwrap()
            .create;
        let props = create.as_ref().unwrap().parameters["properties"]
            .as_object()
            .unwrap();
        assert!(props.contains_key("db_name") && !props.contains_key("size"));
        assert_eq!(
            m.entry.presets[&small.id],
            *json!({"size": "small"}).as_object().unwrap()
        );
        // Unknown preset, maintenance_info without version, duplicate plan name.
        assert_eq!(m.warnings.len(), 3, "{:?}", m.warnings);
    }

    #[test]
    fn a_blueprint_without_metadata_gets_one_default_plan_and_a_fallback_description() {
        let m = map_blueprint(&bp("web"), "web".into(), &DEFAULT_ID_NAMESPACE, "t", None);
        let s = &m.entry.service;
        assert_eq!(s.description, "Cloudify blueprint web");
        assert_eq!(s.plans.len(), 1);
        assert_eq!(s.plans[0].name, DEFAULT_PLAN);
        assert!(s.plans[0].maintenance_info.is_none());
        assert!(s.instances_retrievable && s.bindings_retrievable);
        assert!(m.entry.presets.is_empty());
        assert!(m.warnings.is_empty());
    }

    #[test]
    fn the_metadata_schema_file_accepts_the_documented_block_and_rejects_a_nameless_plan() {
        let schema: Value =
            serde_json::from_str(include_str!("../../schemas/blueprint-metadata.schema.json"))
                .unwrap();
        let v = jsonschema::validator_for(&schema).unwrap();
        let good = json!({
            "displayName": "MariaDB",
            "tags": ["mariadb"],
            "maintenance_info": {"version": "1.4.0"},
            "binding_parameters": {"type": "object", "properties": {"role": {"type": "string"}}},
            "plans": [{"name": "small", "inputs": {"flavor": "m1.small"}, "free": true,
                       "binding_parameters": {"type": "object"}}]
        });
        assert!(v.is_valid(&good));
        assert!(!v.is_valid(&json!({"binding_parameters": "role"})));
        assert!(!v.is_valid(&json!({"plans": [{"description": "no name"}]})));
        assert!(!v.is_valid(&json!({"maintenance_info": {}})));
    }

    #[test]
    fn binding_parameters_become_the_binding_schema_of_every_plan_unless_a_plan_sets_its_own() {
        let mut b = bp("mariadb");
        let role = json!({"type": "object", "additionalProperties": false,
            "properties": {"role": {"type": "string", "enum": ["ro", "rw"]}}});
        b.metadata.insert(
            "osb".into(),
            json!({
                "binding_parameters": role,
                "plans": [
                    {"name": "small"},
                    {"name": "open", "binding_parameters": {"type": "object"}},
                    {"name": "broken", "binding_parameters": {"type": "object", "properties": {"x": {"pattern": "(?<=a)b"}}}},
                    {"name": "odd", "binding_parameters": ["not", "a", "schema"]}
                ]
            }),
        );
        let m = map_blueprint(&b, "mariadb".into(), &DEFAULT_ID_NAMESPACE, "t", None);
        let bind = |i: usize| {
            m.entry.service.plans[i]
                .schemas
                .as_ref()
                .and_then(|s| s.service_binding.as_ref())
                .and_then(|b| b.create.as_ref())
                .map(|c| c.parameters.clone())
        };
        let small = bind(0).unwrap();
        assert_eq!(small["properties"]["role"]["enum"], json!(["ro", "rw"]));
        assert_eq!(small["$schema"], "http://json-schema.org/draft-04/schema#");
        assert_eq!(bind(1).unwrap()["type"], "object");
        assert_eq!(bind(2), None, "a schema that does not compile is left out");
        assert_eq!(bind(3), None);
        let warned: Vec<&String> = m
            .warnings
            .iter()
            .filter(|w| w.contains("binding_parameters"))
            .collect();
        assert_eq!(warned.len(), 2, "{:?}", m.warnings);
        // Without binding_parameters no binding schema is served.
        let plain = map_blueprint(&bp("web"), "web".into(), &DEFAULT_ID_NAMESPACE, "t", None);
        let schemas = plain.entry.service.plans[0].schemas.as_ref();
        assert!(schemas.is_none_or(|s| s.service_binding.is_none()));
    }
}
