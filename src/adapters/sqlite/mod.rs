//! SQLite [`Store`]: the embedded store of `cloudify-osb serve --store sqlite:PATH`.
//!
//! Owns the SQLite file, its schema (see `schema`) and the mapping of rusqlite errors into
//! [`StoreError`]. Records are JSON documents (serde_json of the domain types, which hold no
//! credentials) beside their keys, their optimistic-locking version and the columns queries
//! filter on (instance state, binding state and renewal time). Creates are
//! `INSERT … ON CONFLICT DO NOTHING` checked by the number of rows changed; updates and
//! deletes are `… WHERE version = ?`, so every guarantee holds in SQL, even between
//! processes sharing the file (WAL mode, busy timeout).
//!
//! One connection behind a mutex; every call runs on tokio's blocking pool
//! (`spawn_blocking`), so async callers are never blocked by disk I/O or lock waits.
//! Imports no HTTP, AWS or other adapter crate.

mod schema;

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use rusqlite::{Connection, ErrorCode, OptionalExtension, TransactionBehavior, params};
use serde::Serialize;
use serde::de::DeserializeOwned;
use time::OffsetDateTime;

use crate::domain::binding::{Binding, BindingState};
use crate::domain::catalog::{Catalog, CatalogEntry, ServiceSettings};
use crate::domain::error::StoreError;
use crate::domain::ids::{BindingId, InstanceId};
use crate::domain::instance::{Instance, InstanceState};
use crate::domain::ports::Store;

pub use schema::SCHEMA_VERSION;

/// How long a statement waits for another connection's write lock before reporting the store
/// unavailable.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// A [`Store`] in one SQLite file (or in memory, for tests).
#[derive(Clone)]
pub struct SqliteStore {
    conn: Arc<Mutex<Connection>>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore").finish_non_exhaustive()
    }
}

impl SqliteStore {
    /// Opens (creating if absent) the database file at `path` and brings its schema up to
    /// date. Called at start-up; blocking.
    pub fn open(path: &Path) -> Result<SqliteStore, StoreError> {
        let conn = Connection::open(path).map_err(|e| {
            StoreError::Unavailable(format!(
                "cannot open SQLite database {}: {e}",
                path.display()
            ))
        })?;
        Self::init(conn, true).map_err(|e| match e {
            StoreError::Unavailable(m) => {
                StoreError::Unavailable(format!("SQLite database {}: {m}", path.display()))
            }
            StoreError::Corrupt(m) => {
                StoreError::Corrupt(format!("SQLite database {}: {m}", path.display()))
            }
            other => other,
        })
    }

    /// A private database in memory, gone when the store is dropped (tests).
    pub fn open_in_memory() -> Result<SqliteStore, StoreError> {
        let conn = Connection::open_in_memory().map_err(map_err)?;
        Self::init(conn, false)
    }

    fn init(mut conn: Connection, file: bool) -> Result<SqliteStore, StoreError> {
        conn.busy_timeout(BUSY_TIMEOUT).map_err(map_err)?;
        if file {
            let mode: String = conn
                .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))
                .map_err(map_err)?;
            if !mode.eq_ignore_ascii_case("wal") {
                return Err(StoreError::Unavailable(format!(
                    "cannot switch to WAL journal mode (got {mode})"
                )));
            }
        }
        // FULL: a committed create survives power loss too; a forgotten instance would
        // orphan its deployment. The broker's write rate makes the extra fsync cheap.
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(map_err)?;
        schema::migrate(&mut conn)?;
        Ok(SqliteStore {
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    /// Runs `f` with the connection on the blocking pool.
    async fn run<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let conn = Arc::clone(&self.conn);
        tokio::task::spawn_blocking(move || {
            // A panic while holding the lock leaves the connection usable: an open
            // transaction is rolled back when its guard is dropped during unwinding.
            let mut guard = conn.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            f(&mut guard)
        })
        .await
        .map_err(|e| StoreError::Unavailable(format!("SQLite task failed: {e}")))?
    }
}

/// Maps rusqlite errors: lock waits, I/O, disk and open failures make the store unavailable;
/// a malformed file or an unreadable column is corrupt data.
pub(crate) fn map_err(e: rusqlite::Error) -> StoreError {
    match &e {
        rusqlite::Error::SqliteFailure(f, _) => match f.code {
            ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase => {
                StoreError::Corrupt(e.to_string())
            }
            _ => StoreError::Unavailable(e.to_string()),
        },
        rusqlite::Error::FromSqlConversionFailure(..)
        | rusqlite::Error::InvalidColumnType(..)
        | rusqlite::Error::IntegralValueOutOfRange(..)
        | rusqlite::Error::Utf8Error(..) => StoreError::Corrupt(e.to_string()),
        _ => StoreError::Unavailable(e.to_string()),
    }
}

