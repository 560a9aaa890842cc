//! Operator commands for a bad day: `cloudify-osb instance list|show|purge` and
//! `cloudify-osb reconcile [--fix]` (docs/runbook.md). They join the store, Cloudify and
//! Vault; everything is printed for humans or, with `--json`, as one JSON document on
//! stdout. Built through `wiring` like `serve`; the read-only Cloudify and Vault calls used
//! here (`deployment_ids`, `executions`, `broker_leases`) are inherent methods of the
//! adapters, not part of the ports, because the broker itself never needs them.

use std::collections::BTreeSet;
use std::io::{BufRead, Write};
use std::sync::Arc;

use clap::{Args, Subcommand};
use serde::Serialize;
use serde_json::{Value, json};
use time::OffsetDateTime;

use crate::adapters::cloudify::CloudifyOrchestrator;
use crate::adapters::vault::VaultBinder;
use crate::config::Config;
use crate::domain::catalog::ServiceSettings;
use crate::domain::ids::InstanceId;
use crate::domain::instance::Instance;
use crate::domain::ports::{BinderRegistry, Orchestrator, Store};
use crate::telemetry;
use crate::wiring::{self, StartupError};

/// The deployment ID prefix of every deployment the broker creates.
pub const DEPLOYMENT_PREFIX: &str = "osb-";

/// `cloudify-osb instance`.
#[derive(Debug, Args)]
pub struct InstanceArgs {
    #[command(subcommand)]
    pub command: InstanceCommand,
}

/// The `instance` subcommands.
#[derive(Debug, Subcommand)]
pub enum InstanceCommand {
    /// List the instances in the store (state, deployment, operation in progress).
    List(ListArgs),
    /// One instance: the store record, its Cloudify deployment and executions, its bindings
    /// and their lease expiry.
    Show(ShowArgs),
    /// Remove a stuck instance: revoke its bindings' leases, remove what the binder wrote,
    /// optionally delete its deployment, then delete its record. Asks for confirmation.
    Purge(PurgeArgs),
}

/// `instance list`.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// One JSON document instead of text.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub config: Box<Config>,
}

/// `instance show ID`.
#[derive(Debug, Args)]
pub struct ShowArgs {
    /// The instance ID.
    pub instance_id: String,
    /// One JSON document instead of text.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub config: Box<Config>,
}

/// `instance purge ID`.
#[derive(Debug, Args)]
pub struct PurgeArgs {
    /// The instance ID.
    pub instance_id: String,
    /// Do not ask for confirmation.
    #[arg(long)]
    pub yes: bool,
    /// Also delete the instance's Cloudify deployment (without running uninstall).
    #[arg(long)]
    pub delete_deployment: bool,
    /// One JSON document instead of text.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub config: Box<Config>,
}

/// `cloudify-osb reconcile`.
#[derive(Debug, Args)]
pub struct ReconcileArgs {
    /// Repair what is found: delete orphan deployments, purge instances whose deployment is
    /// gone, revoke orphan leases.
    #[arg(long)]
    pub fix: bool,
    /// `--fix` leaves instances younger than this alone: their deployment may simply not
    /// exist yet (the record is written before the deployment is created).
    #[arg(long, default_value = "2m", value_parser = min_age)]
    pub min_age: std::time::Duration,
    /// One JSON document instead of text.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub config: Box<Config>,
}

fn min_age(s: &str) -> Result<std::time::Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("{s:?} is not a duration like 2m: {e}"))
}

/// The backends an operator command works with.
struct Backends {
    store: Arc<dyn Store>,
    cloudify: Option<CloudifyOrchestrator>,
    vault: Option<VaultBinder>,
    binders: BinderRegistry,
}

async fn backends(config: &Config) -> Result<Backends, StartupError> {
    telemetry::init(config.log_format);
    Ok(Backends {
        store: wiring::open_store(&config.store).await?,
        cloudify: wiring::cloudify_orchestrator(config)?,
        vault: wiring::vault_binder(config)?,
        binders: wiring::binders(config)?,
    })
}

fn print_json(value: &impl Serialize) -> Result<(), StartupError> {
    let text = serde_json::to_string_pretty(value)
        .map_err(|e| StartupError(format!("cannot render JSON: {e}")))?;
    println!("{text}");
    Ok(())
}

