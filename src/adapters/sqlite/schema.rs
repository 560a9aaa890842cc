//! The SQLite schema and its migrations, versioned by the `user_version` pragma.
//!
//! `MIGRATIONS[n]` moves a database from schema version `n` to `n + 1`; a fresh file is at
//! version 0 and gets every step. A later change appends a step (never edits a shipped one),
//! so existing files migrate on the next `open`. Records are JSON documents; the other
//! columns are keys, the optimistic-locking version and what the queries filter on.

use rusqlite::{Connection, TransactionBehavior};

use crate::domain::error::StoreError;

use super::map_err;

/// Schema steps, in order. Index `n` upgrades `user_version` `n` to `n + 1`.
const MIGRATIONS: &[&str] = &[
    // 1: catalog, service settings, instances, bindings.
    "
    CREATE TABLE catalog_meta (
        id      INTEGER PRIMARY KEY CHECK (id = 1),
        version INTEGER NOT NULL
    );
    INSERT INTO catalog_meta (id, version) VALUES (1, 0);

    CREATE TABLE catalog_entries (
        service_id TEXT PRIMARY KEY NOT NULL,
        doc        TEXT NOT NULL
    );

    CREATE TABLE service_settings (
        blueprint_id TEXT PRIMARY KEY NOT NULL,
        doc          TEXT NOT NULL
    );

    CREATE TABLE instances (
        id      TEXT PRIMARY KEY NOT NULL,
        state   TEXT NOT NULL,
        version INTEGER NOT NULL,
        doc     TEXT NOT NULL
    );
    CREATE INDEX instances_by_state ON instances (state, id);

    CREATE TABLE bindings (
        instance_id     TEXT NOT NULL,
        id              TEXT NOT NULL,
        state           TEXT NOT NULL,
        renew_before_ns INTEGER,
        version         INTEGER NOT NULL,
        doc             TEXT NOT NULL,
        PRIMARY KEY (instance_id, id)
    );
    CREATE INDEX bindings_by_renewal ON bindings (renew_before_ns)
        WHERE state = 'bound' AND renew_before_ns IS NOT NULL;
    ",
];

/// The schema version this build writes.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// Brings the database to [`SCHEMA_VERSION`]; refuses a database written by a newer build.
pub fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    // IMMEDIATE: two processes opening one fresh file must not both run the first step.
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(map_err)?;
    let current: i64 = tx
        .pragma_query_value(None, "user_version", |row| row.get(0))
        .map_err(map_err)?;
    if current > SCHEMA_VERSION {
        return Err(StoreError::Unavailable(format!(
            "the SQLite database has schema version {current}, newer than this broker's \
             {SCHEMA_VERSION}; upgrade the broker"
        )));
    }
    if current < 0 {
        return Err(StoreError::Corrupt(format!(
            "the SQLite database has an invalid schema version {current}"
        )));
    }
    for (step, sql) in MIGRATIONS.iter().enumerate().skip(current as usize) {
        tx.execute_batch(sql).map_err(map_err)?;
        tx.pragma_update(None, "user_version", step as i64 + 1)
            .map_err(map_err)?;
    }
    tx.commit().map_err(map_err)
}
