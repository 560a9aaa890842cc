//! DynamoDB [`Store`] (DESIGN.md §4): one table, keys by aggregate, nothing ever scanned.
//!
//! | item | `pk` | `sk` | index keys |
//! |---|---|---|---|
//! | catalog entry | `CATALOG` | `SERVICE#<service_id>#<tag>` (tag: 20 digits) | |
//! | catalog version | `CATALOG` | `VERSION` | |
//! | service settings | `CATALOG` | `SETTINGS#<blueprint_id>` | |
//! | instance | `INSTANCE#<id>` | `META` | `gsi2pk = STATE#<state>`, `gsi2sk = <id>` |
//! | binding | `INSTANCE#<id>` | `BINDING#<binding_id>` | `gsi1pk = RENEW`, `gsi1sk = renew_before` (ns) |
//!
//! Records are mapped with serde_dynamo, except catalog entries, kept as one JSON string
//! (`doc`; see `catalog.rs`); the key attributes are added beside them. Creates are
//! `attribute_not_exists(pk)`, updates and deletes are conditional on the stored `version`.
//! Items may carry a `ttl` (epoch seconds, the table's TTL attribute); since DynamoDB deletes
//! expired items lazily, an expired item still present is treated as absent by every read and
//! may be created over. Retries of throttled or failed calls are the SDK's.
//!
//! # The catalog: staged entries, one conditional publish
//!
//! A sync may change thousands of entries at once, far more than one `TransactWriteItems`
//! holds (100 items, 4 MB), and readers must never see half of such a write. So entries are
//! never overwritten in place: each write stages new items and publishes them all at once.
//!
//! - The version item holds `catalog_version` (the published version), `next_tag` (the
//!   highest tag any writer claimed), the write lease (`writer`, `writer_until`) and
//!   `aborted`, the tags of writers that never published.
//! - Every entry item carries `catalog_tag`, the version it was written for, also in its sort
//!   key, so all items of a service are adjacent and in tag order. An item is *committed* when
//!   its tag is ≤ `catalog_version` and not in `aborted`; the catalog at a version is, per
//!   service, its committed item with the highest tag. (Items written before tags existed,
//!   sort key `SERVICE#<id>`, count as tag 0.)
//! - **Write** (`put_catalog_entries`): claim the lease and a fresh tag T = max(`next_tag`,
//!   `catalog_version`) + 1 with one conditional `UpdateItem` (the item unchanged since read,
//!   no live lease); put the changed entries under T with `BatchWriteItem` (25 per call,
//!   unprocessed items retried, the lease renewed when half of it is left); then publish with
//!   one conditional `UpdateItem`: `catalog_version = T`, lease released, the tags skipped
//!   between the old version and T added to `aborted`, all on condition that this writer
//!   still holds the lease. Writers are thus serialised (within a process also by a mutex),
//!   each publish bumps the version once, and a writer that died or lost its lease leaves
//!   only items that readers never count.
//! - **Read** (`catalog`): the version item first, then the entry Query (all pages). Items
//!   newer than the version read are a write in flight, left out. Committed items of the
//!   version read are never deleted before a newer version is published (below), and the
//!   items superseding them sort after them, so a Query that meets a deleted one also meets
//!   its newer replacement: when an item newer than the version shows up, the version item is
//!   read again, and if it moved the catalog is read again (up to 5 times; then the entries
//!   of the newer version are returned under the older version number, so that a cache keyed
//!   by version reads again).
//! - **Garbage**: after publishing, the writer deletes (`BatchWriteItem`, best effort) the
//!   items its process's last catalog read saw that are now superseded or aborted; the sync
//!   always reads the catalog before writing, so old versions of an entry live until the
//!   next sync that changes it. What a failed or crashed writer leaves is skipped by readers
//!   and collected by the next write after a read.
//!
//! Cost: a sync that changes k entries makes 2 version reads, 2 `UpdateItem`s and ⌈k/25⌉
//! `BatchWriteItem` calls (plus ⌈k/25⌉ for the garbage); a sync that changes nothing writes
//! nothing; a reader pays one extra `GetItem` only when it meets a write in flight.
//!
//! Owns the AWS SDK types; nothing outside `adapters::dynamodb` may name them, and this
//! module imports nothing from `http` or other adapters.

