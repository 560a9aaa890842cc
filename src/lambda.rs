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
use std::time::{Duration, Instant};

use aws_config::environment::EnvironmentVariableCredentialsProvider;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_dynamodb::config::SharedCredentialsProvider;
use lambda_http::lambda_runtime::{self, LambdaEvent};
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;

use crate::adapters::dynamodb::DynamoStore;
use crate::config::{Config, StoreLocation};
use crate::domain::broker::Broker;
use crate::domain::ports::{BinderRegistry, Orchestrator, Store};
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
///
/// `CLOUDIFY` and `VAULT` say at compile time which backends the function's binary links in
/// (they must equal the access table's columns for `routes`, checked here): with fat LTO a
/// function without Vault carries no Vault adapter, and the store is DynamoDB only (no
/// SQLite), which is most of what keeps each binary small (BENCHMARKS.md).
pub async fn serve<const CLOUDIFY: bool, const VAULT: bool>(routes: &[Route]) -> Result<(), Error> {
    let started = Instant::now();
    let access = Access::of_routes(routes);
    if (access.cloudify, access.vault) != (CLOUDIFY, VAULT) {
        return Err(wiring::StartupError(format!(
            "this function links cloudify={CLOUDIFY} vault={VAULT} but its routes need \
             cloudify={} vault={}",
            access.cloudify, access.vault
        ))
        .into());
    }
    let (config, sdk) = init_config(access).await?;
    let config_us = started.elapsed().as_micros() as u64;
    let store = dynamodb_store(&config, &sdk)?;
    let orchestrator = if CLOUDIFY {
        wiring::orchestrator(&config)?
    } else {
        None
    };
    let mut binders = if VAULT {
        wiring::binders(&config)?
    } else {
        BinderRegistry::new()
    };
    if VAULT && let Some(o) = &orchestrator {
        wiring::with_orchestrator(&mut binders, o);
    }
    let clients_us = started.elapsed().as_micros() as u64 - config_us;
    let warm_up_started = Instant::now();
    warm_up(store.as_ref(), orchestrator.as_deref(), &binders).await;
    let warm_up_us = warm_up_started.elapsed().as_micros() as u64;
    let broker = Broker::new(store, orchestrator, binders, config.broker_settings());
    let state = wiring::api_state(&config, broker)?
        .with_response_limit(crate::http::catalog::LAMBDA_RESPONSE_LIMIT);
    // bench/run reads this line to report init with and without the warm-up; the phases
    // before it are measured from the start of `main`'s body.
    tracing::info!(config_us, clients_us, warm_up_us, "init done");
    lambda_http::run(router(state, routes)).await
}

/// The AWS SDK configuration of a function, from the variables Lambda sets: `AWS_REGION`,
/// and the credentials of the function's role in `AWS_ACCESS_KEY_ID`,
/// `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`. Not `aws_config::load_defaults`: its
/// provider chain (profile files, SSO, web identity through STS, ECS, IMDS) has nothing to
/// find in Lambda, costs init time and links the STS client into every binary
/// (BENCHMARKS.md). Endpoint overrides (`AWS_ENDPOINT_URL_<SERVICE>`) are read per client.
fn sdk_config() -> SdkConfig {
    let region = env_value("AWS_REGION").or_else(|| env_value("AWS_DEFAULT_REGION"));
    SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(region.map(Region::new))
        .credentials_provider(SharedCredentialsProvider::new(
            EnvironmentVariableCredentialsProvider::new(),
        ))
        .build()
}

