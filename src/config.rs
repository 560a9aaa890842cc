//! Typed configuration from flags and environment variables, one name per setting
//! (DESIGN.md §3a). Secrets are `SecretString` and never shown by `Debug`. Durations are
//! written like `30s`, `5m`, `1h`. Must not import adapter crates: wiring adapters from this
//! configuration is `wiring`'s job.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use clap::{Args, ValueEnum};
use secrecy::SecretString;
use uuid::Uuid;

use crate::domain::broker::BrokerSettings;
use crate::domain::ids::DEFAULT_ID_NAMESPACE;
use crate::domain::mapping::Selection;
use crate::domain::sync::SyncOptions;

/// Where the broker keeps its state (`--store` / `BROKER_STORE`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreLocation {
    /// `sqlite:PATH`: the embedded store.
    Sqlite(PathBuf),
    /// `dynamodb:TABLE`.
    DynamoDb(String),
    /// `memory:`: nothing survives the process (tests, trials).
    Memory,
}

impl FromStr for StoreLocation {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.split_once(':') {
            Some(("sqlite", path)) if !path.is_empty() => Ok(Self::Sqlite(PathBuf::from(path))),
            Some(("dynamodb", table)) if !table.is_empty() => Ok(Self::DynamoDb(table.into())),
            Some(("memory", "")) => Ok(Self::Memory),
            _ => Err(format!(
                "{s:?} is not a store: use sqlite:PATH, dynamodb:TABLE or memory:"
            )),
        }
    }
}

impl fmt::Display for StoreLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Sqlite(p) => write!(f, "sqlite:{}", p.display()),
            Self::DynamoDb(t) => write!(f, "dynamodb:{t}"),
            Self::Memory => f.write_str("memory:"),
        }
    }
}

/// Which blueprints become catalog offerings (`--catalog` / `BROKER_CATALOG`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CatalogMode {
    /// Every uploaded blueprint.
    All,
    /// Only blueprints that opt in (metadata flag or label).
    OptIn,
}

/// Log output (`--log-format` / `BROKER_LOG_FORMAT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Human,
    Json,
}

fn secret(s: &str) -> Result<SecretString, String> {
    Ok(SecretString::from(s.to_owned()))
}

fn duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("{s:?} is not a duration like 30s or 5m: {e}"))
}

