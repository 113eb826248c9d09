//! Reloading the registry from the aliases file (SIGHUP and `POST /admin/v1/registry/reload`).

use std::path::Path;

use mana_llm_shared::events::RegistryEvent;
use mana_llm_shared::{ContentHash, DocumentFormat, RegistryVersion};

use crate::domain::{Command, PublishSource};
use crate::service::{Executed, RegistryService, ServiceError};

/// The actor recorded for reloads from the file.
pub const RELOAD_ACTOR: &str = "reload";

/// What a reload did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReloadOutcome {
    /// The file had new content: this version now.
    Published {
        version: RegistryVersion,
        hash: ContentHash,
    },
    /// The file holds what is already current.
    Unchanged { version: RegistryVersion },
    /// The file did not validate: recorded as a rejected event, nothing changed.
    Rejected { errors: Vec<String> },
}

/// Re-reads `path` and records what happened: a new version, nothing, or a rejection.
pub async fn reload_file(
    service: &RegistryService,
    path: &Path,
) -> Result<ReloadOutcome, ServiceError> {
    let origin = path.display().to_string();
    let command = match std::fs::read_to_string(path) {
        Ok(text) => Command::Publish {
            text,
            format: DocumentFormat::Yaml,
            source: PublishSource::Reload,
            origin,
            expected_version: None,
        },
        Err(e) => {
            let message = if e.kind() == std::io::ErrorKind::NotFound {
                format!("alias config not found at {origin}")
            } else {
                format!("cannot read {origin}: {e}")
            };
            Command::RejectReload {
                origin,
                errors: vec![message],
            }
        }
    };
    let executed = service.execute(command, RELOAD_ACTOR).await?;
    Ok(outcome(&executed))
}

pub fn outcome(executed: &Executed) -> ReloadOutcome {
    for stored in &executed.events {
        match &stored.event {
            RegistryEvent::RegistryReloadRejected { errors, .. } => {
                return ReloadOutcome::Rejected {
                    errors: errors.clone(),
                }
            }
            event => {
                if let Some((version, hash, _)) = event.new_version() {
                    return ReloadOutcome::Published {
                        version,
                        hash: hash.to_owned(),
                    };
                }
            }
        }
    }
    ReloadOutcome::Unchanged {
        version: executed.current_version,
    }
}
