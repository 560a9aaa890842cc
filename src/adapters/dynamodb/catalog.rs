//! The catalog on DynamoDB: entries staged under a new catalog version with `BatchWriteItem`,
//! published by one conditional `UpdateItem` of the version item, superseded items collected
//! afterwards. See the module docs of [`super`] for the design and why it is safe.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder;
use aws_sdk_dynamodb::types::{AttributeValue, DeleteRequest, PutRequest, WriteRequest};
use time::OffsetDateTime;

use super::{
    CATALOG_PK, DynamoStore, Item, Keys, SERVICE_PREFIX, VERSION_SK, condition_failed, expired,
    from_item, n, now_epoch, s, to_item, unavailable,
};
use crate::domain::catalog::{Catalog, CatalogEntry};
use crate::domain::error::StoreError;
use crate::domain::ids::ServiceId;

/// The committed catalog version.
const VERSION_ATTR: &str = "catalog_version";
/// The highest tag any writer has claimed (≥ the committed version).
const NEXT_TAG_ATTR: &str = "next_tag";
/// The writer holding the write lease, and until when (epoch seconds).
const WRITER_ATTR: &str = "writer";
const WRITER_UNTIL_ATTR: &str = "writer_until";
/// Tags claimed by writers that never committed (a number set).
const ABORTED_ATTR: &str = "aborted";
/// On each entry item: the catalog version it was written for.
pub(super) const TAG_ATTR: &str = "catalog_tag";

/// How long a write lease lasts; the writer renews it when half of it is left.
const LEASE_SECS: i64 = 120;
/// How long a writer waits for another writer's lease before giving up with `Conflict`.
const ACQUIRE_WAIT: Duration = Duration::from_secs(90);
/// `BatchWriteItem` takes at most 25 requests and 16 MB.
const BATCH_ITEMS: usize = 25;
const BATCH_BYTES: usize = 12 * 1024 * 1024;
/// Attempts at writing a batch's unprocessed items (throttling).
const BATCH_ATTEMPTS: u32 = 12;
/// Reads retried when a write was published while the catalog was being read.
const READ_ATTEMPTS: u32 = 5;

/// The version item as read.
#[derive(Debug, Clone, Default, PartialEq)]
pub(super) struct VersionState {
    exists: bool,
    pub(super) committed: u64,
    next_tag: Option<u64>,
    writer: Option<String>,
    writer_until: i64,
    aborted: BTreeSet<u64>,
}

impl VersionState {
    fn from_item(item: Option<&Item>) -> Result<Self, StoreError> {
        let Some(item) = item else {
            return Ok(Self::default());
        };
        let num = |name: &str| -> Result<Option<u64>, StoreError> {
            match item.get(name) {
                None => Ok(None),
                Some(AttributeValue::N(v)) => v
                    .parse()
                    .map(Some)
                    .map_err(|_| StoreError::Corrupt(format!("{name} {v:?}"))),
                Some(other) => Err(StoreError::Corrupt(format!("{name} {other:?}"))),
            }
        };
        let aborted = match item.get(ABORTED_ATTR) {
            None => BTreeSet::new(),
            Some(AttributeValue::Ns(v)) => v
                .iter()
                .map(|t| {
                    t.parse()
                        .map_err(|_| StoreError::Corrupt(format!("aborted tag {t:?}")))
                })
                .collect::<Result<_, _>>()?,
            Some(other) => return Err(StoreError::Corrupt(format!("aborted {other:?}"))),
        };
        Ok(Self {
            exists: true,
            committed: num(VERSION_ATTR)?.unwrap_or(0),
            next_tag: num(NEXT_TAG_ATTR)?,
            writer: match item.get(WRITER_ATTR) {
                Some(AttributeValue::S(w)) => Some(w.clone()),
                _ => None,
            },
            writer_until: num(WRITER_UNTIL_ATTR)?.map_or(0, |v| v as i64),
            aborted,
        })
    }

    /// Whether items written for `tag` are part of the catalog at this version.
    fn is_committed(&self, tag: u64) -> bool {
        tag <= self.committed && !self.aborted.contains(&tag)
    }

    /// Whether another writer holds a lease that has not run out.
    fn leased_at(&self, now: i64) -> bool {
        self.writer.is_some() && self.writer_until > now
    }
}

/// The entry as one JSON string. The catalog is never queried by its fields, and one string
/// is smaller in the table than a tree of typed attributes and far cheaper to map (for the
/// broker, and for moto, whose Query of 1,000 entries as nested maps took ~50 s).
const DOC_ATTR: &str = "doc";

