//! Opening the control plane's event log and seeding it from the aliases file.

use std::path::Path;

use mana_llm_shared::registry::RegistryErrors;
use mana_llm_shared::{DocumentFormat, Registry, RegistryPolicy, RegistryVersion};

use crate::reload::{reload_file, ReloadOutcome};
use crate::service::{RegistryService, ServiceError};
use crate::store::{EventStore, StoreError};

/// The shipped registry, used when the default aliases file is not where we run.
const SHIPPED_ALIASES: &str = include_str!("../../aliases.yaml");
pub const DEFAULT_ALIASES: &str = "aliases.yaml";
pub const DEFAULT_DB: &str = "mana-llm.db";

/// Why the event log could not be opened, seeded or served from; each message is what the
/// process prints before it exits.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("cannot open the event log {path}: {source}")]
    Open { path: String, source: StoreError },
    #[error("cannot read the event log: {0}")]
    Read(ServiceError),
    #[error("cannot read the alias registry {path}: {source}")]
    ReadSeed {
        path: String,
        source: std::io::Error,
    },
    #[error("invalid alias registry: {0}")]
    InvalidSeed(RegistryErrors),
    #[error("cannot seed the event log: {0}")]
    Seed(ServiceError),
    #[error("the event log has no registry version")]
    Empty,
    #[error("registry version {version} breaks the current rules ({errors}); push a fixed version with `mana-llm aliases push` from another process, or change the policy settings")]
    BreaksPolicy {
        version: RegistryVersion,
        errors: RegistryErrors,
    },
}

/// Opens (or creates) the event log; an empty log gets the aliases file as version 1. New
/// documents must follow `policy`.
pub async fn open(
    db: &Path,
    aliases: &Path,
    policy: RegistryPolicy,
) -> Result<RegistryService, LogError> {
    let store = EventStore::open(db)
        .await
        .map_err(|source| LogError::Open {
            path: db.display().to_string(),
            source,
        })?;
    let service = RegistryService::open_with_policy(store, policy.clone())
        .await
        .map_err(LogError::Read)?;
    if service.current_version().await > RegistryVersion(0) {
        return Ok(service);
    }
    let (text, origin) = if aliases == Path::new(DEFAULT_ALIASES) && !aliases.exists() {
        tracing::warn!("no {DEFAULT_ALIASES} here; seeding the shipped registry (set MANA_LLM_ALIASES to use your own)");
        (
            SHIPPED_ALIASES.to_owned(),
            "shipped aliases.yaml".to_owned(),
        )
    } else {
        let text = std::fs::read_to_string(aliases).map_err(|source| LogError::ReadSeed {
            path: aliases.display().to_string(),
            source,
        })?;
        (text, aliases.display().to_string())
    };
    // Fail fast on a broken seed, with every error, as the original did at startup.
    Registry::parse_with(
        &text,
        DocumentFormat::Yaml,
        &origin,
        RegistryVersion(1),
        &policy,
    )
    .map_err(LogError::InvalidSeed)?;
    service
        .seed_if_empty(&text, &origin)
        .await
        .map_err(LogError::Seed)?;
    Ok(service)
}

/// Re-reads the aliases file into the log and logs what happened; returns the metric label.
pub async fn reload(service: &RegistryService, aliases: &Path) -> &'static str {
    match reload_file(service, aliases).await {
        Ok(ReloadOutcome::Published { version, .. }) => {
            tracing::info!(version = version.0, path = %aliases.display(), "alias registry reloaded: new version");
            "applied"
        }
        Ok(ReloadOutcome::Unchanged { version }) => {
            tracing::info!(version = version.0, "alias registry unchanged");
            "unchanged"
        }
        Ok(ReloadOutcome::Rejected { errors }) => {
            for error in &errors {
                tracing::error!(%error, "alias reload rejected, keeping previous state");
            }
            "rejected"
        }
        Err(e) => {
            tracing::error!(error = %e, "alias reload failed");
            "rejected"
        }
    }
}

/// The current version of the log, checked against `policy` as a worker would check it: a
/// version written before the operator tightened the rules is not served (the process says
/// why and stops, rather than send a key where the policy now forbids it).
pub async fn current(
    service: &RegistryService,
    policy: &RegistryPolicy,
) -> Result<Registry, LogError> {
    let current = service.current().await.ok_or(LogError::Empty)?;
    Registry::verified(
        current.document,
        current.version,
        current.hash.as_str(),
        policy,
    )
    .map_err(|errors| LogError::BreaksPolicy {
        version: current.version,
        errors,
    })
}
