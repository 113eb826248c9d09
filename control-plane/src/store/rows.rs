//! Turning database rows back into events and outbox entries.
//!
//! Decoding never panics: a row this build cannot read (an event type it does not know, a
//! schema version it has no upcaster for, a payload that does not parse) is a
//! [`StoreError::Corrupt`] naming the row's sequence.

use mana_llm_shared::events::{RegistryEvent, EVENT_SCHEMA_VERSION};
use mana_llm_shared::{ContentHash, RegistryVersion};

use super::{OutboxRow, StoreError, StoredEvent};

/// The columns [`EventRow`] reads, in its field order.
pub(super) const EVENT_COLUMNS: &str = "sequence, stream_sequence, event_type, schema_version, \
     payload, content_hash, registry_version, actor, recorded_at";

/// The event types this build can read.
const KNOWN_TYPES: [&str; 6] = [
    "RegistryVersionPublished",
    "RegistryRolledBack",
    "RegistryReloadRejected",
    "RolloutStarted",
    "RolloutPromoted",
    "RolloutAborted",
];

#[derive(Debug, sqlx::FromRow)]
pub(super) struct EventRow {
    sequence: i64,
    stream_sequence: i64,
    event_type: String,
    schema_version: i64,
    payload: String,
    content_hash: Option<String>,
    registry_version: Option<i64>,
    actor: String,
    recorded_at: String,
}

impl EventRow {
    pub(super) fn decode(self) -> Result<StoredEvent, StoreError> {
        let sequence = uint(self.sequence, 0)?;
        let corrupt = |reason: String| StoreError::Corrupt { sequence, reason };
        if !KNOWN_TYPES.contains(&self.event_type.as_str()) {
            return Err(corrupt(format!("unknown event type '{}'", self.event_type)));
        }
        // When a payload changes shape, older schema versions get an upcaster here.
        let schema_version = u32::try_from(self.schema_version)
            .ok()
            .filter(|v| *v == EVENT_SCHEMA_VERSION)
            .ok_or_else(|| {
                corrupt(format!(
                    "unsupported schema version {} of {}",
                    self.schema_version, self.event_type
                ))
            })?;
        let event: RegistryEvent = serde_json::from_str(&self.payload)
            .map_err(|e| corrupt(format!("bad {} payload: {e}", self.event_type)))?;
        if event.kind() != self.event_type {
            return Err(corrupt(format!(
                "payload is a {} but the row says {}",
                event.kind(),
                self.event_type
            )));
        }
        Ok(StoredEvent {
            sequence,
            stream_sequence: uint(self.stream_sequence, sequence)?,
            event,
            schema_version,
            content_hash: self.content_hash.map(ContentHash::from),
            registry_version: self
                .registry_version
                .map(|v| uint(v, sequence).map(RegistryVersion))
                .transpose()?,
            actor: self.actor,
            recorded_at: self.recorded_at,
        })
    }
}

#[derive(Debug, sqlx::FromRow)]
pub(super) struct OutboxDbRow {
    id: i64,
    event_sequence: i64,
    version: i64,
    hash: String,
    document: String,
    created_at: String,
    sent_at: Option<String>,
    attempts: i64,
    last_error: Option<String>,
}

impl OutboxDbRow {
    pub(super) fn decode(self) -> Result<OutboxRow, StoreError> {
        let event_sequence = uint(self.event_sequence, 0)?;
        Ok(OutboxRow {
            id: uint(self.id, event_sequence)?,
            event_sequence,
            version: uint(self.version, event_sequence)?,
            hash: self.hash,
            document: self.document,
            created_at: self.created_at,
            sent_at: self.sent_at,
            attempts: u32::try_from(self.attempts).unwrap_or(u32::MAX),
            last_error: self.last_error,
        })
    }
}

/// A stored integer that must not be negative; `sequence` names the row it came from.
pub(super) fn uint(value: i64, sequence: u64) -> Result<u64, StoreError> {
    u64::try_from(value).map_err(|_| StoreError::Corrupt {
        sequence,
        reason: format!("negative number {value}"),
    })
}