fn store_failed(e: impl std::fmt::Display) -> StartupError {
    StartupError(format!("the store failed: {e}"))
}

fn parse_id(s: &str) -> Result<InstanceId, StartupError> {
    InstanceId::parse(s).map_err(|e| StartupError(format!("{s:?} is not an instance ID: {e}")))
}

fn time_text(t: Option<OffsetDateTime>) -> String {
    t.and_then(|t| {
        t.format(&time::format_description::well_known::Rfc3339)
            .ok()
    })
    .unwrap_or_else(|| "-".into())
}

/// Runs an `instance` subcommand.
pub async fn run_instance(args: InstanceArgs) -> Result<(), StartupError> {
    match args.command {
        InstanceCommand::List(a) => list(a).await,
        InstanceCommand::Show(a) => show(a).await,
        InstanceCommand::Purge(a) => purge(a).await,
    }
}

#[derive(Serialize)]
struct ListedInstance {
    instance_id: String,
    state: String,
    deployment_id: String,
    blueprint_id: String,
    operation: Option<String>,
    created_at: String,
}

async fn list(args: ListArgs) -> Result<(), StartupError> {
    let b = backends(&args.config).await?;
    let mut instances = b.store.instances(None).await.map_err(store_failed)?;
    instances.sort_by_key(|i| i.created_at);
    let rows: Vec<ListedInstance> = instances
        .iter()
        .map(|i| ListedInstance {
            instance_id: i.id.to_string(),
            state: i.state.as_str().to_owned(),
            deployment_id: i.deployment_id.clone(),
            blueprint_id: i.blueprint_id.clone(),
            operation: i
                .operation
                .as_ref()
                .map(|o| serde_json::to_value(o.kind).map_or_else(|_| "?".into(), text_of)),
            created_at: time_text(Some(i.created_at)),
        })
        .collect();
    if args.json {
        return print_json(&json!({ "instances": rows }));
    }
    println!(
        "{:<38} {:<14} {:<12} {:<24} BLUEPRINT",
        "INSTANCE", "STATE", "OPERATION", "CREATED"
    );
    for r in &rows {
        println!(
            "{:<38} {:<14} {:<12} {:<24} {}",
            r.instance_id,
            r.state,
            r.operation.as_deref().unwrap_or("-"),
            r.created_at,
            r.blueprint_id
        );
    }
    println!("{} instance(s)", rows.len());
    Ok(())
}

fn text_of(v: Value) -> String {
    match v {
        Value::String(s) => s,
        other => other.to_string(),
    }
}

#[derive(Serialize)]
struct ShownBinding {
    binding_id: String,
    state: String,
    binder: String,
    lease_id: Option<String>,
    expires_at: String,
    renew_before: String,
}

#[derive(Serialize)]
struct Shown {
    instance: Instance,
    deployment: Value,
    bindings: Vec<ShownBinding>,
}