mod catalog;
mod table;

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder;
use aws_sdk_dynamodb::types::AttributeValue;
use serde::Serialize;
use serde::de::DeserializeOwned;
use time::OffsetDateTime;
use tokio::sync::Mutex;

use crate::domain::binding::{Binding, BindingState};
use crate::domain::catalog::{Catalog, CatalogEntry, ServiceSettings};
use crate::domain::error::StoreError;
use crate::domain::ids::{BindingId, InstanceId, ServiceId};
use crate::domain::instance::{Instance, InstanceState};
use crate::domain::ports::Store;

type Item = HashMap<String, AttributeValue>;

const CATALOG_PK: &str = "CATALOG";
const VERSION_SK: &str = "VERSION";
const SERVICE_PREFIX: &str = "SERVICE#";
const SETTINGS_PREFIX: &str = "SETTINGS#";
const INSTANCE_PREFIX: &str = "INSTANCE#";
const META_SK: &str = "META";
const BINDING_PREFIX: &str = "BINDING#";
const RENEW_PK: &str = "RENEW";
const STATE_PREFIX: &str = "STATE#";
/// The index of bindings by renewal time.
const RENEW_INDEX: &str = "gsi1";
/// The index of instances by state.
const STATE_INDEX: &str = "gsi2";
const ALL_STATES: [InstanceState; 5] = [
    InstanceState::Provisioning,
    InstanceState::Provisioned,
    InstanceState::ProvisionFailed,
    InstanceState::Updating,
    InstanceState::Deprovisioning,
];

/// A [`Store`] on one DynamoDB table (see the module docs for its items).
#[derive(Clone)]
pub struct DynamoStore {
    client: Client,
    table: String,
    page_limit: Option<i32>,
    /// Serialises this process's catalog writes: they all contend for the one version item,
    /// so running them together only burns cancelled transactions. Writers in other
    /// processes are kept apart by the conditional version bump.
    catalog_writes: Arc<Mutex<()>>,
    /// The keys of the catalog items this process read last: what the next catalog write
    /// deletes once it has superseded them (see the module docs).
    catalog_seen: Arc<std::sync::Mutex<CatalogKeys>>,
}

/// Per service, the (tag, sort key) of each catalog item read.
type CatalogKeys = BTreeMap<ServiceId, Vec<(u64, String)>>;

impl fmt::Debug for DynamoStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DynamoStore")
            .field("table", &self.table)
            .finish_non_exhaustive()
    }
}

/// The key and index attributes written beside a record.
#[derive(Serialize)]
struct Keys {
    pk: String,
    sk: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    gsi1pk: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    gsi1sk: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    gsi2pk: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    gsi2sk: Option<String>,
}

impl Keys {
    fn new(pk: String, sk: String) -> Self {
        Self {
            pk,
            sk,
            gsi1pk: None,
            gsi1sk: None,
            gsi2pk: None,
            gsi2sk: None,
        }
    }

    fn of_instance(instance: &Instance) -> Self {
        let mut keys = Self::new(instance_pk(&instance.id), META_SK.to_owned());
        keys.gsi2pk = Some(format!("{STATE_PREFIX}{}", instance.state.as_str()));
        keys.gsi2sk = Some(instance.id.as_str().to_owned());
        keys
    }

    fn of_binding(binding: &Binding) -> Self {
        let mut keys = Self::new(instance_pk(&binding.instance_id), binding_sk(&binding.id));
        if binding.state == BindingState::Bound {
            if let Some(renew) = binding.renew_before {
                keys.gsi1pk = Some(RENEW_PK);
                keys.gsi1sk = Some(sort_time(renew));
            }
        }
        keys
    }
}

fn instance_pk(id: &InstanceId) -> String {
    format!("{INSTANCE_PREFIX}{}", id.as_str())
}

fn binding_sk(id: &BindingId) -> String {
    format!("{BINDING_PREFIX}{}", id.as_str())
}

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn n(v: impl fmt::Display) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

/// A time as a sortable number (Unix nanoseconds, saturating outside i64).
fn sort_time(t: OffsetDateTime) -> i64 {
    i64::try_from(t.unix_timestamp_nanos()).unwrap_or(if t.unix_timestamp() < 0 {
        i64::MIN
    } else {
        i64::MAX
    })
}

