//! The binder config's expression language (DESIGN.md §6, `schemas/binder-config.md`).
//!
//! The document is parsed as JSON first; only then are expressions substituted, and only
//! inside string values, so no value can change the document's structure. Recognised
//! expressions: `{{ outputs.NAME[.KEY…] }}`, `{{ instance.id }}`, `{{ instance.deployment_id }}`,
//! `{{ binding.id }}`, `{{ parameters.NAME[.KEY…] }}`, `{{ context.namespace }}` (and any other
//! `context.KEY`). Any other `{{ … }}` (Vault's own `{{name}}`, `{{password}}`, `{{username}}`)
//! is left as it is. Substituted text is never scanned again. Values substituted into fields
//! that Vault or the database interpret (connection URL, SQL statements) are checked so that
//! they cannot smuggle in Vault templates, quotes or statement separators.
//!
//! Pure: no I/O; must not import reqwest.

use serde_json::{Map, Value};

use crate::domain::error::BinderError;

/// What expressions can refer to.
#[derive(Debug, Clone, Copy)]
pub struct Scope<'a> {
    pub outputs: &'a Map<String, Value>,
    pub instance_id: &'a str,
    pub deployment_id: &'a str,
    pub binding_id: Option<&'a str>,
    pub parameters: &'a Map<String, Value>,
    /// The platform's context object (`context.namespace` …), if any.
    pub context: Option<&'a Value>,
}

/// How strictly a substituted value is checked, by where it lands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    /// Plain data (credentials handed to the platform): anything goes.
    Data,
    /// A value Vault reads (admin username/password, names): no Vault template delimiters, no
    /// control characters.
    Vault,
    /// A Go MySQL-style DSN or URL Vault connects with: as `Vault`, and none of
    /// `@ / ( ) ? #` or whitespace, so a value cannot move the host, user or database.
    Dsn,
    /// An SQL statement Vault runs: as `Vault`, and none of `' " \` ; \\` , so a value cannot
    /// close a quote or add a statement.
    Sql,
}

impl Field {
    fn name(self) -> &'static str {
        match self {
            Self::Data => "credentials",
            Self::Vault => "a Vault setting",
            Self::Dsn => "the connection URL",
            Self::Sql => "an SQL statement",
        }
    }

    fn allows(self, value: &str) -> bool {
        if self == Self::Data {
            return true;
        }
        if value.contains("{{") || value.contains("}}") || value.chars().any(char::is_control) {
            return false;
        }
        match self {
            Self::Data | Self::Vault => true,
            Self::Dsn => !value
                .chars()
                .any(|c| c.is_whitespace() || matches!(c, '@' | '/' | '(' | ')' | '?' | '#')),
            Self::Sql => !value
                .chars()
                .any(|c| matches!(c, '\'' | '"' | '`' | ';' | '\\')),
        }
    }
}

/// Renders every string inside `doc`, choosing the check for each string by its JSON path
/// with `field_of`. Object keys are never rendered.
pub fn render_document(
    doc: &Value,
    scope: &Scope<'_>,
    field_of: &dyn Fn(&[&str]) -> Field,
) -> Result<Value, BinderError> {
    let mut path = Vec::new();
    render_value(doc, scope, field_of, &mut path)
}

fn render_value<'v>(
    value: &'v Value,
    scope: &Scope<'_>,
    field_of: &dyn Fn(&[&str]) -> Field,
    path: &mut Vec<&'v str>,
) -> Result<Value, BinderError> {
    Ok(match value {
        Value::String(s) => Value::String(render_str(s, scope, field_of(path))?),
        Value::Array(items) => Value::Array(
            items
                .iter()
                .map(|v| render_value(v, scope, field_of, path))
                .collect::<Result<_, _>>()?,
        ),
        Value::Object(map) => {
            let mut out = Map::with_capacity(map.len());
            for (k, v) in map {
                path.push(k.as_str());
                let rendered = render_value(v, scope, field_of, path);
                path.pop();
                out.insert(k.clone(), rendered?);
            }
            Value::Object(out)
        }
        other => other.clone(),
    })
}