fn encode<T: Serialize>(record: &T) -> Result<String, StoreError> {
    // The domain types always serialize; a failure here is a bug, reported, not panicked.
    serde_json::to_string(record)
        .map_err(|e| StoreError::Unavailable(format!("cannot encode record: {e}")))
}

fn decode<T: DeserializeOwned>(what: &str, key: &str, doc: &str) -> Result<T, StoreError> {
    serde_json::from_str(doc).map_err(|e| StoreError::Corrupt(format!("{what} {key:?}: {e}")))
}

fn stored_version(what: &str, key: &str, version: i64) -> Result<u64, StoreError> {
    u64::try_from(version)
        .map_err(|_| StoreError::Corrupt(format!("{what} {key:?} has version {version}")))
}

/// A version the caller presents; one that SQLite cannot hold was never stored.
fn presented_version(version: u64) -> Result<i64, StoreError> {
    i64::try_from(version).map_err(|_| StoreError::Conflict)
}

fn next_version(version: u64) -> Result<(i64, i64), StoreError> {
    let current = presented_version(version)?;
    let next = current.checked_add(1).ok_or(StoreError::Conflict)?;
    Ok((current, next))
}

fn binding_state(state: BindingState) -> &'static str {
    match state {
        BindingState::Creating => "creating",
        BindingState::Bound => "bound",
        BindingState::Unbinding => "unbinding",
    }
}

/// Nanoseconds since the epoch, clamped into SQLite's integer range (monotone, so a range
/// query on it selects a superset that is then filtered exactly).
fn sortable_time(t: OffsetDateTime) -> i64 {
    let ns = t.unix_timestamp_nanos();
    i64::try_from(ns).unwrap_or(if ns < 0 { i64::MIN } else { i64::MAX })
}

fn read_instance(id: &str, version: i64, doc: &str) -> Result<Instance, StoreError> {
    let mut instance: Instance = decode("instance", id, doc)?;
    instance.version = stored_version("instance", id, version)?;
    Ok(instance)
}

fn read_binding(key: &str, version: i64, doc: &str) -> Result<Binding, StoreError> {
    let mut binding: Binding = decode("binding", key, doc)?;
    binding.version = stored_version("binding", key, version)?;
    Ok(binding)
}

type Row3 = (String, i64, String);

fn row3(row: &rusqlite::Row<'_>) -> rusqlite::Result<Row3> {
    Ok((row.get(0)?, row.get(1)?, row.get(2)?))
}

fn collect_rows(
    conn: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
) -> Result<Vec<Row3>, StoreError> {
    let mut stmt = conn.prepare_cached(sql).map_err(map_err)?;
    let rows = stmt
        .query_map(params, row3)
        .map_err(map_err)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(map_err)?;
    Ok(rows)
}

#[async_trait]
impl Store for SqliteStore {
    async fn catalog_version(&self) -> Result<u64, StoreError> {
        self.run(|conn| {
            let v: i64 = conn
                .query_row("SELECT version FROM catalog_meta WHERE id = 1", [], |r| {
                    r.get(0)
                })
                .map_err(map_err)?;
            stored_version("catalog", "version", v)
        })
        .await
    }

    async fn catalog(&self) -> Result<Catalog, StoreError> {
        self.run(|conn| {
            // One read transaction: the version matches the entries read.
            let tx = conn.transaction().map_err(map_err)?;
            let v: i64 = tx
                .query_row("SELECT version FROM catalog_meta WHERE id = 1", [], |r| {
                    r.get(0)
                })
                .map_err(map_err)?;
            let version = stored_version("catalog", "version", v)?;
            let mut stmt = tx
                .prepare_cached("SELECT service_id, doc FROM catalog_entries ORDER BY service_id")
                .map_err(map_err)?;
            let rows = stmt
                .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
                .map_err(map_err)?
                .collect::<Result<Vec<_>, _>>()
                .map_err(map_err)?;
            drop(stmt);
            tx.commit().map_err(map_err)?;
            let entries = rows
                .iter()
                .map(|(id, doc)| decode::<CatalogEntry>("catalog entry", id, doc))
                .collect::<Result<Vec<_>, _>>()?;
            Ok(Catalog { version, entries })
        })
        .await
    }

