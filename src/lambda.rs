//! AWS Lambda entry points (DESIGN.md §1, §3a): [`serve`] runs the one OSB router restricted
//! to a function's routes under `lambda_http`; [`sync`] is the scheduled catalog sync and lease
//! renewal pass. Everything a function needs is built once, during Lambda init: the
//! configuration (secrets fetched from Secrets Manager only by the functions whose routes use
//! them), the clients, and warmed connections (short timeouts, errors ignored: a backend that
//! is down must not fail init; its routes answer 503 instead).
//!
//! Owns the Lambda runtime and the Secrets Manager client; the domain never sees them. The
//! access table here ([`Access`]) is the one the SAM template's IAM policies follow, and a test
//! checks `infra/template.yaml` against it and against [`Route`].

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use lambda_http::lambda_runtime::{self, LambdaEvent};
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;

use crate::config::Config;
use crate::domain::broker::Broker;
use crate::domain::renewal::renew_due;
use crate::domain::sync::sync_catalog_with;
use crate::http::{Route, router};
use crate::{telemetry, wiring};

/// The error a Lambda entry point ends with (init failures; the runtime reports them).
pub use lambda_http::Error;

/// How long one warm-up or secret read may take during init (Lambda gives init 10 s).
const INIT_CALL_TIMEOUT: Duration = Duration::from_secs(2);

/// Serves `routes` (one, for a route's function) with the one OSB router until the Lambda
/// runtime stops. Config, secrets, clients and connections are set up once, here, during
/// init; routes outside `routes` answer the router's JSON 404.
pub async fn serve(routes: &[Route]) -> Result<(), Error> {
    let access = Access::of_routes(routes);
    let config = init_config(access).await?;
    let broker = wiring::build_broker(&config).await?;
    let warm_up_started = std::time::Instant::now();
    warm_up(&broker).await;
    // bench/run reads this line to report init with and without the warm-up.
    tracing::info!(
        warm_up_us = warm_up_started.elapsed().as_micros() as u64,
        "init done"
    );
    let state = wiring::api_state(&config, broker)?;
    lambda_http::run(router(state, routes)).await
}

/// The scheduled function (`osb-sync-catalog`): on every EventBridge event, the catalog sync
/// from Cloudify. A failed run is an invocation error (counted by the template's alarm; the
/// event goes to the dead-letter queue).
pub async fn sync() -> Result<(), Error> {
    let config = init_config(Access::SYNC).await?;
    let store = wiring::open_store(&config.store).await?;
    let orchestrator = wiring::orchestrator(&config).await?.ok_or_else(|| {
        wiring::StartupError("CLOUDIFY_URL is required by the catalog sync".into())
    })?;
    let _ = tokio::time::timeout(INIT_CALL_TIMEOUT, orchestrator.ping()).await;
    let _ = tokio::time::timeout(INIT_CALL_TIMEOUT, store.catalog_version()).await;
    let binders = Arc::new(wiring::binders(&config).await?);
    let config = Arc::new(config);
    lambda_runtime::run(lambda_runtime::service_fn(move |_: LambdaEvent<Value>| {
        let (store, orchestrator, config, binders) = (
            store.clone(),
            orchestrator.clone(),
            config.clone(),
            binders.clone(),
        );
        async move {
            let report = sync_catalog_with(
                orchestrator.as_ref(),
                store.as_ref(),
                &config.sync_options(),
            )
            .await?;
            tracing::info!(%report, "catalog sync done");
            // Then the lease renewal pass, for what falls due before the next run.
            let horizon = time::Duration::try_from(config.renew_interval)
                .unwrap_or(time::Duration::minutes(5));
            let renewal = renew_due(
                store.as_ref(),
                &binders,
                time::OffsetDateTime::now_utc(),
                horizon,
            )
            .await?;
            tracing::info!(report = %renewal, "lease renewal pass done");
            let mut out = serde_json::to_value(report)?;
            if let Some(map) = out.as_object_mut() {
                map.insert("renewal".into(), serde_json::to_value(renewal)?);
            }
            Ok::<_, Error>(out)
        }
    }))
    .await
}

