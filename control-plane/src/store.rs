//! The event store: an append-only log of registry events in SQLite, plus the outbox that
//! carries each new version to the workers.
//!
//! Appends are optimistic: the caller names the stream position it decided on, and the
//! append fails with [`StoreError::Conflict`] if anyone else wrote after it — checked inside
//! a write-locked transaction and backed by the `events_stream_sequence_unique` constraint,
//! so even a writer in another process can never produce a duplicate or a gap.

mod rows;
#[cfg(test)]
mod tests;
#[cfg(test)]
pub(crate) mod testutil;

use std::path::Path;
use std::time::Duration;

use mana_llm_shared::bus::PublishedVersion;
use mana_llm_shared::events::{RegistryEvent, EVENT_SCHEMA_VERSION};
use mana_llm_shared::{ContentHash, RegistryVersion};
use serde::Serialize;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions};

use mana_llm_shared::clock;
use rows::{EventRow, OutboxDbRow};

/// How long a writer waits for another connection's write lock before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// One event as it was stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StoredEvent {
    /// Position in the global log (the audit order).
    pub sequence: u64,
    /// Position in its stream: 1, 2, 3, … with no gap.
    pub stream_sequence: u64,
    pub event: RegistryEvent,
    pub schema_version: u32,
    /// Null for events that carry no document (rejected reloads).
    pub content_hash: Option<ContentHash>,
    /// The registry version the event made, if it made one.
    pub registry_version: Option<RegistryVersion>,
    pub actor: String,
    /// RFC 3339, UTC.
    pub recorded_at: String,
}

/// A version waiting to be (or already) published to the workers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OutboxRow {
    pub id: u64,
    pub event_sequence: u64,
    pub version: u64,
    pub hash: String,
    /// JSON of [`PublishedVersion`]: exactly the value of the bus's `current` key.
    pub document: String,
    pub created_at: String,
    pub sent_at: Option<String>,
    pub attempts: u32,
    pub last_error: Option<String>,
}

impl OutboxRow {
    /// The document decoded, for in-process buses that want the value, not the JSON.
    pub fn published(&self) -> Result<PublishedVersion, serde_json::Error> {
        serde_json::from_str(&self.document)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Someone appended to the stream after the position the caller decided on.
    #[error(
        "stream '{stream}' has moved past position {expected}: another writer got there first"
    )]
    Conflict { stream: String, expected: u64 },
    /// A stored row cannot be read back (unknown type or schema version, bad payload).
    #[error("event {sequence} is unreadable: {reason}")]
    Corrupt { sequence: u64, reason: String },
    #[error("cannot encode an event: {0}")]
    Encode(String),
    /// The database cannot take writes right now (disk full, I/O error, locked, read-only);
    /// the cause says which, so the API can answer 503 instead of 500.
    #[error("event store unavailable ({cause}): {detail}")]
    Unavailable { cause: StorageFault, detail: String },
    #[error("event store: {0}")]
    Database(sqlx::Error),
    #[error("event store migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

/// Why the database refused a write: faults of the machine, not of the request, that pass
/// once the operator (or the other writer) is done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StorageFault {
    /// SQLITE_FULL: the disk (or the filesystem's quota) is full.
    DiskFull,
    /// SQLITE_IOERR and friends: the disk failed a read or a write.
    Io,
    /// SQLITE_BUSY / SQLITE_LOCKED: another writer held the lock past the busy timeout.
    Locked,
    /// SQLITE_READONLY / SQLITE_CANTOPEN: the file or its directory cannot be written.
    ReadOnly,
}