    async fn put_catalog_entries(&self, entries: &[CatalogEntry]) -> Result<u64, StoreError> {
        let docs = entries
            .iter()
            .map(|e| Ok((e.service.id.as_str().to_owned(), encode(e)?)))
            .collect::<Result<Vec<_>, StoreError>>()?;
        self.run(move |conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(map_err)?;
            let version: i64 = if docs.is_empty() {
                tx.query_row("SELECT version FROM catalog_meta WHERE id = 1", [], |r| {
                    r.get(0)
                })
                .map_err(map_err)?
            } else {
                {
                    let mut upsert = tx
                        .prepare_cached(
                            "INSERT INTO catalog_entries (service_id, doc) VALUES (?1, ?2)
                             ON CONFLICT (service_id) DO UPDATE SET doc = excluded.doc",
                        )
                        .map_err(map_err)?;
                    for (id, doc) in &docs {
                        upsert.execute(params![id, doc]).map_err(map_err)?;
                    }
                }
                tx.query_row(
                    "UPDATE catalog_meta SET version = version + 1 WHERE id = 1
                     RETURNING version",
                    [],
                    |r| r.get(0),
                )
                .map_err(map_err)?
            };
            tx.commit().map_err(map_err)?;
            stored_version("catalog", "version", version)
        })
        .await
    }

    async fn service_settings(
        &self,
        blueprint_id: &str,
    ) -> Result<Option<ServiceSettings>, StoreError> {
        let key = blueprint_id.to_owned();
        self.run(move |conn| {
            let doc: Option<String> = conn
                .query_row(
                    "SELECT doc FROM service_settings WHERE blueprint_id = ?1",
                    [&key],
                    |r| r.get(0),
                )
                .optional()
                .map_err(map_err)?;
            doc.map(|d| decode("service settings", &key, &d))
                .transpose()
        })
        .await
    }

    async fn all_service_settings(&self) -> Result<Vec<ServiceSettings>, StoreError> {
        self.run(|conn| {
            let mut stmt = conn
                .prepare_cached(
                    "SELECT blueprint_id, doc FROM service_settings ORDER BY blueprint_id",
                )
                .map_err(map_err)?;
            let rows = stmt
                .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
                .map_err(map_err)?
                .collect::<Result<Vec<_>, _>>()
                .map_err(map_err)?;
            rows.iter()
                .map(|(key, doc)| decode("service settings", key, doc))
                .collect()
        })
        .await
    }

    async fn put_service_settings(&self, settings: &ServiceSettings) -> Result<(), StoreError> {
        let key = settings.blueprint_id.clone();
        let doc = encode(settings)?;
        self.run(move |conn| {
            conn.execute(
                "INSERT INTO service_settings (blueprint_id, doc) VALUES (?1, ?2)
                 ON CONFLICT (blueprint_id) DO UPDATE SET doc = excluded.doc",
                params![key, doc],
            )
            .map_err(map_err)?;
            Ok(())
        })
        .await
    }

    async fn create_instance(&self, instance: &Instance) -> Result<Instance, StoreError> {
        let mut stored = instance.clone();
        stored.version = 1;
        let doc = encode(&stored)?;
        let id = stored.id.as_str().to_owned();
        let state = stored.state.as_str();
        self.run(move |conn| {
            let changed = conn
                .execute(
                    "INSERT INTO instances (id, state, version, doc) VALUES (?1, ?2, 1, ?3)
                     ON CONFLICT (id) DO NOTHING",
                    params![id, state, doc],
                )
                .map_err(map_err)?;
            if changed == 1 {
                Ok(stored)
            } else {
                Err(StoreError::AlreadyExists)
            }
        })
        .await
    }

    async fn instance(&self, id: &InstanceId) -> Result<Option<Instance>, StoreError> {
        let id = id.as_str().to_owned();
        self.run(move |conn| {
            let row: Option<(i64, String)> = conn
                .query_row(
                    "SELECT version, doc FROM instances WHERE id = ?1",
                    [&id],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()
                .map_err(map_err)?;
            row.map(|(version, doc)| read_instance(&id, version, &doc))
                .transpose()
        })
        .await
    }

    async fn update_instance(&self, instance: &Instance) -> Result<Instance, StoreError> {
        let (current, next) = next_version(instance.version)?;
        let mut stored = instance.clone();
        stored.version = instance.version + 1;
        let doc = encode(&stored)?;
        let id = stored.id.as_str().to_owned();
        let state = stored.state.as_str();
        self.run(move |conn| {
            let changed = conn
                .execute(
                    "UPDATE instances SET state = ?1, version = ?2, doc = ?3
                     WHERE id = ?4 AND version = ?5",
                    params![state, next, doc, id, current],
                )
                .map_err(map_err)?;
            if changed == 1 {
                Ok(stored)
            } else {
                Err(StoreError::Conflict)
            }
        })
        .await
    }

    async fn delete_instance(&self, id: &InstanceId, version: u64) -> Result<(), StoreError> {
        let version = presented_version(version)?;
        let id = id.as_str().to_owned();
        self.run(move |conn| {
            let changed = conn
                .execute(
                    "DELETE FROM instances WHERE id = ?1 AND version = ?2",
                    params![id, version],
                )
                .map_err(map_err)?;
            if changed == 1 {
                Ok(())
            } else {
                Err(StoreError::Conflict)
            }
        })
        .await
    }

    async fn instances(&self, state: Option<InstanceState>) -> Result<Vec<Instance>, StoreError> {
        self.run(move |conn| {
            let rows = match state {
                Some(s) => collect_rows(
                    conn,
                    "SELECT id, version, doc FROM instances WHERE state = ?1 ORDER BY id",
                    [s.as_str()],
                )?,
                None => collect_rows(
                    conn,
                    "SELECT id, version, doc FROM instances ORDER BY id",
                    [],
                )?,
            };
            rows.iter()
                .map(|(id, version, doc)| read_instance(id, *version, doc))
                .collect()
        })
        .await
    }

    async fn create_binding(&self, binding: &Binding) -> Result<Binding, StoreError> {
        let mut stored = binding.clone();
        stored.version = 1;
        let doc = encode(&stored)?;
        let instance_id = stored.instance_id.as_str().to_owned();
        let id = stored.id.as_str().to_owned();
        let state = binding_state(stored.state);
        let renew = stored.renew_before.map(sortable_time);
        self.run(move |conn| {
            let changed = conn
                .execute(
                    "INSERT INTO bindings (instance_id, id, state, renew_before_ns, version, doc)
                     VALUES (?1, ?2, ?3, ?4, 1, ?5)
                     ON CONFLICT (instance_id, id) DO NOTHING",
                    params![instance_id, id, state, renew, doc],
                )
                .map_err(map_err)?;
            if changed == 1 {
                Ok(stored)
            } else {
                Err(StoreError::AlreadyExists)
            }
        })
        .await
    }

    async fn binding(
        &self,
        instance: &InstanceId,
        id: &BindingId,
    ) -> Result<Option<Binding>, StoreError> {
        let instance_id = instance.as_str().to_owned();
        let id = id.as_str().to_owned();
        self.run(move |conn| {
            let row: Option<(i64, String)> = conn
                .query_row(
                    "SELECT version, doc FROM bindings WHERE instance_id = ?1 AND id = ?2",
                    [&instance_id, &id],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()
                .map_err(map_err)?;
            row.map(|(version, doc)| read_binding(&format!("{instance_id}/{id}"), version, &doc))
                .transpose()
        })
        .await
    }

    async fn update_binding(&self, binding: &Binding) -> Result<Binding, StoreError> {
        let (current, next) = next_version(binding.version)?;
        let mut stored = binding.clone();
        stored.version = binding.version + 1;
        let doc = encode(&stored)?;
        let instance_id = stored.instance_id.as_str().to_owned();
        let id = stored.id.as_str().to_owned();
        let state = binding_state(stored.state);
        let renew = stored.renew_before.map(sortable_time);
        self.run(move |conn| {
            let changed = conn
                .execute(
                    "UPDATE bindings SET state = ?1, renew_before_ns = ?2, version = ?3, doc = ?4
                     WHERE instance_id = ?5 AND id = ?6 AND version = ?7",
                    params![state, renew, next, doc, instance_id, id, current],
                )
                .map_err(map_err)?;
            if changed == 1 {
                Ok(stored)
            } else {
                Err(StoreError::Conflict)
            }
        })
        .await
    }

    async fn delete_binding(
        &self,
        instance: &InstanceId,
        id: &BindingId,
        version: u64,
    ) -> Result<(), StoreError> {
        let version = presented_version(version)?;
        let instance_id = instance.as_str().to_owned();
        let id = id.as_str().to_owned();
        self.run(move |conn| {
            let changed = conn
                .execute(
                    "DELETE FROM bindings WHERE instance_id = ?1 AND id = ?2 AND version = ?3",
                    params![instance_id, id, version],
                )
                .map_err(map_err)?;
            if changed == 1 {
                Ok(())
            } else {
                Err(StoreError::Conflict)
            }
        })
        .await
    }

    async fn bindings_of(&self, instance: &InstanceId) -> Result<Vec<Binding>, StoreError> {
        let instance_id = instance.as_str().to_owned();
        self.run(move |conn| {
            let rows = collect_rows(
                conn,
                "SELECT id, version, doc FROM bindings WHERE instance_id = ?1 ORDER BY id",
                [&instance_id],
            )?;
            rows.iter()
                .map(|(id, version, doc)| {
                    read_binding(&format!("{instance_id}/{id}"), *version, doc)
                })
                .collect()
        })
        .await
    }

    async fn bindings_due(&self, time: OffsetDateTime) -> Result<Vec<Binding>, StoreError> {
        let bound = sortable_time(time);
        self.run(move |conn| {
            let rows = collect_rows(
                conn,
                "SELECT instance_id || '/' || id, version, doc FROM bindings
                 WHERE state = 'bound' AND renew_before_ns IS NOT NULL
                   AND renew_before_ns <= ?1
                 ORDER BY renew_before_ns",
                [bound],
            )?;
            let mut due = Vec::with_capacity(rows.len());
            for (key, version, doc) in &rows {
                let b = read_binding(key, *version, doc)?;
                // Exact check: the column is clamped and at nanosecond resolution.
                if b.state == BindingState::Bound && b.renew_before.is_some_and(|r| r < time) {
                    due.push(b);
                }
            }
            Ok(due)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_database_from_a_newer_broker_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("newer.db");
        drop(SqliteStore::open(&path).unwrap());
        let conn = Connection::open(&path).unwrap();
        conn.pragma_update(None, "user_version", SCHEMA_VERSION + 1)
            .unwrap();
        drop(conn);
        match SqliteStore::open(&path) {
            Err(StoreError::Unavailable(m)) => assert!(m.contains("newer"), "{m}"),
            other => panic!("expected Unavailable, got {other:?}"),
        }
    }

    #[test]
    fn reopening_a_current_database_keeps_its_schema_version() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("again.db");
        drop(SqliteStore::open(&path).unwrap());
        drop(SqliteStore::open(&path).unwrap());
        let conn = Connection::open(&path).unwrap();
        let v: i64 = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        assert_eq!(v, SCHEMA_VERSION);
        let mode: String = conn
            .pragma_query_value(None, "journal_mode", |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
    }

    #[test]
    fn a_file_that_is_not_a_database_is_reported_corrupt() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("garbage.db");
        std::fs::write(&path, vec![0x5a_u8; 8192]).unwrap();
        match SqliteStore::open(&path) {
            Err(StoreError::Corrupt(m)) => assert!(m.contains("garbage.db"), "{m}"),
            other => panic!("expected Corrupt, got {other:?}"),
        }
    }

    #[test]
    fn a_missing_directory_is_unavailable_and_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("no/such/dir/x.db");
        match SqliteStore::open(&path) {
            Err(StoreError::Unavailable(m)) => assert!(m.contains("no/such/dir"), "{m}"),
            other => panic!("expected Unavailable, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn an_undecodable_document_is_corrupt() {
        let store = SqliteStore::open_in_memory().unwrap();
        {
            let conn = store.conn.lock().unwrap();
            conn.execute(
                "INSERT INTO instances (id, state, version, doc) VALUES ('i1', 'provisioned', 1, '{not json')",
                [],
            )
            .unwrap();
        }
        let id = InstanceId::parse("i1").unwrap();
        assert!(matches!(
            store.instance(&id).await,
            Err(StoreError::Corrupt(_))
        ));
        assert!(matches!(
            store.instances(None).await,
            Err(StoreError::Corrupt(_))
        ));
    }

    #[test]
    fn far_times_clamp_monotonically() {
        let early = time::macros::datetime!(1000-01-01 0:00 UTC);
        let late = time::macros::datetime!(9999-12-31 0:00 UTC);
        assert_eq!(sortable_time(early), i64::MIN);
        assert_eq!(sortable_time(late), i64::MAX);
        assert_eq!(sortable_time(OffsetDateTime::UNIX_EPOCH), 0);
    }
}