/// A non-empty environment variable.
fn env_value(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// The endpoint override of one AWS service (`AWS_ENDPOINT_URL_<SERVICE>`, then
/// `AWS_ENDPOINT_URL`), as the SDK's own configuration loader reads them.
fn endpoint_url(service_env: &str) -> Option<String> {
    env_value(&format!("AWS_ENDPOINT_URL_{service_env}")).or_else(|| env_value("AWS_ENDPOINT_URL"))
}

/// The DynamoDB store of `--store` (the only store a Lambda function links in), its client
/// from the one SDK configuration of init.
fn dynamodb_store(config: &Config, sdk: &SdkConfig) -> Result<Arc<dyn Store>, Error> {
    match &config.store {
        StoreLocation::DynamoDb(table) => {
            let mut client_config = aws_sdk_dynamodb::config::Builder::from(sdk);
            client_config.set_endpoint_url(endpoint_url("DYNAMODB"));
            Ok(Arc::new(DynamoStore::new(
                aws_sdk_dynamodb::Client::from_conf(client_config.build()),
                table.as_str(),
            )))
        }
        other => Err(wiring::StartupError(format!(
            "BROKER_STORE={other}: the Lambda functions use a DynamoDB store (dynamodb:TABLE)"
        ))
        .into()),
    }
}

/// The scheduled function (`osb-sync-catalog`): on every EventBridge event, the catalog sync
/// from Cloudify. A failed run is an invocation error (counted by the template's alarm; the
/// event goes to the dead-letter queue).
pub async fn sync() -> Result<(), Error> {
    let started = Instant::now();
    let (config, sdk) = init_config(Access::SYNC).await?;
    let config_us = started.elapsed().as_micros() as u64;
    let store = dynamodb_store(&config, &sdk)?;
    let orchestrator = wiring::orchestrator(&config)?.ok_or_else(|| {
        wiring::StartupError("CLOUDIFY_URL is required by the catalog sync".into())
    })?;
    let binders = Arc::new(wiring::binders(&config)?);
    let clients_us = started.elapsed().as_micros() as u64 - config_us;
    let warm_up_started = Instant::now();
    let _ = tokio::join!(
        tokio::time::timeout(INIT_CALL_TIMEOUT, orchestrator.ping()),
        tokio::time::timeout(INIT_CALL_TIMEOUT, store.catalog_version()),
    );
    tracing::info!(
        config_us,
        clients_us,
        warm_up_us = warm_up_started.elapsed().as_micros() as u64,
        "init done"
    );
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
/// Also the one AWS SDK configuration of the process (Secrets Manager and DynamoDB share it:
/// loading it twice would build two HTTPS clients).
async fn init_config(access: Access) -> Result<(Config, SdkConfig), Error> {
    let mut config = Config::try_parse_from(["cloudify-osb-lambda"])?;
    telemetry::init(config.log_format);
    let sdk = sdk_config();
    for (name, value) in read_secrets(&sdk, &access.secrets()).await {
        apply_secret(&mut config, name, value);
    }
    if !access.cloudify {
        config.cloudify_url = None;
    }
    if !access.vault {
        config.vault_addr = None;
    }
    Ok((config, sdk))
}

/// Opens the connections the function will use (TLS handshakes are cheap during init and
/// slow afterwards at small memory sizes), all backends at once; bounded, and failures only
/// logged (the routes answer 503 naming a backend that is down).
async fn warm_up(
    store: &dyn Store,
    orchestrator: Option<&dyn Orchestrator>,
    binders: &BinderRegistry,
) {
    let store = async {
        if let Err(e) = store.catalog_version().await {
            tracing::warn!(dependency = "store", error = %e, "warm-up failed");
        }
    };
    let cloudify = async {
        if let Some(o) = orchestrator {
            if let Err(e) = o.ping().await {
                tracing::warn!(dependency = "cloudify", error = %e, "warm-up failed");
            }
        }
    };
    let binders = async {
        for name in binders.names() {
            let Some(b) = binders.get(name) else { continue };
            if let Err(e) = b.connect().await {
                tracing::warn!(dependency = name, error = %e, "warm-up failed");
            }
        }
    };
    let all = async { tokio::join!(store, cloudify, binders) };
    if tokio::time::timeout(INIT_CALL_TIMEOUT * 2, all)
        .await
        .is_err()
    {
        tracing::warn!("warm-up timed out");
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
            // get-binding: the `outputs` binder reads the outputs again from Cloudify.
            Route::Deprovision | Route::LastOperation | Route::Bind | Route::GetBinding => {
                (true, true)
            }
            Route::Unbind => (false, true),
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
async fn read_secrets(
    sdk: &SdkConfig,
    sources: &[&'static SecretSource],
) -> BTreeMap<&'static str, SecretString> {
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
    let mut client_config = aws_sdk_secretsmanager::config::Builder::from(sdk);
    client_config.set_endpoint_url(endpoint_url("SECRETS_MANAGER"));
    let client = aws_sdk_secretsmanager::Client::from_conf(client_config.build());
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
