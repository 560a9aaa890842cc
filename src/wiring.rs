//! Builds the broker from [`Config`]: opens the store, connects the orchestrator and the
//! binders. This is the one place where adapters meet the configuration; each adapter
//! wires itself in its own function below with a few lines. A backend that is not
//! configured is left out (its routes answer 503 naming it); start-up never waits on one.

use std::sync::Arc;

use secrecy::SecretString;

use crate::adapters::cloudify::{
    CaCert, CloudifyConfig, CloudifyCredentials, CloudifyOrchestrator,
};
use crate::adapters::memory::MemoryStore;
use crate::adapters::outputs::OutputsBinder;
use crate::adapters::sqlite::SqliteStore;
use crate::adapters::vault::{VaultAuth, VaultBinder, VaultSettings};
use crate::config::{Config, StoreLocation};
use crate::domain::broker::Broker;
use crate::domain::ports::{BinderRegistry, Orchestrator, Store};
use crate::http::{ApiState, BasicAuth};

/// Why the process cannot start (bad or incomplete configuration).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct StartupError(pub String);

/// The broker with every configured adapter.
pub async fn build_broker(config: &Config) -> Result<Broker, StartupError> {
    let store = open_store(&config.store).await?;
    let orchestrator = orchestrator(config)?;
    let mut binders = binders(config)?;
    if let Some(o) = &orchestrator {
        with_orchestrator(&mut binders, o);
    }
    Ok(Broker::new(
        store,
        orchestrator,
        binders,
        config.broker_settings(),
    ))
}

/// Opens the store named by `--store`.
pub async fn open_store(location: &StoreLocation) -> Result<Arc<dyn Store>, StartupError> {
    match location {
        StoreLocation::Memory => {
            tracing::warn!("using the in-memory store: nothing survives a restart");
            Ok(Arc::new(MemoryStore::new()))
        }
        StoreLocation::Sqlite(path) => {
            let store = SqliteStore::open(path).map_err(|e| {
                StartupError(format!(
                    "cannot open the SQLite store {}: {e}",
                    path.display()
                ))
            })?;
            Ok(Arc::new(store))
        }
        #[cfg(feature = "aws")]
        StoreLocation::DynamoDb(table) => Ok(Arc::new(
            crate::adapters::dynamodb::DynamoStore::from_env(table.as_str()).await,
        )),
        #[cfg(not(feature = "aws"))]
        StoreLocation::DynamoDb(_) => Err(no_dynamodb()),
    }
}

/// The refusal of `dynamodb:` stores by a build without the `aws` feature.
#[cfg(not(feature = "aws"))]
pub fn no_dynamodb() -> StartupError {
    StartupError("this build has no DynamoDB store (built without the `aws` feature)".into())
}

/// The Cloudify orchestrator, when `--cloudify-url` is set. An unusable Cloudify
/// configuration does not stop start-up: it is logged and the Cloudify routes answer 503.
pub fn orchestrator(config: &Config) -> Result<Option<Arc<dyn Orchestrator>>, StartupError> {
    match cloudify_orchestrator(config) {
        Ok(o) => Ok(o.map(|o| Arc::new(o) as Arc<dyn Orchestrator>)),
        Err(e) => {
            tracing::error!(error = %e, "Cloudify is not usable; Cloudify routes answer 503");
            Ok(None)
        }
    }
}

/// The Cloudify adapter from `--cloudify-*`; `None` without `--cloudify-url`.
pub fn cloudify_orchestrator(
    config: &Config,
) -> Result<Option<CloudifyOrchestrator>, StartupError> {
    let Some(url) = &config.cloudify_url else {
        return Ok(None);
    };
    let mut c = CloudifyConfig::new(url.clone());
    c.tenant = config.cloudify_tenant.clone();
    c.credentials = match (
        &config.cloudify_username,
        &config.cloudify_password,
        &config.cloudify_token,
    ) {
        (_, _, Some(token)) => CloudifyCredentials::Token(token.clone()),
        (Some(username), Some(password), None) => CloudifyCredentials::Basic {
            username: username.clone(),
            password: password.clone(),
        },
        (None, None, None) => CloudifyCredentials::None,
        _ => {
            return Err(StartupError(
                "--cloudify-username and --cloudify-password go together (or use --cloudify-token)"
                    .into(),
            ));
        }
    };
    c.ca_cert = config.cloudify_ca_cert.clone().map(CaCert::File);
    c.insecure = config.cloudify_insecure;
    c.request_timeout = c.request_timeout.min(config.cloudify_timeout);
    c.retry.total_budget = c.retry.total_budget.min(config.cloudify_timeout);
    CloudifyOrchestrator::new(c)
        .map(Some)
        .map_err(|e| StartupError(format!("Cloudify configuration: {e}")))
}

