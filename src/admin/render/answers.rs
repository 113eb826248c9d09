//! The admin API's answers as the CLI reads them: the control plane's own contract types,
//! lenient on purpose (missing optional fields default, unknown ones are ignored).

#[cfg(test)]
pub use mana_llm_control_plane::contract::{AliasView, Made, VersionSummary};
pub use mana_llm_control_plane::contract::{
    AuditEvent, AuditPage, DiffView, Published, VersionView, VersionsPage,
};
#[cfg(test)]
pub use mana_llm_control_plane::diff::{ChangedAlias, DefaultChange, Diff};