fn now_epoch() -> i64 {
    OffsetDateTime::now_utc().unix_timestamp()
}

/// A record with its key attributes, as one item.
fn to_item<T: Serialize>(keys: Keys, record: &T) -> Result<Item, StoreError> {
    let mut item: Item = serde_dynamo::to_item(record)
        .map_err(|e| StoreError::Corrupt(format!("cannot map record to an item: {e}")))?;
    let keys: Item = serde_dynamo::to_item(keys)
        .map_err(|e| StoreError::Corrupt(format!("cannot map keys to an item: {e}")))?;
    item.extend(keys);
    Ok(item)
}

/// Whether an item carries a `ttl` that has passed (gone, though DynamoDB has not deleted it).
fn expired(item: &Item, now: i64) -> bool {
    match item.get("ttl") {
        Some(AttributeValue::N(t)) => t.parse::<i64>().is_ok_and(|t| t <= now),
        _ => false,
    }
}

/// The record in an item, or `None` for an expired item.
fn from_item<T: DeserializeOwned>(item: Item, now: i64) -> Result<Option<T>, StoreError> {
    if expired(&item, now) {
        return Ok(None);
    }
    serde_dynamo::from_item(item)
        .map(Some)
        .map_err(|e| StoreError::Corrupt(e.to_string()))
}

fn from_items<T: DeserializeOwned>(items: Vec<Item>) -> Result<Vec<T>, StoreError> {
    let now = now_epoch();
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        if let Some(record) = from_item(item, now)? {
            out.push(record);
        }
    }
    Ok(out)
}

fn unavailable<E, R>(op: &str, err: SdkError<E, R>) -> StoreError
where
    E: std::error::Error + Send + Sync + 'static,
    R: fmt::Debug + Send + Sync + 'static,
{
    StoreError::Unavailable(format!("DynamoDB {op}: {}", DisplayErrorContext(err)))
}

/// Whether the call failed on its condition expression.
fn condition_failed<E: ProvideErrorMetadata, R>(err: &SdkError<E, R>) -> bool {
    err.as_service_error()
        .is_some_and(|e| e.code() == Some("ConditionalCheckFailedException"))
}

/// `attribute_not_exists(#ttl) OR #ttl > :now`: the item has not expired.
const LIVE: &str = "(attribute_not_exists(#ttl) OR #ttl > :now)";