/// Every setting of DESIGN.md §3a. `serve` and `sync` take all of them.
#[derive(Debug, Clone, Args)]
pub struct Config {
    /// Address `serve` listens on.
    #[arg(long, env = "BROKER_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// State store: sqlite:PATH, dynamodb:TABLE (or memory: for trials).
    #[arg(long, env = "BROKER_STORE", default_value = "sqlite:cloudify-osb.db")]
    pub store: StoreLocation,
    /// Basic-auth username the platform uses.
    #[arg(long, env = "BROKER_USERNAME")]
    pub username: Option<String>,
    /// Basic-auth password the platform uses.
    #[arg(long, env = "BROKER_PASSWORD", value_parser = secret, hide_env_values = true)]
    pub password: Option<SecretString>,
    /// Cloudify manager, scheme://host[:port] (the adapter appends /api/v3.1).
    #[arg(long, env = "CLOUDIFY_URL")]
    pub cloudify_url: Option<String>,
    /// Cloudify UI base URL that dashboard_url points into.
    #[arg(long, env = "CLOUDIFY_UI_URL")]
    pub cloudify_ui_url: Option<String>,
    /// Cloudify tenant.
    #[arg(long, env = "CLOUDIFY_TENANT", default_value = "default_tenant")]
    pub cloudify_tenant: String,
    /// Cloudify username.
    #[arg(long, env = "CLOUDIFY_USERNAME")]
    pub cloudify_username: Option<String>,
    /// Cloudify password.
    #[arg(long, env = "CLOUDIFY_PASSWORD", value_parser = secret, hide_env_values = true)]
    pub cloudify_password: Option<SecretString>,
    /// Cloudify API token (instead of username and password).
    #[arg(long, env = "CLOUDIFY_TOKEN", value_parser = secret, hide_env_values = true)]
    pub cloudify_token: Option<SecretString>,
    /// CA certificate (PEM) that signs the manager's TLS certificate.
    #[arg(long, env = "CLOUDIFY_CA_CERT")]
    pub cloudify_ca_cert: Option<PathBuf>,
    /// Skip TLS verification of the manager (tests only).
    #[arg(
        long,
        env = "CLOUDIFY_INSECURE",
        value_parser = clap::builder::BoolishValueParser::new(),
        num_args = 0..=1,
        default_value = "false",
        default_missing_value = "true"
    )]
    pub cloudify_insecure: bool,
    /// How long one OSB request may wait for Cloudify in all, retries included (each HTTP
    /// call gets at most what is left); then it answers 503, or 202 when the outcome is
    /// unknown. Keep it under the gateway's limit (API Gateway: 30s).
    #[arg(long, env = "CLOUDIFY_TIMEOUT", value_parser = duration, default_value = "20s")]
    pub cloudify_timeout: Duration,
    /// Vault address.
    #[arg(long, env = "VAULT_ADDR")]
    pub vault_addr: Option<String>,
    /// Vault token (wins over AppRole and AWS IAM).
    #[arg(long, env = "VAULT_TOKEN", value_parser = secret, hide_env_values = true)]
    pub vault_token: Option<SecretString>,
    /// Vault AppRole role ID (with --vault-secret-id).
    #[arg(long, env = "VAULT_ROLE_ID", hide_env_values = true)]
    pub vault_role_id: Option<String>,
    /// Vault AppRole secret ID (with --vault-role-id).
    #[arg(long, env = "VAULT_SECRET_ID", value_parser = secret, hide_env_values = true)]
    pub vault_secret_id: Option<SecretString>,
    /// Vault role for AWS IAM auth (when neither token nor AppRole is given).
    #[arg(long, env = "VAULT_AWS_ROLE")]
    pub vault_aws_role: Option<String>,
    /// Mount path of the Vault auth method (default: approle, or aws for IAM).
    #[arg(long, env = "VAULT_AUTH_MOUNT")]
    pub vault_auth_mount: Option<String>,
    /// X-Vault-AWS-IAM-Server-ID value, when the aws auth mount requires one.
    #[arg(long, env = "VAULT_AWS_IAM_SERVER_ID")]
    pub vault_aws_iam_server_id: Option<String>,
    /// STS region the IAM login is signed for (default: global endpoint, us-east-1).
    #[arg(long, env = "VAULT_AWS_STS_REGION")]
    pub vault_aws_sts_region: Option<String>,
    /// Broker-owned KV v2 mount.
    #[arg(long, env = "VAULT_KV_MOUNT", default_value = "cloudify-osb")]
    pub vault_kv_mount: String,
    /// UUID namespace of service and plan IDs.
    #[arg(long, env = "BROKER_ID_NAMESPACE", default_value_t = DEFAULT_ID_NAMESPACE)]
    pub id_namespace: Uuid,
    /// Which blueprints become offerings.
    #[arg(long, env = "BROKER_CATALOG", value_enum, default_value = "all")]
    pub catalog: CatalogMode,
    /// `serve` runs the catalog sync this often, e.g. 5m (off when absent).
    #[arg(long, env = "BROKER_SYNC_INTERVAL", value_parser = duration)]
    pub sync_interval: Option<Duration>,
    /// How long a catalog copy is used without asking the store whether the catalog
    /// changed, e.g. 30s: saves one store read per request that needs the catalog, and a
    /// sync's changes show up that much later (0s: every request checks).
    #[arg(long, env = "BROKER_CATALOG_MAX_AGE", value_parser = duration, default_value = "0s")]
    pub catalog_max_age: Duration,
    /// `serve` runs the lease renewal pass this often.
    #[arg(long, env = "BROKER_RENEW_INTERVAL", value_parser = duration, default_value = "5m")]
    pub renew_interval: Duration,
    /// A second accepted basic-auth username during credential rotation.
    #[arg(long, env = "BROKER_USERNAME_NEXT")]
    pub username_next: Option<String>,
    /// A second accepted basic-auth password during credential rotation.
    #[arg(long, env = "BROKER_PASSWORD_NEXT", value_parser = secret, hide_env_values = true)]
    pub password_next: Option<SecretString>,
    /// TLS certificate (PEM) for `serve` over HTTPS.
    #[arg(long, env = "BROKER_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,
    /// TLS private key (PEM) for `serve` over HTTPS.
    #[arg(long, env = "BROKER_TLS_KEY")]
    pub tls_key: Option<PathBuf>,
    /// Log output: human or json.
    #[arg(long, env = "BROKER_LOG_FORMAT", value_enum, default_value = "human")]
    pub log_format: LogFormat,
}