impl StorageFault {
    /// A short, bounded name: the API's `cause` field and the log field.
    pub fn as_str(self) -> &'static str {
        match self {
            StorageFault::DiskFull => "disk_full",
            StorageFault::Io => "io_error",
            StorageFault::Locked => "locked",
            StorageFault::ReadOnly => "read_only",
        }
    }

    /// The fault behind a driver error, if it is one (SQLite's primary result code is the
    /// low byte of the extended code sqlx reports).
    fn of(error: &sqlx::Error) -> Option<Self> {
        match error {
            sqlx::Error::Io(e) if e.raw_os_error() == Some(28) => Some(StorageFault::DiskFull),
            sqlx::Error::Io(_) => Some(StorageFault::Io),
            // The pool could not hand out a connection in time: writers queued behind a lock.
            sqlx::Error::PoolTimedOut => Some(StorageFault::Locked),
            sqlx::Error::Database(db) => {
                let code: i32 = db.code()?.parse().ok()?;
                match code & 0xff {
                    13 => Some(StorageFault::DiskFull),
                    10 => Some(StorageFault::Io),
                    5 | 6 => Some(StorageFault::Locked),
                    8 | 14 => Some(StorageFault::ReadOnly),
                    _ => None,
                }
            }
            _ => None,
        }
    }
}

impl std::fmt::Display for StorageFault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(error: sqlx::Error) -> Self {
        match StorageFault::of(&error) {
            Some(cause) => StoreError::Unavailable {
                cause,
                detail: error.to_string(),
            },
            None => StoreError::Database(error),
        }
    }
}

/// The control plane's SQLite database. Cheap to clone (a pool inside).
#[derive(Debug, Clone)]
pub struct EventStore {
    pool: SqlitePool,
}