/// The binders, by name; `vault` when `--vault-addr` is set, and always `outputs` (it needs
/// no backend of its own; [`with_orchestrator`] lets it read outputs for fetch binding).
pub fn binders(config: &Config) -> Result<BinderRegistry, StartupError> {
    let mut registry = BinderRegistry::new();
    registry.register(Arc::new(OutputsBinder::new(None)));
    if let Some(binder) = vault_binder(config)? {
        registry.register(Arc::new(binder));
    }
    Ok(registry)
}

/// Gives the binders that read from Cloudify (`outputs`, for fetch binding) the process's
/// orchestrator.
pub fn with_orchestrator(registry: &mut BinderRegistry, orchestrator: &Arc<dyn Orchestrator>) {
    registry.register(Arc::new(OutputsBinder::new(Some(orchestrator.clone()))));
}

/// The Vault binder, when `--vault-addr` and a way to log in are set. Makes no request (the
/// first request logs in): an unreachable Vault never blocks start-up.
pub fn vault_binder(config: &Config) -> Result<Option<VaultBinder>, StartupError> {
    let Some(addr) = config.vault_addr.as_ref().filter(|a| !a.trim().is_empty()) else {
        return Ok(None);
    };
    let Some(auth) = vault_auth(config)? else {
        tracing::warn!(
            "--vault-addr without a Vault login (VAULT_TOKEN, VAULT_ROLE_ID + VAULT_SECRET_ID \
             or VAULT_AWS_ROLE): no vault binder; bind answers 503"
        );
        return Ok(None);
    };
    tracing::info!(method = auth.method(), "Vault binder configured");
    let mut settings = VaultSettings::new(addr.clone(), auth);
    settings.kv_mount = config.vault_kv_mount.clone();
    VaultBinder::new(settings)
        .map(Some)
        .map_err(|e| StartupError(format!("the Vault settings are not usable: {e}")))
}

/// How the broker logs in to Vault: a token if given, else AppRole, else AWS IAM; `None`
/// when none is configured. A half-configured AppRole pair is an error whatever else is set.
pub fn vault_auth(config: &Config) -> Result<Option<VaultAuth>, StartupError> {
    use secrecy::ExposeSecret;
    let given = |v: &Option<String>| v.as_ref().filter(|s| !s.trim().is_empty()).cloned();
    let token = config
        .vault_token
        .as_ref()
        .filter(|t| !t.expose_secret().trim().is_empty());
    let role_id = given(&config.vault_role_id);
    let secret_id = config
        .vault_secret_id
        .as_ref()
        .filter(|t| !t.expose_secret().trim().is_empty());
    let aws_role = given(&config.vault_aws_role);
    let mount = given(&config.vault_auth_mount);
    let approle = match (role_id, secret_id) {
        (Some(role_id), Some(secret_id)) => Some((role_id, secret_id.clone())),
        (None, None) => None,
        (Some(_), None) => {
            return Err(StartupError(
                "VAULT_ROLE_ID (--vault-role-id) is set without VAULT_SECRET_ID \
                 (--vault-secret-id): AppRole needs both"
                    .into(),
            ));
        }
        (None, Some(_)) => {
            return Err(StartupError(
                "VAULT_SECRET_ID (--vault-secret-id) is set without VAULT_ROLE_ID \
                 (--vault-role-id): AppRole needs both"
                    .into(),
            ));
        }
    };
    if let Some(token) = token {
        if approle.is_some() || aws_role.is_some() {
            tracing::warn!("VAULT_TOKEN is set: the Vault AppRole / AWS IAM settings are unused");
        }
        return Ok(Some(VaultAuth::Token(token.clone())));
    }
    if let Some((role_id, secret_id)) = approle {
        if aws_role.is_some() {
            tracing::warn!("AppRole is configured: VAULT_AWS_ROLE is unused");
        }
        return Ok(Some(VaultAuth::AppRole {
            mount: mount
                .unwrap_or_else(|| crate::adapters::vault::auth::DEFAULT_APPROLE_MOUNT.into()),
            role_id: SecretString::from(role_id),
            secret_id,
        }));
    }
    let Some(role) = aws_role else {
        return Ok(None);
    };
    aws_iam_auth(config, role, mount).map(Some)
}

#[cfg(feature = "aws")]
fn aws_iam_auth(
    config: &Config,
    role: String,
    mount: Option<String>,
) -> Result<VaultAuth, StartupError> {
    let given = |v: &Option<String>| v.as_ref().filter(|s| !s.trim().is_empty()).cloned();
    let mut iam = crate::adapters::vault::AwsIam::new(role);
    if let Some(mount) = mount {
        iam.mount = mount;
    }
    iam.server_id = given(&config.vault_aws_iam_server_id);
    iam.sts_region = given(&config.vault_aws_sts_region);
    Ok(VaultAuth::AwsIam(iam))
}