impl Config {
    /// The settings alone, from `args` (the program name first) and the environment: the
    /// Lambda functions, which have no command line, read theirs this way, and so do tests.
    pub fn try_parse_from<I, T>(args: I) -> Result<Self, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        #[derive(clap::Parser)]
        struct Only {
            #[command(flatten)]
            config: Config,
        }
        Ok(<Only as clap::Parser>::try_parse_from(args)?.config)
    }

    /// What the catalog sync maps (`--id-namespace`, `--cloudify-tenant`, `--catalog`).
    pub fn sync_options(&self) -> SyncOptions {
        SyncOptions {
            namespace: self.id_namespace,
            tenant: self.cloudify_tenant.clone(),
            selection: match self.catalog {
                CatalogMode::All => Selection::All,
                CatalogMode::OptIn => Selection::OptIn,
            },
        }
    }

    /// The broker's own settings.
    pub fn broker_settings(&self) -> BrokerSettings {
        BrokerSettings {
            id_namespace: self.id_namespace,
            tenant: self.cloudify_tenant.clone(),
            dashboard_ui_url: self.cloudify_ui_url.clone(),
            catalog_max_age: self.catalog_max_age,
            ..BrokerSettings::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_locations_parse() {
        assert_eq!(
            "sqlite:/tmp/x.db".parse::<StoreLocation>().unwrap(),
            StoreLocation::Sqlite("/tmp/x.db".into())
        );
        assert_eq!(
            "dynamodb:t".parse::<StoreLocation>().unwrap(),
            StoreLocation::DynamoDb("t".into())
        );
        assert_eq!(
            "memory:".parse::<StoreLocation>().unwrap(),
            StoreLocation::Memory
        );
        assert!("postgres:x".parse::<StoreLocation>().is_err());
        assert!("sqlite:".parse::<StoreLocation>().is_err());
    }

    #[test]
    fn flags_parse_and_secrets_stay_hidden() {
        let c = Config::try_parse_from([
            "x",
            "--password",
            "hunter2-secret",
            "--renew-interval",
            "90s",
            "--catalog",
            "opt-in",
            "--log-format",
            "json",
        ])
        .unwrap();
        assert_eq!(c.renew_interval, Duration::from_secs(90));
        assert_eq!(c.cloudify_timeout, Duration::from_secs(20));
        assert_eq!(c.catalog, CatalogMode::OptIn);
        assert_eq!(c.log_format, LogFormat::Json);
        assert_eq!(c.listen.to_string(), "127.0.0.1:8080");
        assert!(!format!("{c:?}").contains("hunter2"));
        assert!(!c.cloudify_insecure);
    }

    #[test]
    fn boolean_flags_take_an_optional_boolish_value() {
        for (args, want) in [
            (vec!["x", "--cloudify-insecure"], true),
            (vec!["x", "--cloudify-insecure=1"], true),
            (vec!["x", "--cloudify-insecure=false"], false),
            (vec!["x"], false),
        ] {
            let c = Config::try_parse_from(&args).unwrap();
            assert_eq!(c.cloudify_insecure, want, "{args:?}");
        }
    }
}
