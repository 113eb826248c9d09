//! Read models over the registry aggregate: replaying the log, and the queries the admin
//! API answers (current version, one version, the list, a diff).

use mana_llm_shared::RegistryVersion;

use crate::diff::{self, Diff};
use crate::domain::{DomainError, RegistryAggregate, VersionRecord};
use crate::store::StoredEvent;

/// Rebuilds the aggregate from empty by applying `events` in order.
pub fn replay(events: &[StoredEvent]) -> RegistryAggregate {
    let mut aggregate = RegistryAggregate::default();
    for stored in events {
        aggregate.apply(&stored.event);
    }
    aggregate
}

impl RegistryAggregate {
    /// The current version, if any was made.
    pub fn current(&self) -> Option<&VersionRecord> {
        self.versions.get(&self.current)
    }

    /// Version `v`, if it exists.
    pub fn version(&self, v: RegistryVersion) -> Option<&VersionRecord> {
        self.versions.get(&v)
    }

    /// Every version, oldest first.
    pub fn versions(&self) -> impl DoubleEndedIterator<Item = &VersionRecord> {
        self.versions.values()
    }

    /// What changed from version `from` to version `to`.
    pub fn diff(&self, from: RegistryVersion, to: RegistryVersion) -> Result<Diff, DomainError> {
        let old = self
            .version(from)
            .ok_or(DomainError::UnknownVersion(from))?;
        let new = self.version(to).ok_or(DomainError::UnknownVersion(to))?;
        Ok(diff::diff(&old.document, &new.document))
    }
}