#[cfg(not(feature = "aws"))]
fn aws_iam_auth(
    _config: &Config,
    _role: String,
    _mount: Option<String>,
) -> Result<VaultAuth, StartupError> {
    Err(StartupError(
        "VAULT_AWS_ROLE needs the AWS IAM login, which this build lacks (built without the \
         `aws` feature): use VAULT_TOKEN or AppRole"
            .into(),
    ))
}

/// The router's state: the broker and the platform's credentials (required).
pub fn api_state(config: &Config, broker: Broker) -> Result<ApiState, StartupError> {
    let (Some(username), Some(password)) = (&config.username, &config.password) else {
        return Err(StartupError(
            "--username and --password (BROKER_USERNAME, BROKER_PASSWORD) are required".into(),
        ));
    };
    let mut auth = BasicAuth::new(username, password);
    match (&config.username_next, &config.password_next) {
        (Some(u), Some(p)) => auth = auth.with_next(u, p),
        (None, None) => {}
        _ => {
            return Err(StartupError(
                "--username-next and --password-next go together".into(),
            ));
        }
    }
    Ok(ApiState::new(Arc::new(broker), auth).with_deadline(config.cloudify_timeout))
}

/// A secret from the configuration, for adapters that need one.
pub fn required_secret<'a>(
    value: &'a Option<SecretString>,
    name: &str,
) -> Result<&'a SecretString, StartupError> {
    value
        .as_ref()
        .ok_or_else(|| StartupError(format!("{name} is required")))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The config from `args` only: Vault settings that come from the test's environment
    /// (tests/run exports VAULT_TOKEN) are cleared unless `args` name them.
    fn config(args: &[&str]) -> Config {
        let mut argv = vec!["x", "--vault-addr", "http://127.0.0.1:8200"];
        argv.extend_from_slice(args);
        let mut c = Config::try_parse_from(argv).unwrap();
        let given = |flag: &str| args.contains(&flag);
        if !given("--vault-token") {
            c.vault_token = None;
        }
        if !given("--vault-role-id") {
            c.vault_role_id = None;
        }
        if !given("--vault-secret-id") {
            c.vault_secret_id = None;
        }
        if !given("--vault-aws-role") {
            c.vault_aws_role = None;
        }
        if !given("--vault-auth-mount") {
            c.vault_auth_mount = None;
        }
        c
    }

    fn method(args: &[&str]) -> Option<&'static str> {
        vault_auth(&config(args)).unwrap().map(|a| a.method())
    }

    #[test]
    fn vault_login_precedence_is_token_then_approle_then_iam() {
        let all = [
            "--vault-token",
            "t",
            "--vault-role-id",
            "r",
            "--vault-secret-id",
            "s",
            "--vault-aws-role",
            "broker",
        ];
        assert_eq!(method(&all), Some("token"));
        assert_eq!(method(&all[2..]), Some("approle"));
        #[cfg(feature = "aws")]
        assert_eq!(method(&all[6..]), Some("aws"));
        #[cfg(not(feature = "aws"))]
        assert!(vault_auth(&config(&all[6..])).is_err());
        assert_eq!(method(&[]), None);
        assert!(vault_binder(&config(&[])).unwrap().is_none());
        assert!(vault_binder(&config(&all[2..6])).unwrap().is_some());
    }

    #[test]
    fn a_half_configured_approle_pair_stops_start_up_and_names_the_missing_half() {
        for (args, missing) in [
            (vec!["--vault-role-id", "r"], "VAULT_SECRET_ID"),
            (vec!["--vault-secret-id", "s"], "VAULT_ROLE_ID"),
            (
                vec!["--vault-token", "t", "--vault-secret-id", "s"],
                "VAULT_ROLE_ID",
            ),
        ] {
            let err = vault_auth(&config(&args)).unwrap_err().to_string();
            assert!(err.contains(&format!("without {missing}")), "{err}");
            assert!(!err.contains("\"s\""), "{err}");
        }
    }

    #[test]
    fn empty_settings_count_as_absent_and_the_auth_mount_applies() {
        assert_eq!(method(&["--vault-token", "", "--vault-aws-role", ""]), None);
        let auth = vault_auth(&config(&[
            "--vault-role-id",
            "r",
            "--vault-secret-id",
            "s",
            "--vault-auth-mount",
            "fleet",
        ]))
        .unwrap()
        .unwrap();
        assert!(
            matches!(&auth, VaultAuth::AppRole { mount, .. } if mount == "fleet"),
            "{auth:?}"
        );
        let bad = config(&[
            "--vault-role-id",
            "r",
            "--vault-secret-id",
            "s",
            "--vault-auth-mount",
            "../sys",
        ]);
        let err = vault_binder(&bad).unwrap_err().to_string();
        assert!(err.contains("auth mount"), "{err}");
    }
}