/// Renders one string: recognised expressions are replaced, everything else is copied.
pub fn render_str(input: &str, scope: &Scope<'_>, field: Field) -> Result<String, BinderError> {
    map_expressions(input, |inner| {
        let Some(expr) = parse_expression(inner) else {
            return Ok(None);
        };
        let value = lookup(&expr, scope)?;
        if !field.allows(&value) {
            return Err(BinderError::Config(format!(
                "the value of {{{{ {} }}}} contains characters that are not allowed in {}",
                expr.shown(),
                field.name()
            )));
        }
        Ok(Some(value))
    })
}

/// Copies `input`, handing the inside of each `{{ … }}` to `replace`: `Some(text)` stands in
/// for the whole expression, `None` keeps it as written. An unclosed `{{` is copied as text.
/// Rendering and the legacy conversion (`legacy::convert_str`) both scan strings with it.
pub fn map_expressions(
    input: &str,
    mut replace: impl FnMut(&str) -> Result<Option<String>, BinderError>,
) -> Result<String, BinderError> {
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else {
            out.push_str(&rest[start..]);
            return Ok(out);
        };
        let inner = &after[..end];
        match replace(inner)? {
            Some(text) => out.push_str(&text),
            None => {
                out.push_str("{{");
                out.push_str(inner);
                out.push_str("}}");
            }
        }
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

#[derive(Debug)]
struct Expression<'a> {
    root: &'a str,
    segments: Vec<&'a str>,
}

impl Expression<'_> {
    fn shown(&self) -> String {
        let mut s = self.root.to_owned();
        for seg in &self.segments {
            s.push('.');
            s.push_str(seg);
        }
        s
    }
}

const ROOTS: &[&str] = &["outputs", "instance", "binding", "parameters", "context"];

/// `root.seg[.seg…]` with a known root; segments are `[A-Za-z0-9_-]+`. Anything else is not
/// ours (Vault's `{{name}}`, Go templates like `{{.RoleName | truncate 10}}`).
fn parse_expression(inner: &str) -> Option<Expression<'_>> {
    let text = inner.trim();
    let mut parts = text.split('.');
    let root = parts.next()?;
    if !ROOTS.contains(&root) {
        return None;
    }
    let segments: Vec<&str> = parts.collect();
    let valid = !segments.is_empty()
        && segments.iter().all(|s| {
            !s.is_empty()
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        });
    valid.then_some(Expression { root, segments })
}

fn lookup(expr: &Expression<'_>, scope: &Scope<'_>) -> Result<String, BinderError> {
    let unknown = || {
        BinderError::Config(format!(
            "unknown expression {{{{ {} }}}} in the binder config",
            expr.shown()
        ))
    };
    match expr.root {
        "instance" => match expr.segments.as_slice() {
            ["id"] => Ok(scope.instance_id.to_owned()),
            ["deployment_id"] => Ok(scope.deployment_id.to_owned()),
            _ => Err(unknown()),
        },
        "binding" => match (expr.segments.as_slice(), scope.binding_id) {
            (["id"], Some(id)) => Ok(id.to_owned()),
            (["id"], None) => Err(BinderError::Config(
                "{{ binding.id }} cannot be used where no binding is known".into(),
            )),
            _ => Err(unknown()),
        },
        "outputs" => {
            let name = expr.segments[0];
            let top = scope
                .outputs
                .get(name)
                .ok_or_else(|| BinderError::MissingOutput(name.to_owned()))?;
            let value = descend(top, &expr.segments[1..])
                .ok_or_else(|| BinderError::MissingOutput(expr.segments.join(".")))?;
            Ok(value_text(value))
        }
        "parameters" => {
            let missing = || {
                BinderError::Config(format!(
                    "the binder config needs bind parameter {:?}, which the request lacks",
                    expr.segments.join(".")
                ))
            };
            let top = scope.parameters.get(expr.segments[0]).ok_or_else(missing)?;
            descend(top, &expr.segments[1..])
                .map(value_text)
                .ok_or_else(missing)
        }
        "context" => scope
            .context
            .and_then(|c| descend(c, &expr.segments))
            .map(value_text)
            .ok_or_else(|| {
                BinderError::Config(format!(
                    "the binder config needs context.{}, which the platform did not send",
                    expr.segments.join(".")
                ))
            }),
        _ => Err(unknown()),
    }
}