async fn show(args: ShowArgs) -> Result<(), StartupError> {
    let id = parse_id(&args.instance_id)?;
    let b = backends(&args.config).await?;
    let instance = b
        .store
        .instance(&id)
        .await
        .map_err(store_failed)?
        .ok_or_else(|| StartupError(format!("no instance {id} in the store")))?;
    let deployment = match &b.cloudify {
        None => json!({ "status": "Cloudify not configured" }),
        Some(c) => match c.deployment_exists(&instance.deployment_id).await {
            Ok(false) => json!({ "id": instance.deployment_id, "exists": false }),
            Ok(true) => match c.executions(&instance.deployment_id).await {
                Ok(executions) => json!({
                    "id": instance.deployment_id,
                    "exists": true,
                    "executions": executions,
                }),
                Err(e) => json!({ "id": instance.deployment_id, "exists": true,
                    "executions_error": e.to_string() }),
            },
            Err(e) => json!({ "id": instance.deployment_id, "error": e.to_string() }),
        },
    };
    let bindings = b
        .store
        .bindings_of(&id)
        .await
        .map_err(store_failed)?
        .into_iter()
        .map(|bd| ShownBinding {
            binding_id: bd.id.to_string(),
            state: serde_json::to_value(bd.state).map_or_else(|_| "?".into(), text_of),
            binder: bd.binder.clone(),
            lease_id: lease_of(&bd.binder_state),
            expires_at: time_text(bd.expires_at),
            renew_before: time_text(bd.renew_before),
        })
        .collect();
    let shown = Shown {
        instance,
        deployment,
        bindings,
    };
    if args.json {
        return print_json(&shown);
    }
    let i = &shown.instance;
    println!("instance     {}", i.id);
    println!("state        {}", i.state.as_str());
    println!(
        "service      {} (blueprint {})",
        i.service_id, i.blueprint_id
    );
    println!("plan         {}", i.plan_id);
    println!("created      {}", time_text(Some(i.created_at)));
    if let Some(op) = &i.operation {
        println!(
            "operation    {}",
            serde_json::to_string(op).unwrap_or_default()
        );
    }
    if let Some(url) = &i.dashboard_url {
        println!("dashboard    {url}");
    }
    println!("deployment   {}", i.deployment_id);
    match shown.deployment.get("executions").and_then(Value::as_array) {
        Some(executions) => {
            for e in executions {
                println!(
                    "  execution  {} {} {} {}{}",
                    e.get("id").and_then(Value::as_str).unwrap_or("-"),
                    e.get("workflow_id").and_then(Value::as_str).unwrap_or("-"),
                    e.get("status").and_then(Value::as_str).unwrap_or("-"),
                    e.get("created_at").and_then(Value::as_str).unwrap_or("-"),
                    e.get("error")
                        .and_then(Value::as_str)
                        .filter(|s| !s.is_empty())
                        .map(|s| format!(" error: {}", s.lines().next().unwrap_or("")))
                        .unwrap_or_default(),
                );
            }
        }
        None => println!("  {}", shown.deployment),
    }
    println!("bindings     {}", shown.bindings.len());
    for bd in &shown.bindings {
        println!(
            "  binding    {} {} {} lease {} expires {}",
            bd.binding_id,
            bd.state,
            bd.binder,
            bd.lease_id.as_deref().unwrap_or("-"),
            bd.expires_at
        );
    }
    Ok(())
}

