//! The `outputs` binder: credentials are allow-listed deployment outputs, nothing else. No
//! Vault, nothing generated, nothing stored: a bind hands out the outputs the service
//! settings name, unbind and deprovision have nothing to remove, and fetch binding reads the
//! outputs again from Cloudify (so it answers the same while the deployment's outputs stay
//! the same). It shows that the Binder port is pluggable, and suits blueprints whose outputs
//! already are what an application needs (a host name, a URL, a public key).
//!
//! Settings: `cloudify-osb service set-binder BLUEPRINT --binder outputs --config
//! NAME[,NAME…]`, the outputs to hand out. The credentials map (servicebinding.io) holds
//! each listed output under its own name (text as in the Vault binder: strings as they are,
//! other JSON compactly), plus `type` (the blueprint ID) and `provider` (`cloudify`) unless
//! an output of that name is listed. A listed output the deployment lacks fails the bind
//! (422, naming it). The binding state keeps the names only, never a value.

use std::sync::Arc;

use async_trait::async_trait;
use serde_json::{Map, Value, json};

use crate::adapters::vault::template::value_text;
use crate::domain::binding::{Binding, Credentials};
use crate::domain::catalog::ServiceSettings;
use crate::domain::error::{BinderError, OrchestratorError};
use crate::domain::instance::Instance;
use crate::domain::ports::{BindContext, Binder, Bound, Orchestrator};

/// Registry name.
pub const NAME: &str = "outputs";

/// Most outputs one service may list.
const MAX_OUTPUTS: usize = 64;

/// Parses the settings' allow-list: `NAME[,NAME…]`, names of `[A-Za-z0-9_.-]` (at most 128
/// characters each), no duplicates, at least one.
pub fn parse_allow_list(config: &str) -> Result<Vec<String>, BinderError> {
    let mut names: Vec<String> = Vec::new();
    for raw in config.split(',') {
        let name = raw.trim();
        let ok = (1..=128).contains(&name.len())
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
        if !ok {
            return Err(BinderError::Config(format!(
                "the outputs binder's config must be output names separated by commas \
                 (letters, digits, '_', '.', '-'); {name:?} is not one"
            )));
        }
        if names.iter().any(|n| n == name) {
            return Err(BinderError::Config(format!(
                "output {name:?} is listed twice in the outputs binder's config"
            )));
        }
        names.push(name.to_owned());
    }
    if names.len() > MAX_OUTPUTS {
        return Err(BinderError::Config(format!(
            "the outputs binder hands out at most {MAX_OUTPUTS} outputs"
        )));
    }
    Ok(names)
}

/// The credentials map from the outputs and the allow-list.
fn credentials_of(
    outputs: &Map<String, Value>,
    names: &[String],
    kind: &str,
) -> Result<Credentials, BinderError> {
    let mut c = Credentials::default();
    c.insert("type", kind);
    c.insert("provider", "cloudify");
    for name in names {
        let value = outputs
            .get(name)
            .ok_or_else(|| BinderError::MissingOutput(name.clone()))?;
        c.insert(name.clone(), value_text(value));
    }
    Ok(c)
}

/// The `outputs` binder. `orchestrator` reads the outputs again for fetch binding; without
/// one (a process that does not reach Cloudify) fetch answers that Cloudify is not
/// configured, while bind (outputs come with the request), unbind and deprovision work.
pub struct OutputsBinder {
    orchestrator: Option<Arc<dyn Orchestrator>>,
}

impl std::fmt::Debug for OutputsBinder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutputsBinder")
            .field("orchestrator", &self.orchestrator.is_some())
            .finish()
    }
}

impl OutputsBinder {
    pub fn new(orchestrator: Option<Arc<dyn Orchestrator>>) -> Self {
        Self { orchestrator }
    }
}

fn state_names(binding: &Binding) -> Result<(Vec<String>, String), BinderError> {
    let damaged = || {
        BinderError::Config(format!(
            "the outputs binder's state of binding {} is damaged",
            binding.id
        ))
    };
    let names = binding
        .binder_state
        .get("outputs")
        .and_then(Value::as_array)
        .ok_or_else(damaged)?
        .iter()
        .map(|v| v.as_str().map(str::to_owned).ok_or_else(damaged))
        .collect::<Result<Vec<_>, _>>()?;
    let kind = binding
        .binder_state
        .get("type")
        .and_then(Value::as_str)
        .ok_or_else(damaged)?
        .to_owned();
    Ok((names, kind))
}