fn descend<'v>(mut value: &'v Value, segments: &[&str]) -> Option<&'v Value> {
    for seg in segments {
        value = match value {
            Value::Object(map) => map.get(*seg)?,
            Value::Array(items) => items.get(seg.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(value)
}

/// Text of a JSON value inside a string: strings as they are, numbers and booleans as
/// written in JSON, null as empty, arrays and objects as compact JSON.
pub fn value_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn outputs() -> Map<String, Value> {
        json!({
            "mysql_ip": "10.0.0.5",
            "port": 3306,
            "ha": true,
            "nothing": null,
            "nested": {"a": {"b": "deep"}},
            "list": ["x", "y"],
            "evil_quote": "x\", \"injected\": \"yes",
            "evil_brace": "}}, {\"k\": 1} {{",
            "evil_template": "{{ outputs.mysql_ip }}",
            "vault_template": "{{password}}",
            "sql": "db'; DROP USER root; --",
        })
        .as_object()
        .cloned()
        .unwrap()
    }

    fn with_scope<T>(f: impl FnOnce(&Scope<'_>) -> T) -> T {
        let outputs = outputs();
        let parameters = json!({"schema": "app", "size": 3})
            .as_object()
            .cloned()
            .unwrap();
        let context = json!({"platform": "kubernetes", "namespace": "team-a"});
        let scope = Scope {
            outputs: &outputs,
            instance_id: "inst-1",
            deployment_id: "osb-inst-1",
            binding_id: Some("bind-1"),
            parameters: &parameters,
            context: Some(&context),
        };
        f(&scope)
    }

    fn data(s: &str) -> Result<String, BinderError> {
        with_scope(|scope| render_str(s, scope, Field::Data))
    }

    #[test]
    fn every_expression_kind_is_substituted() {
        assert_eq!(
            data("{{ outputs.mysql_ip }}:{{outputs.port}}/{{ instance.id }}/{{ instance.deployment_id }}/{{ binding.id }}/{{ parameters.schema }}/{{ context.namespace }}").unwrap(),
            "10.0.0.5:3306/inst-1/osb-inst-1/bind-1/app/team-a"
        );
    }

    #[test]
    fn vault_templates_pass_through_untouched() {
        let s = "CREATE USER '{{name}}'@'%' IDENTIFIED BY '{{password}}'; -- {{ username }} {{.RoleName | truncate 10}} {{expiration}}";
        assert_eq!(data(s).unwrap(), s);
        assert_eq!(
            data("{{username}}:{{password}}@tcp({{ outputs.mysql_ip }}:3306)/").unwrap(),
            "{{username}}:{{password}}@tcp(10.0.0.5:3306)/"
        );
    }

    #[test]
    fn unknown_roots_and_odd_delimiters_are_copied() {
        for s in [
            "{{ foo.bar }}",
            "{{ outputs }}",
            "{{ outputs. }}",
            "{{",
            "a }} b",
            "{{ x",
            "{{}}",
        ] {
            assert_eq!(data(s).unwrap(), s, "{s}");
        }
    }

    #[test]
    fn a_missing_output_is_an_error_naming_it() {
        let err = data("{{ outputs.db_host }}").unwrap_err();
        assert!(matches!(&err, BinderError::MissingOutput(n) if n == "db_host"));
        assert!(err.to_string().contains("db_host"));
        let err = data("{{ outputs.nested.a.c }}").unwrap_err();
        assert!(matches!(&err, BinderError::MissingOutput(n) if n == "nested.a.c"));
    }

    #[test]
    fn unknown_instance_fields_missing_parameters_and_context_are_config_errors() {
        for s in [
            "{{ instance.secret }}",
            "{{ binding.name }}",
            "{{ parameters.nope }}",
            "{{ context.cluster }}",
        ] {
            assert!(matches!(data(s), Err(BinderError::Config(_))), "{s}");
        }
    }

    #[test]
    fn non_string_outputs_are_rendered_as_text() {
        assert_eq!(data("{{ outputs.port }}").unwrap(), "3306");
        assert_eq!(data("{{ outputs.ha }}").unwrap(), "true");
        assert_eq!(data("[{{ outputs.nothing }}]").unwrap(), "[]");
        assert_eq!(data("{{ outputs.nested.a.b }}").unwrap(), "deep");
        assert_eq!(data("{{ outputs.list.1 }}").unwrap(), "y");
        assert_eq!(data("{{ outputs.list }}").unwrap(), r#"["x","y"]"#);
        assert_eq!(
            data("{{ outputs.nested }}").unwrap(),
            r#"{"a":{"b":"deep"}}"#
        );
        assert_eq!(data("{{ parameters.size }}").unwrap(), "3");
    }

    #[test]
    fn substituted_text_is_never_expanded_again() {
        assert_eq!(
            data("{{ outputs.evil_template }}").unwrap(),
            "{{ outputs.mysql_ip }}"
        );
    }

    #[test]
    fn outputs_with_quotes_braces_or_templates_cannot_alter_the_document_structure() {
        let doc = json!({
            "connection": {"url": "{{username}}:{{password}}@tcp(h:1)/", "username": "admin"},
            "credentials": {
                "values": {
                    "a": "{{ outputs.evil_quote }}",
                    "b": "{{ outputs.evil_brace }}",
                    "c": "pre {{ outputs.evil_template }} post",
                    "d": ["{{ outputs.vault_template }}", 1, null]
                }
            }
        });
        let rendered = with_scope(|scope| render_document(&doc, scope, &|_| Field::Data)).unwrap();
        let values = &rendered["credentials"]["values"];
        assert_eq!(values.as_object().unwrap().len(), 4);
        assert_eq!(values["a"], json!("x\", \"injected\": \"yes"));
        assert_eq!(values["b"], json!("}}, {\"k\": 1} {{"));
        assert_eq!(values["c"], json!("pre {{ outputs.mysql_ip }} post"));
        assert_eq!(values["d"], json!(["{{password}}", 1, null]));
        assert!(rendered.get("injected").is_none());
        assert_eq!(rendered["connection"], doc["connection"]);
        // The same keys everywhere: only string leaves changed.
        fn shape(v: &Value) -> Value {
            match v {
                Value::Object(m) => {
                    Value::Object(m.iter().map(|(k, v)| (k.clone(), shape(v))).collect())
                }
                Value::Array(a) => Value::Array(a.iter().map(shape).collect()),
                Value::String(_) => json!("s"),
                other => other.clone(),
            }
        }
        assert_eq!(shape(&rendered), shape(&doc));
    }

    #[test]
    fn values_reaching_vault_or_sql_cannot_carry_templates_quotes_or_separators() {
        with_scope(|scope| {
            let sql = "GRANT SELECT ON `{{ outputs.X }}`.* TO '{{name}}'@'%'";
            for bad in ["sql", "evil_quote", "vault_template", "evil_template"] {
                let s = sql.replace('X', bad);
                let err = render_str(&s, scope, Field::Sql).unwrap_err();
                assert!(matches!(err, BinderError::Config(_)), "{bad}: {err}");
            }
            assert_eq!(
                render_str(&sql.replace('X', "mysql_ip"), scope, Field::Sql).unwrap(),
                "GRANT SELECT ON `10.0.0.5`.* TO '{{name}}'@'%'"
            );
            let url = "{{username}}:{{password}}@tcp({{ outputs.X }}:3306)/";
            for bad in ["evil_brace", "vault_template", "sql"] {
                assert!(
                    render_str(&url.replace('X', bad), scope, Field::Dsn).is_err(),
                    "{bad}"
                );
            }
            assert!(render_str(&url.replace('X', "mysql_ip"), scope, Field::Dsn).is_ok());
            assert!(render_str("{{ outputs.vault_template }}", scope, Field::Vault).is_err());
        });
    }

    #[test]
    fn an_error_never_shows_the_rejected_value() {
        let err = with_scope(|scope| render_str("'{{ outputs.sql }}'", scope, Field::Sql))
            .unwrap_err()
            .to_string();
        assert!(!err.contains("DROP"), "{err}");
        assert!(err.contains("outputs.sql"), "{err}");
    }
}