fn lease_of(binder_state: &Value) -> Option<String> {
    binder_state
        .get("lease_id")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

fn confirm(prompt: &str) -> bool {
    eprint!("{prompt} [y/N] ");
    let _ = std::io::stderr().flush();
    let mut line = String::new();
    match std::io::stdin().lock().read_line(&mut line) {
        Ok(_) => matches!(line.trim(), "y" | "Y" | "yes" | "YES"),
        Err(_) => false,
    }
}

/// What purging one instance did.
#[derive(Debug, Default, Serialize)]
struct Purged {
    instance_id: String,
    bindings_revoked: usize,
    binder_objects_removed: bool,
    deployment_deleted: bool,
    record_deleted: bool,
}

async fn purge(args: PurgeArgs) -> Result<(), StartupError> {
    let id = parse_id(&args.instance_id)?;
    let b = backends(&args.config).await?;
    let instance = b
        .store
        .instance(&id)
        .await
        .map_err(store_failed)?
        .ok_or_else(|| StartupError(format!("no instance {id} in the store")))?;
    if !args.yes
        && !confirm(&format!(
            "Purge instance {id} ({}, deployment {}){}?",
            instance.state.as_str(),
            instance.deployment_id,
            if args.delete_deployment {
                " and delete its deployment"
            } else {
                ""
            }
        ))
    {
        return Err(StartupError("not confirmed; nothing was changed".into()));
    }
    let purged = purge_instance(&b, &instance, args.delete_deployment).await?;
    if args.json {
        return print_json(&purged);
    }
    println!(
        "purged {}: {} binding(s) revoked, binder objects removed: {}, deployment deleted: {}",
        purged.instance_id,
        purged.bindings_revoked,
        purged.binder_objects_removed,
        purged.deployment_deleted
    );
    Ok(())
}

async fn purge_instance(
    b: &Backends,
    instance: &Instance,
    delete_deployment: bool,
) -> Result<Purged, StartupError> {
    let mut purged = Purged {
        instance_id: instance.id.to_string(),
        ..Purged::default()
    };
    let bindings = b
        .store
        .bindings_of(&instance.id)
        .await
        .map_err(store_failed)?;
    for binding in &bindings {
        let binder = b.binders.get(&binding.binder).ok_or_else(|| {
            StartupError(format!(
                "binding {} uses binder {:?}, which is not configured; configure it (e.g. \
                 --vault-addr and --vault-token) so its credentials can be revoked",
                binding.id, binding.binder
            ))
        })?;
        binder
            .revoke(binding)
            .await
            .map_err(|e| StartupError(format!("revoking binding {} failed: {e}", binding.id)))?;
        b.store
            .delete_binding(&instance.id, &binding.id, binding.version)
            .await
            .map_err(store_failed)?;
        purged.bindings_revoked += 1;
    }
    let settings = b
        .store
        .service_settings(&instance.blueprint_id)
        .await
        .map_err(store_failed)?;
    let binder_names: BTreeSet<String> = bindings
        .iter()
        .map(|bd| bd.binder.clone())
        .chain(settings.as_ref().map(|s| s.binder.clone()))
        .collect();
    let settings = settings.unwrap_or_else(|| ServiceSettings {
        blueprint_id: instance.blueprint_id.clone(),
        binder: String::new(),
        binder_config: String::new(),
        binding_rotatable: false,
    });
    for name in &binder_names {
        if let Some(binder) = b.binders.get(name) {
            binder
                .remove_instance(instance, &settings)
                .await
                .map_err(|e| {
                    StartupError(format!(
                        "removing what binder {name:?} wrote for {} failed: {e}",
                        instance.id
                    ))
                })?;
            purged.binder_objects_removed = true;
        }
    }
    if delete_deployment {
        let cloudify = b.cloudify.as_ref().ok_or_else(|| {
            StartupError("--delete-deployment needs --cloudify-url (CLOUDIFY_URL)".into())
        })?;
        if let Ok(Some(execution)) = cloudify.running_execution(&instance.deployment_id).await {
            cloudify.cancel_execution(&execution).await.map_err(|e| {
                StartupError(format!("cancelling execution {execution} failed: {e}"))
            })?;
        }
        cloudify
            .force_delete_deployment(&instance.deployment_id)
            .await
            .map_err(|e| {
                StartupError(format!(
                    "deleting deployment {} failed: {e}",
                    instance.deployment_id
                ))
            })?;
        purged.deployment_deleted = true;
    }
    b.store
        .delete_instance(&instance.id, instance.version)
        .await
        .map_err(store_failed)?;
    purged.record_deleted = true;
    tracing::warn!(instance_id = %instance.id, "instance purged by an operator");
    Ok(purged)
}

/// What `reconcile` found (and, with `--fix`, did).
#[derive(Debug, Default, Serialize)]
pub struct Drift {
    /// Deployments named by the broker (`osb-` prefix) with no instance record.
    pub orphan_deployments: Vec<String>,
    /// Instances whose deployment no longer exists in Cloudify.
    pub instances_without_deployment: Vec<String>,
    /// Leases under the broker's Vault roles that no binding records.
    pub orphan_leases: Vec<String>,
    /// What `--fix` repaired, one line each.
    pub fixed: Vec<String>,
    /// What could not be checked or repaired, one line each.
    pub errors: Vec<String>,
    /// Checks skipped because their backend is not configured.
    pub unchecked: Vec<String>,
}

impl Drift {
    fn is_clean(&self) -> bool {
        self.orphan_deployments.is_empty()
            && self.instances_without_deployment.is_empty()
            && self.orphan_leases.is_empty()
            && self.errors.is_empty()
    }
}

/// `cloudify-osb reconcile [--fix]`. Exits 0 when nothing drifted (or everything found was
/// fixed), 1 otherwise, so it can run from cron and alert.
pub async fn run_reconcile(args: ReconcileArgs) -> Result<(), StartupError> {
    let b = backends(&args.config).await?;
    let min_age = i64::try_from(args.min_age.as_secs()).unwrap_or(i64::MAX);
    let drift = reconcile(&b, args.fix, min_age).await?;
    if args.json {
        print_json(&drift)?;
    } else {
        for d in &drift.orphan_deployments {
            println!("orphan deployment           {d}");
        }
        for i in &drift.instances_without_deployment {
            println!("instance without deployment {i}");
        }
        for l in &drift.orphan_leases {
            println!("orphan lease                {l}");
        }
        for f in &drift.fixed {
            println!("fixed                       {f}");
        }
        for e in &drift.errors {
            println!("error                       {e}");
        }
        for u in &drift.unchecked {
            println!("not checked                 {u}");
        }
        if drift.is_clean() {
            println!("no drift");
        }
    }
    let unfixed = !drift.errors.is_empty()
        || (!args.fix && !drift.is_clean())
        || drift.fixed.len()
            < drift.orphan_deployments.len()
                + drift.instances_without_deployment.len()
                + drift.orphan_leases.len();
    if unfixed {
        return Err(StartupError(if args.fix {
            "drift remains (see above)".into()
        } else {
            "drift found; run again with --fix to repair it".into()
        }));
    }
    Ok(())
}

async fn reconcile(b: &Backends, fix: bool, min_age_secs: i64) -> Result<Drift, StartupError> {
    let mut drift = Drift::default();
    let instances = b.store.instances(None).await.map_err(store_failed)?;
    let now = OffsetDateTime::now_utc();

    match &b.cloudify {
        None => drift
            .unchecked
            .push("Cloudify is not configured (--cloudify-url): deployments not checked".into()),
        Some(cloudify) => match cloudify.deployment_ids().await {
            Err(e) => drift
                .errors
                .push(format!("listing Cloudify deployments failed: {e}")),
            Ok(ids) => {
                let deployments: BTreeSet<String> = ids.into_iter().collect();
                let known: BTreeSet<&str> =
                    instances.iter().map(|i| i.deployment_id.as_str()).collect();
                for d in &deployments {
                    if d.starts_with(DEPLOYMENT_PREFIX) && !known.contains(d.as_str()) {
                        drift.orphan_deployments.push(d.clone());
                        if fix {
                            match cloudify.delete_deployment(d).await {
                                Ok(()) => drift.fixed.push(format!("deleted deployment {d}")),
                                Err(e) => {
                                    drift.errors.push(format!("deleting deployment {d}: {e}"))
                                }
                            }
                        }
                    }
                }
                for i in &instances {
                    if deployments.contains(&i.deployment_id) {
                        continue;
                    }
                    drift.instances_without_deployment.push(i.id.to_string());
                    if !fix {
                        continue;
                    }
                    if (now - i.created_at).whole_seconds() < min_age_secs {
                        drift.errors.push(format!(
                            "instance {} is younger than {min_age_secs}s (--min-age); not purged",
                            i.id
                        ));
                        continue;
                    }
                    match purge_instance(b, i, false).await {
                        Ok(p) => drift.fixed.push(format!(
                            "purged instance {} ({} binding(s) revoked)",
                            p.instance_id, p.bindings_revoked
                        )),
                        Err(e) => drift.errors.push(format!("purging {}: {e}", i.id)),
                    }
                }
            }
        },
    }

    match &b.vault {
        None => drift
            .unchecked
            .push("Vault is not configured (--vault-addr): leases not checked".into()),
        Some(vault) => {
            let mut recorded = BTreeSet::new();
            for i in &instances {
                for bd in b.store.bindings_of(&i.id).await.map_err(store_failed)? {
                    if let Some(lease) = lease_of(&bd.binder_state) {
                        recorded.insert(lease);
                    }
                }
            }
            match vault.broker_leases().await {
                Err(e) => drift.errors.push(format!(
                    "listing Vault leases failed (the token needs sudo on sys/leases/lookup): {e}"
                )),
                Ok(leases) => {
                    for lease in leases {
                        if recorded.contains(&lease) {
                            continue;
                        }
                        drift.orphan_leases.push(lease.clone());
                        if fix {
                            match vault.revoke_lease_id(&lease).await {
                                Ok(()) => drift.fixed.push(format!("revoked lease {lease}")),
                                Err(e) => drift.errors.push(format!("revoking lease {lease}: {e}")),
                            }
                        }
                    }
                }
            }
        }
    }
    Ok(drift)
}