/// The entry of an item: the `doc` string, or (items written before it) the item's
/// attributes; `None` for an expired item.
fn entry_from_item(item: Item, now: i64) -> Result<Option<CatalogEntry>, StoreError> {
    if expired(&item, now) {
        return Ok(None);
    }
    match item.get(DOC_ATTR) {
        Some(AttributeValue::S(doc)) => serde_json::from_str(doc)
            .map(Some)
            .map_err(|e| StoreError::Corrupt(format!("catalog entry: {e}"))),
        _ => from_item(item, now),
    }
}

/// One catalog entry item as read: its key, tag and record.
struct Stored {
    sk: String,
    tag: u64,
    entry: CatalogEntry,
}

/// The sort key of an entry item: the service ID, then the tag (zero-padded, so that the
/// items of one service are adjacent and in tag order).
fn entry_sk(id: &ServiceId, tag: u64) -> String {
    format!("{SERVICE_PREFIX}{}#{tag:020}", id.as_str())
}

/// The entries of one Query, grouped by service ID.
fn group(items: Vec<Item>) -> Result<BTreeMap<ServiceId, Vec<Stored>>, StoreError> {
    let now = now_epoch();
    let mut out: BTreeMap<ServiceId, Vec<Stored>> = BTreeMap::new();
    for item in items {
        let sk = match item.get("sk") {
            Some(AttributeValue::S(sk)) => sk.clone(),
            _ => return Err(StoreError::Corrupt("catalog item without sk".into())),
        };
        // Items written before tags existed (sk `SERVICE#<id>`) count as tag 0.
        let tag = match item.get(TAG_ATTR) {
            None => 0,
            Some(AttributeValue::N(t)) => t
                .parse()
                .map_err(|_| StoreError::Corrupt(format!("catalog tag {t:?}")))?,
            Some(other) => return Err(StoreError::Corrupt(format!("catalog tag {other:?}"))),
        };
        if let Some(entry) = entry_from_item(item, now)? {
            out.entry(entry.service.id.clone())
                .or_default()
                .push(Stored { sk, tag, entry });
        }
    }
    Ok(out)
}

/// The catalog at `state`: per service, the item of the highest committed tag. Also says
/// whether any item carries a tag newer than `state` (a write in flight or published since).
fn pick(
    grouped: &BTreeMap<ServiceId, Vec<Stored>>,
    state: &VersionState,
) -> (Vec<CatalogEntry>, bool) {
    let mut newer = false;
    let mut entries = Vec::with_capacity(grouped.len());
    for items in grouped.values() {
        newer |= items.iter().any(|i| i.tag > state.committed);
        if let Some(best) = items
            .iter()
            .filter(|i| state.is_committed(i.tag))
            .max_by_key(|i| i.tag)
        {
            entries.push(best.entry.clone());
        }
    }
    (entries, newer)
}

/// The keys of items no reader of `state` or later needs: per service, every aborted item
/// and every committed item older than the newest committed one (`written` services count
/// `state.committed`, just published, as their newest).
fn garbage(
    seen: &BTreeMap<ServiceId, Vec<(u64, String)>>,
    state: &VersionState,
    written: &BTreeSet<ServiceId>,
) -> Vec<String> {
    let mut out = Vec::new();
    for (id, items) in seen {
        let newest = if written.contains(id) {
            Some(state.committed)
        } else {
            items
                .iter()
                .map(|(t, _)| *t)
                .filter(|t| state.is_committed(*t))
                .max()
        };
        for (tag, sk) in items {
            let aborted = *tag <= state.committed && state.aborted.contains(tag);
            let superseded = newest.is_some_and(|n| *tag < n) && state.is_committed(*tag);
            if aborted || superseded {
                out.push(sk.clone());
            }
        }
    }
    out
}

/// A token naming one write (lease holder).
fn token() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

async fn pause(attempt: u32) {
    let base = 10u64 << attempt.min(5);
    let jitter = u64::from(OffsetDateTime::now_utc().nanosecond()) % base;
    tokio::time::sleep(Duration::from_millis(base + jitter)).await;
}

