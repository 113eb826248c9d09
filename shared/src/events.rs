//! Control-plane events: what happened to the alias registry, in the past tense.
//!
//! Events are stored with their type name and a schema version beside the JSON payload, so
//! old rows stay readable when a payload changes shape (a new version gets a new upcaster,
//! never a rewrite of history).

use serde::{Deserialize, Serialize};

use crate::registry::RegistryDocument;

/// The schema version written with every event payload today.
pub const EVENT_SCHEMA_VERSION: u32 = 1;

/// The one event stream of the registry aggregate.
pub const REGISTRY_STREAM: &str = "registry";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum RegistryEvent {
    /// A new registry version: the full validated document and its hash.
    RegistryVersionPublished {
        version: u64,
        hash: String,
        document: RegistryDocument,
        /// Where it came from: `push`, `reload` or `seed`.
        source: String,
    },
    /// A new version whose content is that of an earlier one.
    RegistryRolledBack {
        version: u64,
        to_version: u64,
        hash: String,
        document: RegistryDocument,
    },
    /// A reload from a file that did not validate; nothing changed.
    RegistryReloadRejected { source: String, errors: Vec<String> },
}

impl RegistryEvent {
    /// The type name stored beside the payload.
    pub fn kind(&self) -> &'static str {
        match self {
            RegistryEvent::RegistryVersionPublished { .. } => "RegistryVersionPublished",
            RegistryEvent::RegistryRolledBack { .. } => "RegistryRolledBack",
            RegistryEvent::RegistryReloadRejected { .. } => "RegistryReloadRejected",
        }
    }

    /// The registry version this event created, if it created one.
    pub fn new_version(&self) -> Option<(u64, &str, &RegistryDocument)> {
        match self {
            RegistryEvent::RegistryVersionPublished {
                version,
                hash,
                document,
                ..
            }
            | RegistryEvent::RegistryRolledBack {
                version,
                hash,
                document,
                ..
            } => Some((*version, hash, document)),
            RegistryEvent::RegistryReloadRejected { .. } => None,
        }
    }
}