fn orchestrator_error(e: OrchestratorError) -> BinderError {
    match e {
        OrchestratorError::NotFound(m) => {
            BinderError::Rejected(format!("the deployment is gone: {m}"))
        }
        other => BinderError::Unavailable(format!("Cloudify: {other}")),
    }
}

#[async_trait]
impl Binder for OutputsBinder {
    fn name(&self) -> &'static str {
        NAME
    }

    /// Nothing to reach.
    async fn connect(&self) -> Result<(), BinderError> {
        Ok(())
    }

    /// Nothing to prepare; checks the settings.
    async fn configure(&self, ctx: &BindContext<'_>) -> Result<(), BinderError> {
        parse_allow_list(&ctx.settings.binder_config).map(|_| ())
    }

    async fn credentials(&self, ctx: &BindContext<'_>) -> Result<Bound, BinderError> {
        let names = parse_allow_list(&ctx.settings.binder_config)?;
        let kind = ctx.settings.blueprint_id.clone();
        let credentials = credentials_of(ctx.outputs, &names, &kind)?;
        Ok(Bound {
            credentials,
            state: json!({ "outputs": names, "type": kind }),
            lease: None,
        })
    }

    async fn stored_credentials(&self, binding: &Binding) -> Result<Credentials, BinderError> {
        let (names, kind) = state_names(binding)?;
        let orchestrator = self.orchestrator.as_ref().ok_or_else(|| {
            BinderError::Unavailable(
                "the outputs binder reads outputs from Cloudify, which is not configured here"
                    .into(),
            )
        })?;
        let outputs = orchestrator
            .outputs(&binding.instance_id.deployment_id())
            .await
            .map_err(orchestrator_error)?;
        credentials_of(&outputs, &names, &kind)
    }

    /// Nothing was made, nothing to revoke.
    async fn revoke(&self, _binding: &Binding) -> Result<(), BinderError> {
        Ok(())
    }

    /// Nothing was written for the instance.
    async fn remove_instance(
        &self,
        _instance: &Instance,
        _settings: &ServiceSettings,
    ) -> Result<(), BinderError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allow_lists_are_names_separated_by_commas() {
        assert_eq!(
            parse_allow_list("mysql_ip, port ,db.name").unwrap(),
            vec!["mysql_ip", "port", "db.name"]
        );
        for bad in ["", "a,,b", "a b", "a,a", "x/y", "{{ outputs.x }}"] {
            assert!(parse_allow_list(bad).is_err(), "{bad:?}");
        }
        let many: Vec<String> = (0..65).map(|i| format!("o{i}")).collect();
        assert!(parse_allow_list(&many.join(",")).is_err());
    }

    #[test]
    fn credentials_hold_the_listed_outputs_as_text_and_an_output_may_set_type() {
        let outputs: Map<String, Value> = json!({
            "host": "db.example", "port": 3306, "tls": true, "extra": {"a": [1]},
            "secret": "not listed", "type": "mysql"
        })
        .as_object()
        .cloned()
        .unwrap();
        let names: Vec<String> = ["host", "port", "tls", "extra"].map(String::from).into();
        let c = credentials_of(&outputs, &names, "mariadb").unwrap();
        assert_eq!(c.get("host"), Some("db.example"));
        assert_eq!(c.get("port"), Some("3306"));
        assert_eq!(c.get("tls"), Some("true"));
        assert_eq!(c.get("extra"), Some(r#"{"a":[1]}"#));
        assert_eq!(c.get("type"), Some("mariadb"));
        assert_eq!(c.get("provider"), Some("cloudify"));
        assert_eq!(c.get("secret"), None);
        let with_type: Vec<String> = ["host", "type"].map(String::from).into();
        let c = credentials_of(&outputs, &with_type, "mariadb").unwrap();
        assert_eq!(c.get("type"), Some("mysql"));
        let missing: Vec<String> = ["nope"].map(String::from).into();
        assert!(matches!(
            credentials_of(&outputs, &missing, "x"),
            Err(BinderError::MissingOutput(n)) if n == "nope"
        ));
    }
}