/// Settings from the environment (§3a) plus the secrets this function may read; backends
/// the function does not use are left unconfigured, so that it builds no client for them.
async fn init_config(access: Access) -> Result<Config, Error> {
    #[derive(Parser)]
    struct FromEnv {
        #[command(flatten)]
        config: Config,
    }
    let mut config = FromEnv::try_parse_from(["cloudify-osb-lambda"])?.config;
    telemetry::init(config.log_format);
    for (name, value) in read_secrets(&access.secrets()).await {
        apply_secret(&mut config, name, value);
    }
    if !access.cloudify {
        config.cloudify_url = None;
    }
    if !access.vault {
        config.vault_addr = None;
    }
    Ok(config)
}

/// Opens the connections the function will use (TLS handshakes are cheap during init and
/// slow afterwards at small memory sizes); bounded, and failures only logged.
async fn warm_up(broker: &Broker) {
    match tokio::time::timeout(INIT_CALL_TIMEOUT * 2, broker.readiness()).await {
        Ok(readiness) => tracing::debug!(ready = readiness.ready, "warm-up done"),
        Err(_) => tracing::warn!("warm-up timed out"),
    }
}

fn apply_secret(config: &mut Config, name: &str, value: SecretString) {
    match name {
        "BROKER_USERNAME" => config.username = Some(value.expose_secret().to_owned()),
        "BROKER_PASSWORD" => config.password = Some(value),
        "BROKER_USERNAME_NEXT" => config.username_next = Some(value.expose_secret().to_owned()),
        "BROKER_PASSWORD_NEXT" => config.password_next = Some(value),
        "CLOUDIFY_USERNAME" => config.cloudify_username = Some(value.expose_secret().to_owned()),
        "CLOUDIFY_PASSWORD" => config.cloudify_password = Some(value),
        "CLOUDIFY_TOKEN" => config.cloudify_token = Some(value),
        "VAULT_TOKEN" => config.vault_token = Some(value),
        "VAULT_ROLE_ID" => config.vault_role_id = Some(value.expose_secret().to_owned()),
        "VAULT_SECRET_ID" => config.vault_secret_id = Some(value),
        _ => tracing::warn!(setting = name, "secret setting not applied"),
    }
}

/// What a function may reach besides the store: the columns of the access table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Access {
    /// Calls the Cloudify manager (and reads `CLOUDIFY_CREDENTIALS_SECRET_ARN`).
    pub cloudify: bool,
    /// Calls Vault (and reads `VAULT_CREDENTIALS_SECRET_ARN`).
    pub vault: bool,
    /// Serves OSB requests (and reads `BROKER_CREDENTIALS_SECRET_ARN`).
    pub platform: bool,
}

impl Access {
    /// The access of one OSB route's function.
    pub fn of(route: Route) -> Self {
        let (cloudify, vault) = match route {
            Route::Catalog | Route::GetInstance | Route::BindingLastOperation => (false, false),
            Route::Provision | Route::Update => (true, false),
            Route::Deprovision | Route::LastOperation | Route::Bind => (true, true),
            Route::Unbind | Route::GetBinding => (false, true),
        };
        Self {
            cloudify,
            vault,
            platform: true,
        }
    }

    /// The access of a function serving several routes: the union.
    pub fn of_routes(routes: &[Route]) -> Self {
        routes.iter().fold(
            Self {
                cloudify: false,
                vault: false,
                platform: !routes.is_empty(),
            },
            |a, r| {
                let b = Self::of(*r);
                Self {
                    cloudify: a.cloudify || b.cloudify,
                    vault: a.vault || b.vault,
                    platform: true,
                }
            },
        )
    }

    /// The scheduled sync: Cloudify (blueprints) and Vault (lease renewal), no platform.
    pub const SYNC: Self = Self {
        cloudify: true,
        vault: true,
        platform: false,
    };

    /// The secrets this function reads at init.
    pub fn secrets(self) -> Vec<&'static SecretSource> {
        let mut out = Vec::new();
        if self.platform {
            out.push(&BROKER_SECRET);
        }
        if self.cloudify {
            out.push(&CLOUDIFY_SECRET);
        }
        if self.vault {
            out.push(&VAULT_SECRET);
        }
        out
    }
}