impl DynamoStore {
    /// The version item, strongly consistent.
    pub(super) async fn version_state(&self) -> Result<VersionState, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(CATALOG_PK))
            .key("sk", s(VERSION_SK))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| unavailable("GetItem", e))?;
        VersionState::from_item(out.item.as_ref())
    }

    /// The committed catalog: version item first, entries after; the entries of a version
    /// published meanwhile make it read again (see the module docs of [`super`]).
    pub(super) async fn read_catalog(&self) -> Result<Catalog, StoreError> {
        let mut state = self.version_state().await?;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let grouped = group(self.query_prefix(CATALOG_PK, SERVICE_PREFIX).await?)?;
            let (mut entries, mut newer) = pick(&grouped, &state);
            let label = state.committed;
            if newer {
                let now = self.version_state().await?;
                if now.committed == state.committed {
                    // Nothing was published while reading: the newer items are a write in
                    // flight, rightly left out.
                    newer = false;
                } else if attempt >= READ_ATTEMPTS {
                    // Still racing writers: the entries as of the newer version, labelled
                    // with the older one, so that a cache keyed by version reads again.
                    entries = pick(&grouped, &now).0;
                    newer = false;
                } else {
                    state = now;
                }
            }
            if !newer {
                self.remember(&grouped);
                return Ok(Catalog {
                    version: label,
                    entries,
                });
            }
        }
    }

    /// Keeps the keys of the entry items just read, for the next write's garbage collection.
    fn remember(&self, grouped: &BTreeMap<ServiceId, Vec<Stored>>) {
        let seen = grouped
            .iter()
            .map(|(id, items)| {
                (
                    id.clone(),
                    items.iter().map(|i| (i.tag, i.sk.clone())).collect(),
                )
            })
            .collect();
        if let Ok(mut guard) = self.catalog_seen.lock() {
            *guard = seen;
        }
    }

    /// An `UpdateItem` of the catalog's version item.
    fn version_update(&self) -> UpdateItemFluentBuilder {
        self.client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(CATALOG_PK))
            .key("sk", s(VERSION_SK))
    }

    /// An update of the version item that only the lease holder `me` may make: `Conflict`
    /// when the lease was lost.
    async fn update_as_holder(
        &self,
        me: &str,
        update: impl FnOnce(UpdateItemFluentBuilder) -> UpdateItemFluentBuilder,
    ) -> Result<(), StoreError> {
        let builder = self
            .version_update()
            .condition_expression("#w = :me")
            .expression_attribute_names("#w", WRITER_ATTR)
            .expression_attribute_names("#wu", WRITER_UNTIL_ATTR)
            .expression_attribute_values(":me", s(me));
        match update(builder).send().await {
            Ok(_) => Ok(()),
            Err(e) if condition_failed(&e) => Err(StoreError::Conflict),
            Err(e) => Err(unavailable("UpdateItem", e)),
        }
    }

    /// Claims the write lease and a fresh tag; returns (committed version, tag).
    async fn acquire(&self, me: &str) -> Result<(VersionState, u64), StoreError> {
        let deadline = tokio::time::Instant::now() + ACQUIRE_WAIT;
        let mut attempt = 0;
        loop {
            let st = self.version_state().await?;
            let now = now_epoch();
            if !st.leased_at(now) {
                let tag = st.next_tag.unwrap_or(0).max(st.committed) + 1;
                let mut update = self
                    .version_update()
                    .update_expression("SET #nt = :tag, #w = :me, #wu = :until")
                    .expression_attribute_names("#nt", NEXT_TAG_ATTR)
                    .expression_attribute_names("#w", WRITER_ATTR)
                    .expression_attribute_names("#wu", WRITER_UNTIL_ATTR)
                    .expression_attribute_values(":tag", n(tag))
                    .expression_attribute_values(":me", s(me))
                    .expression_attribute_values(":until", n(now + LEASE_SECS));
                // Unchanged since read (a claim or a publish changes `next_tag` or the
                // version) and not leased meanwhile.
                update = if !st.exists {
                    update.condition_expression("attribute_not_exists(pk)")
                } else {
                    let seen = match st.next_tag {
                        Some(t) => {
                            update = update.expression_attribute_values(":nt", n(t));
                            "#nt = :nt"
                        }
                        None => "attribute_not_exists(#nt)",
                    };
                    update
                        .condition_expression(format!(
                            "{seen} AND #cv = :cv AND (attribute_not_exists(#wu) OR #wu <= :now)"
                        ))
                        .expression_attribute_names("#cv", VERSION_ATTR)
                        .expression_attribute_values(":cv", n(st.committed))
                        .expression_attribute_values(":now", n(now))
                };
                match update.send().await {
                    Ok(_) => return Ok((st, tag)),
                    Err(e) if condition_failed(&e) => {}
                    Err(e) => return Err(unavailable("UpdateItem", e)),
                }
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(StoreError::Conflict);
            }
            pause(attempt).await;
            attempt += 1;
        }
    }

    /// Extends the lease; `Conflict` when it was lost.
    async fn renew(&self, me: &str) -> Result<i64, StoreError> {
        let until = now_epoch() + LEASE_SECS;
        self.update_as_holder(me, |u| {
            u.update_expression("SET #wu = :until")
                .expression_attribute_values(":until", n(until))
        })
        .await?;
        Ok(until)
    }

    /// Publishes `tag`: the version item's one conditional update, which also releases the
    /// lease and records the tags of writers that never published.
    async fn publish(&self, me: &str, committed: u64, tag: u64) -> Result<(), StoreError> {
        let skipped: Vec<String> = (committed + 1..tag).map(|t| t.to_string()).collect();
        self.update_as_holder(me, |u| {
            let u = u
                .expression_attribute_names("#cv", VERSION_ATTR)
                .expression_attribute_values(":tag", n(tag));
            if skipped.is_empty() {
                u.update_expression("SET #cv = :tag REMOVE #w, #wu")
            } else {
                u.update_expression("SET #cv = :tag REMOVE #w, #wu ADD #ab :skipped")
                    .expression_attribute_names("#ab", ABORTED_ATTR)
                    .expression_attribute_values(":skipped", AttributeValue::Ns(skipped))
            }
        })
        .await
    }

    /// Sends write requests in batches of `BatchWriteItem`, retrying unprocessed ones.
    /// `lease`: renew the writer's lease (holder, until) between batches when it runs low.
    async fn batch_write(
        &self,
        requests: Vec<(WriteRequest, usize)>,
        mut lease: Option<(&str, &mut i64)>,
    ) -> Result<usize, StoreError> {
        let mut calls = 0;
        let mut batch: Vec<WriteRequest> = Vec::new();
        let mut bytes = 0;
        let mut iter = requests.into_iter().peekable();
        while let Some((req, size)) = iter.next() {
            batch.push(req);
            bytes += size;
            let full = batch.len() >= BATCH_ITEMS
                || iter
                    .peek()
                    .is_some_and(|(_, next)| bytes + next > BATCH_BYTES);
            if !full && iter.peek().is_some() {
                continue;
            }
            if let Some((me, until)) = lease.as_mut() {
                if now_epoch() > **until - LEASE_SECS / 2 {
                    **until = self.renew(me).await?;
                }
            }
            let mut pending = std::mem::take(&mut batch);
            bytes = 0;
            let mut attempt = 0;
            while !pending.is_empty() {
                calls += 1;
                let out = self
                    .client
                    .batch_write_item()
                    .request_items(&self.table, pending)
                    .send()
                    .await
                    .map_err(|e| unavailable("BatchWriteItem", e))?;
                pending = out
                    .unprocessed_items
                    .and_then(|mut m| m.remove(&self.table))
                    .unwrap_or_default();
                if !pending.is_empty() {
                    attempt += 1;
                    if attempt >= BATCH_ATTEMPTS {
                        return Err(StoreError::Unavailable(format!(
                            "DynamoDB BatchWriteItem: {} items still unprocessed after {attempt} attempts",
                            pending.len()
                        )));
                    }
                    pause(attempt).await;
                }
            }
        }
        Ok(calls)
    }

    /// Stages `entries` under a new tag, publishes it, then deletes what it superseded.
    pub(super) async fn write_catalog(&self, entries: &[&CatalogEntry]) -> Result<u64, StoreError> {
        let me = token();
        let (state, tag) = self.acquire(&me).await?;
        let mut until = now_epoch() + LEASE_SECS;
        let mut puts = Vec::with_capacity(entries.len());
        for e in entries {
            let mut item = to_item(
                Keys::new(CATALOG_PK.to_owned(), entry_sk(&e.service.id, tag)),
                &serde_json::Map::new(),
            )?;
            let doc = serde_json::to_string(e)
                .map_err(|e| StoreError::Corrupt(format!("catalog entry to JSON: {e}")))?;
            item.insert(DOC_ATTR.to_owned(), s(doc));
            item.insert(TAG_ATTR.to_owned(), n(tag));
            let size = item_size(&item);
            let put = PutRequest::builder()
                .set_item(Some(item))
                .build()
                .map_err(|e| StoreError::Unavailable(format!("DynamoDB PutRequest: {e}")))?;
            puts.push((WriteRequest::builder().put_request(put).build(), size));
        }
        self.batch_write(puts, Some((&me, &mut until))).await?;
        self.publish(&me, state.committed, tag).await?;

        // Garbage: what the last read of this process saw and this write superseded. Best
        // effort: a failure leaves items that readers skip and the next write collects.
        let seen = self
            .catalog_seen
            .lock()
            .map(|mut g| std::mem::take(&mut *g))
            .unwrap_or_default();
        let mut published = state;
        published.aborted.extend(published.committed + 1..tag);
        published.committed = tag;
        let written: BTreeSet<ServiceId> = entries.iter().map(|e| e.service.id.clone()).collect();
        let deletes = garbage(&seen, &published, &written)
            .into_iter()
            .filter_map(|sk| {
                let req = DeleteRequest::builder()
                    .key("pk", s(CATALOG_PK))
                    .key("sk", s(sk))
                    .build()
                    .ok()?;
                Some((WriteRequest::builder().delete_request(req).build(), 256))
            })
            .collect::<Vec<_>>();
        if !deletes.is_empty() {
            if let Err(e) = self.batch_write(deletes, None).await {
                tracing::warn!(error = %e, "catalog garbage collection failed; the next write retries");
            }
        }
        Ok(tag)
    }
}

