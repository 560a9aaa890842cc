//! `cloudify-osb service …`: the admin commands on a blueprint's offering. Settings are keyed
//! by blueprint ID and kept apart from the catalog entries, so every sync leaves them alone
//! (replaces the original broker's `configdb`, which edited its database by hand; B17).
//! Works on the store only; talks to no backend.

use clap::{Args, Subcommand};
use serde_json::json;

use crate::adapters::{outputs, vault};
use crate::config::StoreLocation;
use crate::domain::catalog::ServiceSettings;
use crate::wiring::{StartupError, open_store};

/// Binder names this build knows.
pub const KNOWN_BINDERS: &[&str] = &[vault::NAME, outputs::NAME];

/// `cloudify-osb service`.
#[derive(Debug, Args)]
pub struct ServiceArgs {
    #[command(subcommand)]
    pub command: ServiceCommand,
}

/// The `service` subcommands.
#[derive(Debug, Subcommand)]
pub enum ServiceCommand {
    /// Choose the binder of a blueprint's offering and where its binder config is kept.
    SetBinder(SetBinder),
    /// Show a blueprint's offering(s) and settings as JSON.
    Show(Show),
    /// Convert a binder config in the original broker's format (`__path__`, `__credpath__`,
    /// `__credoutputs__`) to the current format; prints it on stdout.
    ConvertConfig(ConvertConfig),
}

/// `service convert-config LEGACY.json --role ROLE.json`.
#[derive(Debug, Args)]
pub struct ConvertConfig {
    /// The legacy document (`-` for stdin): the JSON object itself, or as the original broker
    /// stored it, `{"config": "<the document as a JSON string>"}`.
    pub file: std::path::PathBuf,
    /// The template role named by `__credpath__`, whose statements and TTLs the new document
    /// takes over, as `bao read -format=json database/roles/my-role` prints it (or its
    /// `data` object).
    #[arg(long)]
    pub role: std::path::PathBuf,
}

/// The state store (as for `serve`).
#[derive(Debug, Args)]
pub struct StoreArg {
    /// State store: sqlite:PATH, dynamodb:TABLE.
    #[arg(long, env = "BROKER_STORE", default_value = "sqlite:cloudify-osb.db")]
    pub store: StoreLocation,
}

/// `service set-binder BLUEPRINT_ID --binder vault --config MOUNT/PATH`.
#[derive(Debug, Args)]
pub struct SetBinder {
    /// The Cloudify blueprint ID of the offering.
    pub blueprint_id: String,
    /// Binder name: `vault` (credentials from Vault's database secrets engine) or `outputs`
    /// (allow-listed deployment outputs only, no Vault).
    #[arg(long, default_value = "vault")]
    pub binder: String,
    /// Where the binder config is kept; for `vault` a KV path MOUNT/PATH
    /// (schemas/binder-config.md); for `outputs` the deployment outputs to hand out as
    /// credentials, NAME[,NAME…].
    #[arg(long)]
    pub config: String,
    /// Whether the offering's plans are `binding_rotatable` (OSB 2.17 rotation with
    /// `predecessor_binding_id`); shown in the catalog after the next sync. Unchanged when
    /// not given (default false for a new offering).
    #[arg(long, value_name = "true|false")]
    pub binding_rotatable: Option<bool>,
    #[command(flatten)]
    pub store: StoreArg,
}

/// `service show BLUEPRINT_ID`.
#[derive(Debug, Args)]
pub struct Show {
    /// The Cloudify blueprint ID of the offering.
    pub blueprint_id: String,
    #[command(flatten)]
    pub store: StoreArg,
}

fn check_blueprint_id(id: &str) -> Result<(), StartupError> {
    if id.is_empty() || id.len() > 256 || id.chars().any(char::is_control) {
        return Err(StartupError(format!(
            "{id:?} is not a blueprint ID (1 to 256 characters, no control characters)"
        )));
    }
    Ok(())
}

/// Runs a `service` subcommand; prints JSON on stdout.
pub async fn run(args: ServiceArgs) -> Result<(), StartupError> {
    match args.command {
        ServiceCommand::SetBinder(cmd) => set_binder(cmd).await,
        ServiceCommand::Show(cmd) => show(cmd).await,
        ServiceCommand::ConvertConfig(cmd) => convert_config(&cmd),
    }
}

fn read_json(what: &str, path: &std::path::Path) -> Result<serde_json::Value, StartupError> {
    let text = if path.as_os_str() == "-" {
        std::io::read_to_string(std::io::stdin())
    } else {
        std::fs::read_to_string(path)
    }
    .map_err(|e| StartupError(format!("cannot read {what} {}: {e}", path.display())))?;
    serde_json::from_str(&text).map_err(|e| {
        StartupError(format!(
            "{what} {} is not JSON (line {}, column {})",
            path.display(),
            e.line(),
            e.column()
        ))
    })
}

