//! The admin API's answers as the CLI reads them. Lenient on purpose: missing optional fields
//! default, unknown ones are ignored.

use serde::Deserialize;

/// The answer to push, rollback and reload.
#[derive(Debug, Deserialize)]
pub struct Published {
    pub version: u64,
    #[serde(default)]
    pub hash: String,
    pub changed: bool,
}

#[derive(Debug, Deserialize)]
pub struct VersionsPage {
    pub versions: Vec<VersionSummary>,
    #[serde(default)]
    pub next_after: Option<u64>,
}

#[derive(Debug, Deserialize)]
pub struct VersionSummary {
    pub version: u64,
    #[serde(default)]
    pub hash: String,
    #[serde(default)]
    pub source: Option<String>,
    #[serde(default)]
    pub actor: Option<String>,
    #[serde(default)]
    pub recorded_at: Option<String>,
    #[serde(default)]
    pub alias_count: Option<u64>,
}

#[derive(Debug, Deserialize)]
pub struct VersionView {
    pub version: u64,
    #[serde(default)]
    pub hash: String,
    #[serde(default)]
    pub source: Option<String>,
    #[serde(default)]
    pub actor: Option<String>,
    #[serde(default)]
    pub recorded_at: Option<String>,
    #[serde(default)]
    pub rolled_back_to: Option<u64>,
    #[serde(default)]
    pub default: Option<String>,
    #[serde(default)]
    pub aliases: Vec<AliasView>,
}

#[derive(Debug, Deserialize)]
pub struct AliasView {
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub chain: Vec<String>,
}

#[derive(Debug, Deserialize)]
pub struct DiffView {
    pub from: u64,
    pub to: u64,
    #[serde(default)]
    pub added: Vec<String>,
    #[serde(default)]
    pub removed: Vec<String>,
    #[serde(default)]
    pub changed: Vec<ChangedAlias>,
    #[serde(default)]
    pub default_changed: Option<DefaultChange>,
}

#[derive(Debug, Deserialize)]
pub struct ChangedAlias {
    pub name: String,
    #[serde(default)]
    pub from_chain: Vec<String>,
    #[serde(default)]
    pub to_chain: Vec<String>,
    #[serde(default)]
    pub description_changed: bool,
}

#[derive(Debug, Deserialize)]
pub struct DefaultChange {
    #[serde(default)]
    pub from: Option<String>,
    #[serde(default)]
    pub to: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct AuditPage {
    pub events: Vec<AuditEvent>,
    #[serde(default)]
    pub next_after: Option<u64>,
}

#[derive(Debug, Deserialize)]
pub struct AuditEvent {
    pub sequence: u64,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub registry_version: Option<u64>,
    #[serde(default)]
    pub hash: Option<String>,
    #[serde(default)]
    pub actor: Option<String>,
    #[serde(default)]
    pub recorded_at: Option<String>,
    #[serde(default)]
    pub source: Option<String>,
    #[serde(default)]
    pub to_version: Option<u64>,
    #[serde(default)]
    pub errors: Option<Vec<String>>,
    /// A rollout event's rule or decision.
    #[serde(default)]
    pub rollout: Option<AuditRollout>,
}

#[derive(Debug, Deserialize, Default)]
pub struct AuditRollout {
    #[serde(default)]
    pub stable_version: Option<u64>,
    #[serde(default)]
    pub share: Option<String>,
    #[serde(default)]
    pub cohort: Option<Vec<String>>,
    #[serde(default)]
    pub decided_by: Option<String>,
    #[serde(default)]
    pub reason: Option<String>,
}