impl EventStore {
    /// Opens (creating if missing) the database at `path` and brings its schema up to date.
    pub async fn open(path: &Path) -> Result<Self, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            tokio::fs::create_dir_all(dir)
                .await
                .map_err(|e| StoreError::Database(sqlx::Error::Io(e)))?;
        }
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .foreign_keys(true)
            .busy_timeout(BUSY_TIMEOUT);
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await?;
        sqlx::migrate!("../migrations").run(&pool).await?;
        Ok(Self { pool })
    }

    /// The pool, for tests and tools that need raw SQL.
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// Appends `events` to `stream` right after position `expected_stream_sequence`, in one
    /// transaction with their outbox rows.
    pub async fn append(
        &self,
        stream: &str,
        expected_stream_sequence: u64,
        events: &[RegistryEvent],
        actor: &str,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        let mut conn = self.pool.acquire().await?;
        let appended = append_on(&mut conn, stream, expected_stream_sequence, events, actor).await;
        if appended.is_err() {
            // A failed statement can leave the connection inside a transaction that SQLite
            // already rolled back itself (SQLITE_FULL, I/O errors), so the ROLLBACK on drop
            // fails and the driver still counts one open transaction: every later BEGIN on
            // that connection would fail with "non-zero transaction depth". A fresh
            // connection costs a file open; a poisoned one costs every push until restart.
            conn.close_on_drop();
        }
        appended
    }

    /// Every event of `stream`, in stream order.
    pub async fn load(&self, stream: &str) -> Result<Vec<StoredEvent>, StoreError> {
        let rows: Vec<EventRow> = sqlx::query_as(&format!(
            "SELECT {} FROM events WHERE stream = ? ORDER BY stream_sequence",
            rows::EVENT_COLUMNS
        ))
        .bind(stream)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(EventRow::decode).collect()
    }

    /// Up to `limit` events of every stream with a global sequence above `sequence`, in order.
    pub async fn events_after(
        &self,
        sequence: u64,
        limit: u32,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let rows: Vec<EventRow> = sqlx::query_as(&format!(
            "SELECT {} FROM events WHERE sequence > ? ORDER BY sequence LIMIT ?",
            rows::EVENT_COLUMNS
        ))
        .bind(int(sequence)?)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(EventRow::decode).collect()
    }

    /// Up to `limit` outbox rows not yet sent, oldest first.
    pub async fn unsent_outbox(&self, limit: u32) -> Result<Vec<OutboxRow>, StoreError> {
        let rows: Vec<OutboxDbRow> = sqlx::query_as(
            "SELECT id, event_sequence, version, hash, document, created_at, sent_at, \
             attempts, last_error FROM outbox WHERE sent_at IS NULL ORDER BY id LIMIT ?",
        )
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(OutboxDbRow::decode).collect()
    }

    /// Records that the bus accepted outbox row `id`.
    pub async fn mark_sent(&self, id: u64) -> Result<(), StoreError> {
        sqlx::query("UPDATE outbox SET sent_at = ? WHERE id = ? AND sent_at IS NULL")
            .bind(clock::now_rfc3339())
            .bind(int(id)?)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Records a failed attempt to publish outbox row `id`.
    pub async fn mark_failed(&self, id: u64, error: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE outbox SET attempts = attempts + 1, last_error = ? WHERE id = ?")
            .bind(error)
            .bind(int(id)?)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Closes the pool (waits for connections to be returned).
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// The append itself, on one connection the caller owns (and discards if this fails).
async fn append_on(
    conn: &mut sqlx::SqliteConnection,
    stream: &str,
    expected_stream_sequence: u64,
    events: &[RegistryEvent],
    actor: &str,
) -> Result<Vec<StoredEvent>, StoreError> {
    let conflict = || StoreError::Conflict {
        stream: stream.to_owned(),
        expected: expected_stream_sequence,
    };
    // IMMEDIATE takes the write lock up front, so the head we read below is still the
    // head when we insert (a deferred transaction could be overtaken between the two).
    let mut tx = sqlx::Connection::begin_with(conn, "BEGIN IMMEDIATE").await?;
    let head: i64 =
        sqlx::query_scalar("SELECT COALESCE(MAX(stream_sequence), 0) FROM events WHERE stream = ?")
            .bind(stream)
            .fetch_one(&mut *tx)
            .await?;
    if head != int(expected_stream_sequence)? {
        return Err(conflict());
    }
    let mut stored = Vec::with_capacity(events.len());
    for (stream_sequence, event) in (expected_stream_sequence + 1..).zip(events) {
        let payload =
            serde_json::to_string(event).map_err(|e| StoreError::Encode(e.to_string()))?;
        let version = event.new_version();
        let recorded_at = clock::now_rfc3339();
        let sequence: i64 = sqlx::query_scalar(
            "INSERT INTO events (stream, stream_sequence, event_type, schema_version, \
             payload, content_hash, registry_version, actor, recorded_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING sequence",
        )
        .bind(stream)
        .bind(int(stream_sequence)?)
        .bind(event.kind())
        .bind(i64::from(EVENT_SCHEMA_VERSION))
        .bind(&payload)
        .bind(event.content_hash().map(ContentHash::as_str))
        .bind(event.registry_version().map(|v| int(v.0)).transpose()?)
        .bind(actor)
        .bind(&recorded_at)
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| {
            if is_stream_conflict(&e) {
                conflict()
            } else {
                e.into()
            }
        })?;
        if let Some((version, hash, document)) = version {
            let published = PublishedVersion::new(version, hash.clone(), document.clone());
            let json =
                serde_json::to_string(&published).map_err(|e| StoreError::Encode(e.to_string()))?;
            sqlx::query(
                "INSERT INTO outbox (event_sequence, version, hash, document, created_at) \
                 VALUES (?, ?, ?, ?, ?)",
            )
            .bind(sequence)
            .bind(int(version.0)?)
            .bind(hash.as_str())
            .bind(json)
            .bind(&recorded_at)
            .execute(&mut *tx)
            .await?;
        }
        stored.push(StoredEvent {
            sequence: rows::uint(sequence, 0)?,
            stream_sequence,
            event: event.clone(),
            schema_version: EVENT_SCHEMA_VERSION,
            content_hash: event.content_hash().cloned(),
            registry_version: event.registry_version(),
            actor: actor.to_owned(),
            recorded_at,
        });
    }
    tx.commit().await?;
    Ok(stored)
}

/// SQLite stores integers as i64; ours never get near its limit, but say so if one did.
fn int(value: u64) -> Result<i64, StoreError> {
    i64::try_from(value).map_err(|_| StoreError::Encode(format!("{value} is out of range")))
}

/// Whether `error` is a violation of `events_stream_sequence_unique`. SQLite names the
/// columns, not the constraint, in its message: "UNIQUE constraint failed: events.stream,
/// events.stream_sequence".
fn is_stream_conflict(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Database(db) => {
            db.is_unique_violation() && db.message().contains("events.stream_sequence")
        }
        _ => false,
    }
}