/// Converts a legacy binder config with its template role (both as read from files).
pub fn convert_document(
    doc: &serde_json::Value,
    role: &serde_json::Value,
) -> Result<serde_json::Value, StartupError> {
    let failed = |e: crate::domain::error::BinderError| StartupError(e.to_string());
    // As the original broker stored it: one key `config` holding the document as a string.
    let parsed;
    let doc = match doc.get("config").and_then(serde_json::Value::as_str) {
        Some(text) if doc.as_object().is_some_and(|m| m.len() == 1) => {
            parsed = serde_json::from_str::<serde_json::Value>(text).map_err(|e| {
                StartupError(format!(
                    "its config string is not JSON (line {}, column {})",
                    e.line(),
                    e.column()
                ))
            })?;
            &parsed
        }
        _ => doc,
    };
    if !vault::legacy::is_legacy(doc) {
        return Err(StartupError(
            "this is not a legacy binder config (no __path__, __credpath__ or __credoutputs__)"
                .into(),
        ));
    }
    let legacy = vault::legacy::Legacy::parse(doc).map_err(failed)?;
    // `bao read -format=json` wraps the role in an envelope.
    let role = role
        .get("data")
        .filter(|d| d.get("creation_statements").is_some())
        .unwrap_or(role);
    legacy.convert(role).map_err(failed)
}

fn convert_config(cmd: &ConvertConfig) -> Result<(), StartupError> {
    let doc = read_json("the legacy binder config", &cmd.file)?;
    let role = read_json("the template role", &cmd.role)?;
    let converted = convert_document(&doc, &role)?;
    if converted["role"]["creation_statements"]
        .as_array()
        .is_none_or(Vec::is_empty)
    {
        return Err(StartupError(
            "the template role has no creation_statements".into(),
        ));
    }
    eprintln!(
        "note: the admin password is copied as it is (connection.password); consider moving it \
         to a KV secret and naming it with connection.password_ref. Each instance gets its own \
         connection and role (PREFIX-<instance>); the template role is no longer needed once \
         the converted document is in use."
    );
    print_json(&converted)
}

async fn set_binder(cmd: SetBinder) -> Result<(), StartupError> {
    check_blueprint_id(&cmd.blueprint_id)?;
    if !KNOWN_BINDERS.contains(&cmd.binder.as_str()) {
        return Err(StartupError(format!(
            "unknown binder {:?}; known: {}",
            cmd.binder,
            KNOWN_BINDERS.join(", ")
        )));
    }
    let config = cmd.config.trim().to_owned();
    if cmd.binder == vault::NAME {
        vault::check_config_location(&config).map_err(|e| StartupError(e.to_string()))?;
    }
    if cmd.binder == outputs::NAME {
        outputs::parse_allow_list(&config).map_err(|e| StartupError(e.to_string()))?;
    }
    let store = open_store(&cmd.store.store).await?;
    let failed = |e| StartupError(format!("the store failed: {e}"));
    let previous = store
        .service_settings(&cmd.blueprint_id)
        .await
        .map_err(failed)?;
    let settings = ServiceSettings {
        blueprint_id: cmd.blueprint_id.clone(),
        binder: cmd.binder,
        binder_config: config,
        binding_rotatable: cmd
            .binding_rotatable
            .unwrap_or_else(|| previous.is_some_and(|p| p.binding_rotatable)),
    };
    store
        .put_service_settings(&settings)
        .await
        .map_err(failed)?;
    let catalog = store.catalog().await.map_err(failed)?;
    let offerings: Vec<_> = catalog
        .entries
        .iter()
        .filter(|e| e.blueprint_id == cmd.blueprint_id)
        .collect();
    if offerings.is_empty() {
        eprintln!(
            "note: blueprint {:?} is not in the catalog yet; the settings apply once a sync brings it in",
            cmd.blueprint_id
        );
    } else if offerings.iter().any(|e| !e.service.bindable) {
        eprintln!(
            "note: the offering of blueprint {:?} becomes bindable at the next catalog sync (`cloudify-osb sync`, or serve's --sync-interval)",
            cmd.blueprint_id
        );
    }
    print_json(&json!({ "settings": settings }))
}

async fn show(cmd: Show) -> Result<(), StartupError> {
    check_blueprint_id(&cmd.blueprint_id)?;
    let store = open_store(&cmd.store.store).await?;
    let failed = |e| StartupError(format!("the store failed: {e}"));
    let settings = store
        .service_settings(&cmd.blueprint_id)
        .await
        .map_err(failed)?;
    let catalog = store.catalog().await.map_err(failed)?;
    let offerings: Vec<_> = catalog
        .entries
        .iter()
        .filter(|e| e.blueprint_id == cmd.blueprint_id)
        .map(|e| {
            json!({
                "service_id": e.service.id,
                "name": e.service.name,
                "tenant": e.tenant,
                "active": e.active,
                "plans": e.service.plans.iter().map(|p| json!({"id": p.id, "name": p.name})).collect::<Vec<_>>(),
            })
        })
        .collect();
    if settings.is_none() && offerings.is_empty() {
        return Err(StartupError(format!(
            "blueprint {:?} has no offering and no settings in {}",
            cmd.blueprint_id, cmd.store.store
        )));
    }
    print_json(&json!({
        "blueprint_id": cmd.blueprint_id,
        "settings": settings,
        "offerings": offerings,
    }))
}

fn print_json(value: &serde_json::Value) -> Result<(), StartupError> {
    let text = serde_json::to_string_pretty(value)
        .map_err(|e| StartupError(format!("cannot print JSON: {e}")))?;
    println!("{text}");
    Ok(())
}