impl DynamoStore {
    /// A store on `table` through `client`.
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
            page_limit: None,
            catalog_writes: Arc::new(Mutex::new(())),
            catalog_seen: Arc::new(std::sync::Mutex::new(BTreeMap::new())),
        }
    }

    /// A store on `table` with region and credentials from the environment (the usual AWS
    /// chain); the endpoint follows `AWS_ENDPOINT_URL_DYNAMODB` when it is set. Every call
    /// has a time limit, retries included: a store that stops answering (not refusing: a
    /// hung server) makes the request answer 503 naming the store instead of hanging.
    pub async fn from_env(table: impl Into<String>) -> Self {
        let timeouts = aws_config::timeout::TimeoutConfig::builder()
            .connect_timeout(Duration::from_secs(3))
            // Generous: a shared test moto serialises every request, and a catalog
            // transaction of 100 entries is large; the point is that nothing waits forever.
            .operation_attempt_timeout(Duration::from_secs(30))
            .operation_timeout(Duration::from_secs(60))
            .build();
        let config = aws_config::from_env().timeout_config(timeouts).load().await;
        Self::new(Client::new(&config), table)
    }

    /// Caps the items per Query page (DynamoDB caps pages at 1 MB anyway); for tests and
    /// for keeping single responses small.
    pub fn with_page_limit(mut self, limit: i32) -> Self {
        self.page_limit = Some(limit.max(1));
        self
    }

    /// The table's name.
    pub fn table(&self) -> &str {
        &self.table
    }

    /// Every item of a Query, following `LastEvaluatedKey` page by page.
    async fn query_all(&self, query: QueryFluentBuilder) -> Result<Vec<Item>, StoreError> {
        let query = query.table_name(&self.table).set_limit(self.page_limit);
        let mut items = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let page = query
                .clone()
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| unavailable("Query", e))?;
            items.extend(page.items.unwrap_or_default());
            match page.last_evaluated_key {
                Some(key) if !key.is_empty() => start = Some(key),
                _ => return Ok(items),
            }
        }
    }

    /// The items of one partition whose sort key starts with `prefix`, strongly consistent.
    async fn query_prefix(&self, pk: &str, prefix: &str) -> Result<Vec<Item>, StoreError> {
        let query = self
            .client
            .query()
            .consistent_read(true)
            .key_condition_expression("pk = :pk AND begins_with(sk, :prefix)")
            .expression_attribute_values(":pk", s(pk))
            .expression_attribute_values(":prefix", s(prefix));
        self.query_all(query).await
    }

    /// Strongly consistent read of one live item.
    async fn get<T: DeserializeOwned>(
        &self,
        pk: String,
        sk: String,
    ) -> Result<Option<T>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(pk))
            .key("sk", s(sk))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| unavailable("GetItem", e))?;
        match out.item {
            Some(item) => from_item(item, now_epoch()),
            None => Ok(None),
        }
    }

    /// Puts a new item unless a live one has its key.
    async fn create(&self, item: Item) -> Result<(), StoreError> {
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk) OR #ttl <= :now")
            .expression_attribute_names("#ttl", "ttl")
            .expression_attribute_values(":now", n(now_epoch()))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) if condition_failed(&e) => Err(StoreError::AlreadyExists),
            Err(e) => Err(unavailable("PutItem", e)),
        }
    }

    /// Replaces a live item whose stored version is `expected`.
    async fn replace(&self, item: Item, expected: u64) -> Result<(), StoreError> {
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression(format!("#v = :expected AND {LIVE}"))
            .expression_attribute_names("#v", "version")
            .expression_attribute_names("#ttl", "ttl")
            .expression_attribute_values(":expected", n(expected))
            .expression_attribute_values(":now", n(now_epoch()))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) if condition_failed(&e) => Err(StoreError::Conflict),
            Err(e) => Err(unavailable("PutItem", e)),
        }
    }

    /// Deletes a live item whose stored version is `expected`.
    async fn delete(&self, pk: String, sk: String, expected: u64) -> Result<(), StoreError> {
        let result = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key("pk", s(pk))
            .key("sk", s(sk))
            .condition_expression(format!("#v = :expected AND {LIVE}"))
            .expression_attribute_names("#v", "version")
            .expression_attribute_names("#ttl", "ttl")
            .expression_attribute_values(":expected", n(expected))
            .expression_attribute_values(":now", n(now_epoch()))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) if condition_failed(&e) => Err(StoreError::Conflict),
            Err(e) => Err(unavailable("DeleteItem", e)),
        }
    }
}

#[async_trait]
impl Store for DynamoStore {
    async fn catalog_version(&self) -> Result<u64, StoreError> {
        Ok(self.version_state().await?.committed)
    }

    async fn catalog(&self) -> Result<Catalog, StoreError> {
        self.read_catalog().await
    }

    async fn put_catalog_entries(&self, entries: &[CatalogEntry]) -> Result<u64, StoreError> {
        if entries.is_empty() {
            return self.catalog_version().await;
        }
        // One item per service: the last entry of a service ID wins.
        let mut by_id: BTreeMap<&ServiceId, &CatalogEntry> = BTreeMap::new();
        for e in entries {
            by_id.insert(&e.service.id, e);
        }
        let unique: Vec<&CatalogEntry> = by_id.into_values().collect();
        let _writing = self.catalog_writes.lock().await;
        self.write_catalog(&unique).await
    }

    async fn service_settings(
        &self,
        blueprint_id: &str,
    ) -> Result<Option<ServiceSettings>, StoreError> {
        self.get(
            CATALOG_PK.to_owned(),
            format!("{SETTINGS_PREFIX}{blueprint_id}"),
        )
        .await
    }

    async fn all_service_settings(&self) -> Result<Vec<ServiceSettings>, StoreError> {
        from_items(self.query_prefix(CATALOG_PK, SETTINGS_PREFIX).await?)
    }

    async fn put_service_settings(&self, settings: &ServiceSettings) -> Result<(), StoreError> {
        let item = to_item(
            Keys::new(
                CATALOG_PK.to_owned(),
                format!("{SETTINGS_PREFIX}{}", settings.blueprint_id),
            ),
            settings,
        )?;
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .send()
            .await
            .map_err(|e| unavailable("PutItem", e))?;
        Ok(())
    }

