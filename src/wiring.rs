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
use crate::adapters::sqlite::SqliteStore;
use crate::adapters::vault::{VaultBinder, VaultSettings};
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
    let orchestrator = orchestrator(config).await?;
    let binders = binders(config).await?;
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
pub async fn orchestrator(config: &Config) -> Result<Option<Arc<dyn Orchestrator>>, StartupError> {
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

/// The binders, by name; `vault` when `--vault-addr` is set.
pub async fn binders(config: &Config) -> Result<BinderRegistry, StartupError> {
    let mut registry = BinderRegistry::new();
    if let Some(binder) = vault_binder(config)? {
        registry.register(Arc::new(binder));
    }
    Ok(registry)
}

/// The Vault binder, when `--vault-addr` and `--vault-token` are set (token auth; AppRole
/// and AWS IAM come later). Makes no request: an unreachable Vault never blocks start-up.
pub fn vault_binder(config: &Config) -> Result<Option<VaultBinder>, StartupError> {
    let Some(addr) = &config.vault_addr else {
        return Ok(None);
    };
    let Some(token) = &config.vault_token else {
        tracing::warn!(
            "--vault-addr without --vault-token (VAULT_TOKEN): no vault binder; bind answers 503"
        );
        return Ok(None);
    };
    let mut settings = VaultSettings::new(addr.clone(), token.clone());
    settings.kv_mount = config.vault_kv_mount.clone();
    VaultBinder::new(settings)
        .map(Some)
        .map_err(|e| StartupError(format!("the Vault settings are not usable: {e}")))
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
