//! What the control plane tells the workers, and where in Redis it goes.
//!
//! The control plane writes the latest version document to the `current` key and publishes a
//! small [`VersionAnnouncement`] on the `versions` channel. Workers subscribe, and also compare
//! the `current` key with their own version on (re)connect and on a slow timer, so a missed
//! message is caught up by version number.

use serde::{Deserialize, Serialize};

use crate::registry::RegistryDocument;

/// Announced on the versions channel after a version commits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionAnnouncement {
    pub version: u64,
    pub hash: String,
}

/// The value of the `current` key: a whole version, enough to serve it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublishedVersion {
    pub version: u64,
    pub hash: String,
    pub document: RegistryDocument,
}

impl PublishedVersion {
    pub fn announcement(&self) -> VersionAnnouncement {
        VersionAnnouncement {
            version: self.version,
            hash: self.hash.clone(),
        }
    }
}

/// Redis key and channel names, under a prefix so several deployments can share one Redis.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BusNames {
    prefix: String,
}

/// The prefix when none is configured.
pub const DEFAULT_PREFIX: &str = "mana-llm";

impl BusNames {
    pub fn new(prefix: &str) -> Self {
        let prefix = prefix.trim().trim_end_matches(':');
        Self {
            prefix: if prefix.is_empty() {
                DEFAULT_PREFIX
            } else {
                prefix
            }
            .to_owned(),
        }
    }

    /// The key holding the latest [`PublishedVersion`] as JSON.
    pub fn current_key(&self) -> String {
        format!("{}:registry:current", self.prefix)
    }

    /// The channel carrying [`VersionAnnouncement`]s as JSON.
    pub fn versions_channel(&self) -> String {
        format!("{}:registry:versions", self.prefix)
    }
}

impl Default for BusNames {
    fn default() -> Self {
        Self::new(DEFAULT_PREFIX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_live_under_the_prefix() {
        let names = BusNames::new("staging:");
        assert_eq!(names.current_key(), "staging:registry:current");
        assert_eq!(names.versions_channel(), "staging:registry:versions");
        assert_eq!(
            BusNames::new(" ").current_key(),
            "mana-llm:registry:current"
        );
    }
}