    async fn create_instance(&self, instance: &Instance) -> Result<Instance, StoreError> {
        let mut stored = instance.clone();
        stored.version = 1;
        self.create(to_item(Keys::of_instance(&stored), &stored)?)
            .await?;
        Ok(stored)
    }

    async fn instance(&self, id: &InstanceId) -> Result<Option<Instance>, StoreError> {
        self.get(instance_pk(id), META_SK.to_owned()).await
    }

    async fn update_instance(&self, instance: &Instance) -> Result<Instance, StoreError> {
        let mut stored = instance.clone();
        stored.version = instance.version + 1;
        self.replace(
            to_item(Keys::of_instance(&stored), &stored)?,
            instance.version,
        )
        .await?;
        Ok(stored)
    }

    async fn delete_instance(&self, id: &InstanceId, version: u64) -> Result<(), StoreError> {
        self.delete(instance_pk(id), META_SK.to_owned(), version)
            .await
    }

    async fn instances(&self, state: Option<InstanceState>) -> Result<Vec<Instance>, StoreError> {
        let states: &[InstanceState] = match &state {
            Some(one) => std::slice::from_ref(one),
            None => &ALL_STATES,
        };
        let mut items = Vec::new();
        for st in states {
            let query = self
                .client
                .query()
                .index_name(STATE_INDEX)
                .key_condition_expression("gsi2pk = :state")
                .expression_attribute_values(":state", s(format!("{STATE_PREFIX}{}", st.as_str())));
            items.extend(self.query_all(query).await?);
        }
        from_items(items)
    }

    async fn create_binding(&self, binding: &Binding) -> Result<Binding, StoreError> {
        let mut stored = binding.clone();
        stored.version = 1;
        self.create(to_item(Keys::of_binding(&stored), &stored)?)
            .await?;
        Ok(stored)
    }

    async fn binding(
        &self,
        instance: &InstanceId,
        id: &BindingId,
    ) -> Result<Option<Binding>, StoreError> {
        self.get(instance_pk(instance), binding_sk(id)).await
    }

    async fn update_binding(&self, binding: &Binding) -> Result<Binding, StoreError> {
        let mut stored = binding.clone();
        stored.version = binding.version + 1;
        self.replace(
            to_item(Keys::of_binding(&stored), &stored)?,
            binding.version,
        )
        .await?;
        Ok(stored)
    }

    async fn delete_binding(
        &self,
        instance: &InstanceId,
        id: &BindingId,
        version: u64,
    ) -> Result<(), StoreError> {
        self.delete(instance_pk(instance), binding_sk(id), version)
            .await
    }

    async fn bindings_of(&self, instance: &InstanceId) -> Result<Vec<Binding>, StoreError> {
        from_items(
            self.query_prefix(&instance_pk(instance), BINDING_PREFIX)
                .await?,
        )
    }

    async fn bindings_due(&self, time: OffsetDateTime) -> Result<Vec<Binding>, StoreError> {
        let query = self
            .client
            .query()
            .index_name(RENEW_INDEX)
            .key_condition_expression("gsi1pk = :renew AND gsi1sk < :time")
            .expression_attribute_values(":renew", s(RENEW_PK))
            .expression_attribute_values(":time", n(sort_time(time)));
        let due: Vec<Binding> = from_items(self.query_all(query).await?)?;
        // The index is eventually consistent: re-check what the item itself says.
        Ok(due
            .into_iter()
            .filter(|b| b.state == BindingState::Bound && b.renew_before.is_some_and(|r| r < time))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renewal_times_sort_as_numbers_across_fraction_lengths() {
        let whole = OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap();
        let later = whole + time::Duration::milliseconds(500);
        assert!(sort_time(whole) < sort_time(later));
        assert_eq!(sort_time(whole), 1_800_000_000_000_000_000);
    }

    #[test]
    fn an_item_whose_ttl_has_passed_is_expired() {
        let mut item = Item::new();
        assert!(!expired(&item, 100));
        item.insert("ttl".into(), n(100));
        assert!(expired(&item, 100));
        assert!(!expired(&item, 99));
    }
}
