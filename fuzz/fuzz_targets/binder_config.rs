//! The binder-config renderer (DESIGN.md §6): any document and any deployment output never
//! panic the renderer, and an output can never break out of the SQL quote or the DSN's host.
#![no_main]

use cloudify_osb::adapters::vault::config::BinderConfig;
use cloudify_osb::adapters::vault::template::{Field, Scope, render_str};
use libfuzzer_sys::fuzz_target;
use serde_json::{Map, Value};

// Input: an output value, a 0 byte, then a binder-config document (JSON).
fuzz_target!(|data: &[u8]| {
    let mut parts = data.splitn(2, |b| *b == 0);
    let output = String::from_utf8_lossy(parts.next().unwrap_or_default()).into_owned();
    let doc = parts.next().unwrap_or_default();
    let mut outputs = Map::new();
    for k in ["mysql_ip", "mysql_host", "mysql_port", "database"] {
        outputs.insert(k.to_owned(), Value::String(output.clone()));
    }
    let parameters = Map::new();
    let context = serde_json::json!({"namespace": output});
    let scope = Scope {
        outputs: &outputs,
        instance_id: "inst",
        deployment_id: "osb-inst",
        binding_id: Some("bind"),
        parameters: &parameters,
        context: Some(&context),
    };
    if let Ok(rendered) = render_str(
        "GRANT ALL ON `{{ outputs.database }}`.* TO '{{name}}'",
        &scope,
        Field::Sql,
    ) {
        assert_eq!(rendered.matches('`').count(), 2, "{rendered}");
        assert_eq!(rendered.matches('\'').count(), 2, "{rendered}");
        assert!(!rendered.contains(';'), "{rendered}");
    }
    if let Ok(rendered) = render_str(
        "{{username}}:{{password}}@tcp({{ outputs.mysql_ip }})/",
        &scope,
        Field::Dsn,
    ) {
        assert_eq!(rendered.matches('@').count(), 1, "{rendered}");
        assert_eq!(rendered.matches('(').count(), 1, "{rendered}");
        assert_eq!(rendered.matches('/').count(), 1, "{rendered}");
    }
    if let Ok(doc) = serde_json::from_slice::<Value>(doc) {
        let _ = BinderConfig::render(&doc, &scope);
    }
});