/// A Secrets Manager secret: a JSON object whose keys are the settings' env names (§3a).
#[derive(Debug)]
pub struct SecretSource {
    /// The env var holding the secret's ARN.
    pub arn_env: &'static str,
    /// The settings this secret may carry; any other key is ignored (and named in the log).
    pub keys: &'static [&'static str],
}

/// The platform's basic-auth credentials.
pub static BROKER_SECRET: SecretSource = SecretSource {
    arn_env: "BROKER_CREDENTIALS_SECRET_ARN",
    keys: &[
        "BROKER_USERNAME",
        "BROKER_PASSWORD",
        "BROKER_USERNAME_NEXT",
        "BROKER_PASSWORD_NEXT",
    ],
};

/// The Cloudify manager's credentials.
pub static CLOUDIFY_SECRET: SecretSource = SecretSource {
    arn_env: "CLOUDIFY_CREDENTIALS_SECRET_ARN",
    keys: &["CLOUDIFY_USERNAME", "CLOUDIFY_PASSWORD", "CLOUDIFY_TOKEN"],
};

/// Vault's credentials (absent with AWS IAM auth).
pub static VAULT_SECRET: SecretSource = SecretSource {
    arn_env: "VAULT_CREDENTIALS_SECRET_ARN",
    keys: &["VAULT_TOKEN", "VAULT_ROLE_ID", "VAULT_SECRET_ID"],
};

/// Reads the secrets of `sources` whose ARN env var is set; a secret that cannot be read is
/// logged and skipped, so that the settings it carries stay missing and their routes answer
/// 503 naming the dependency.
async fn read_secrets(sources: &[&'static SecretSource]) -> BTreeMap<&'static str, SecretString> {
    let mut out = BTreeMap::new();
    let wanted: Vec<(&'static SecretSource, String)> = sources
        .iter()
        .filter_map(|s| {
            std::env::var(s.arn_env)
                .ok()
                .filter(|v| !v.is_empty())
                .map(|arn| (*s, arn))
        })
        .collect();
    if wanted.is_empty() {
        return out;
    }
    let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let client = aws_sdk_secretsmanager::Client::new(&config);
    // Read in parallel, each bounded: init as a whole has 10 s.
    let mut reads = tokio::task::JoinSet::new();
    for (source, arn) in wanted {
        let client = client.clone();
        reads.spawn(async move {
            let call = client.get_secret_value().secret_id(arn).send();
            (source, tokio::time::timeout(INIT_CALL_TIMEOUT, call).await)
        });
    }
    while let Some(joined) = reads.join_next().await {
        let Ok((source, result)) = joined else {
            tracing::error!("a secret read panicked");
            continue;
        };
        let reply = match result {
            Ok(Ok(reply)) => reply,
            Ok(Err(e)) => {
                tracing::error!(
                    secret = source.arn_env,
                    error = %aws_sdk_secretsmanager::error::DisplayErrorContext(&e),
                    "cannot read secret"
                );
                continue;
            }
            Err(_) => {
                tracing::error!(secret = source.arn_env, "timed out reading secret");
                continue;
            }
        };
        let Some(text) = reply.secret_string() else {
            tracing::error!(secret = source.arn_env, "secret has no string value");
            continue;
        };
        match parse_secret(source, text) {
            Ok(values) => out.extend(values),
            Err(e) => tracing::error!(secret = source.arn_env, error = %e, "invalid secret"),
        }
    }
    out
}

/// Parses one secret's JSON object into the settings it may carry. Never echoes values.
fn parse_secret(
    source: &SecretSource,
    text: &str,
) -> Result<Vec<(&'static str, SecretString)>, String> {
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|_| "not a JSON object".to_owned())?;
    let object = value.as_object().ok_or("not a JSON object")?;
    let mut out = Vec::new();
    for (key, value) in object {
        let Some(name) = source.keys.iter().find(|k| **k == key.as_str()) else {
            tracing::warn!(secret = source.arn_env, key = %key, "ignoring unknown key in secret");
            continue;
        };
        let text = value
            .as_str()
            .ok_or_else(|| format!("{key} is not a string"))?;
        out.push((*name, SecretString::from(text.to_owned())));
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