/// An upper bound of an item's size as DynamoDB counts it (names plus values).
fn item_size(item: &Item) -> usize {
    fn value(v: &AttributeValue) -> usize {
        match v {
            AttributeValue::S(s) | AttributeValue::N(s) => s.len(),
            AttributeValue::M(m) => {
                m.iter().map(|(k, v)| k.len() + value(v) + 3).sum::<usize>() + 3
            }
            AttributeValue::L(l) => l.iter().map(|v| value(v) + 1).sum::<usize>() + 3,
            AttributeValue::Ss(v) | AttributeValue::Ns(v) => v.iter().map(String::len).sum(),
            AttributeValue::B(b) => b.as_ref().len(),
            _ => 1,
        }
    }
    item.iter().map(|(k, v)| k.len() + value(v)).sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ids::{DEFAULT_ID_NAMESPACE, service_id_for};

    fn id(name: &str) -> ServiceId {
        service_id_for(&DEFAULT_ID_NAMESPACE, "t", name)
    }

    fn state(committed: u64, aborted: &[u64]) -> VersionState {
        VersionState {
            exists: true,
            committed,
            next_tag: Some(committed),
            writer: None,
            writer_until: 0,
            aborted: aborted.iter().copied().collect(),
        }
    }

    #[test]
    fn tags_sort_within_a_service_and_services_stay_apart() {
        let a = id("a");
        assert!(entry_sk(&a, 9) < entry_sk(&a, 10));
        assert!(entry_sk(&a, 10).starts_with(&format!("{SERVICE_PREFIX}{}#", a.as_str())));
    }

    #[test]
    fn only_published_tags_that_were_not_abandoned_are_committed() {
        let st = state(5, &[3]);
        assert!(st.is_committed(0), "items from before tags existed");
        assert!(st.is_committed(5));
        assert!(
            !st.is_committed(3),
            "abandoned by a writer that never published"
        );
        assert!(!st.is_committed(6), "staged, not yet published");
    }

    #[test]
    fn garbage_is_superseded_or_abandoned_never_the_newest_committed() {
        let (a, b, c) = (id("a"), id("b"), id("c"));
        let seen: BTreeMap<ServiceId, Vec<(u64, String)>> = [
            (a.clone(), vec![(0, "a0".into()), (2, "a2".into())]),
            (
                b.clone(),
                vec![(1, "b1".into()), (3, "b3".into()), (4, "b4".into())],
            ),
            (c.clone(), vec![(3, "c3".into())]),
        ]
        .into_iter()
        .collect();
        // Tag 5 just published for `a`; tag 3 was abandoned.
        let st = state(5, &[3]);
        let written: BTreeSet<ServiceId> = [a].into_iter().collect();
        let mut g = garbage(&seen, &st, &written);
        g.sort();
        assert_eq!(g, ["a0", "a2", "b1", "b3", "c3"]);
    }

    #[test]
    fn an_item_newer_than_the_version_is_not_collected() {
        let a = id("a");
        let seen: BTreeMap<ServiceId, Vec<(u64, String)>> =
            [(a, vec![(1, "a1".into()), (7, "a7".into())])]
                .into_iter()
                .collect();
        assert!(garbage(&seen, &state(5, &[]), &BTreeSet::new()).is_empty());
    }
}
