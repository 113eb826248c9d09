//! The alias registry: which `mana/<class>` names exist and the fallback chain of each.
//!
//! A [`Registry`] is an immutable snapshot with a version number and a content hash. It is
//! parsed and validated in one place ([`Registry::parse`]) from the original service's
//! `aliases.yaml` format, every error reported in one pass; the running worker swaps whole
//! snapshots, never mutates one.

#[cfg(test)]
mod fuzz;
mod guard;
mod parse;
pub mod policy;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::target::{ProviderId, Target};

pub use guard::DocumentLimits;
pub use parse::RegistryErrors;
pub use policy::RegistryPolicy;

/// How a registry document is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DocumentFormat {
    /// `aliases.yaml` (JSON is YAML too, but is better read by [`DocumentFormat::Json`]).
    #[default]
    Yaml,
    Json,
}

/// A registry's version: 1, 2, 3, … (0 means "none loaded").
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct RegistryVersion(pub u64);

impl RegistryVersion {
    pub fn next(self) -> Self {
        Self(self.0 + 1)
    }
}

/// As the bare number, widths and alignment included (the CLI's tables pad it).
impl fmt::Display for RegistryVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

/// A document's content hash: SHA-256 over its canonical JSON, lowercase hex (see
/// [`RegistryDocument::content_hash`]). Stored and sent as the bare string.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ContentHash(String);

impl ContentHash {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl From<String> for ContentHash {
    fn from(hex: String) -> Self {
        Self(hex)
    }
}

impl From<ContentHash> for String {
    fn from(hash: ContentHash) -> Self {
        hash.0
    }
}

impl fmt::Display for ContentHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

/// An alias name in the `mana/` namespace, e.g. `mana/fast-text`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct AliasName(String);

impl AliasName {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for AliasName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One step of a fallback chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainEntry {
    pub target: Target,
    /// Give up on this entry when no first token arrived within this time (optional).
    #[serde(default, skip_serializing_if = "Option::is_none", with = "opt_millis")]
    pub first_token_timeout: Option<Duration>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Alias {
    pub name: AliasName,
    pub description: String,
    pub chain: Vec<ChainEntry>,
}

/// An extra OpenAI-compatible provider declared in the registry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderDecl {
    pub id: ProviderId,
    pub base_url: String,
    /// The env var holding its key; the key itself is never stored.
    pub api_key_env: Option<String>,
}

/// The content of a registry (what is hashed and versioned).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct RegistryDocument {
    pub aliases: BTreeMap<AliasName, Alias>,
    pub default: Option<AliasName>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub providers: BTreeMap<ProviderId, ProviderDecl>,
}

impl RegistryDocument {
    /// SHA-256 over the canonical JSON form: equal content, equal hash, whatever the YAML
    /// formatting or key order was.
    pub fn content_hash(&self) -> String {
        let canonical = serde_json::to_vec(self).unwrap_or_default();
        let digest = Sha256::digest(&canonical);
        digest.iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// An immutable, versioned registry snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registry {
    version: RegistryVersion,
    hash: String,
    document: RegistryDocument,
}

/// Why an alias could not be resolved.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown alias '{name}' (known: [{}])", known.iter().map(|k| format!("'{k}'")).collect::<Vec<_>>().join(", "))]
pub struct UnknownAlias {
    pub name: String,
    pub known: Vec<String>,
}

impl Registry {
    /// Parses and validates `aliases.yaml` text under the default policy; `source` names it
    /// in error messages.
    pub fn parse(
        text: &str,
        source: &str,
        version: RegistryVersion,
    ) -> Result<Self, RegistryErrors> {
        Self::parse_with(
            text,
            DocumentFormat::Yaml,
            source,
            version,
            &RegistryPolicy::default(),
        )
    }

    /// Parses and validates a document in `format` under the operator's `policy`.
    pub fn parse_with(
        text: &str,
        format: DocumentFormat,
        source: &str,
        version: RegistryVersion,
        policy: &RegistryPolicy,
    ) -> Result<Self, RegistryErrors> {
        parse::parse_document(text, format, source, policy)
            .map(|document| Self::new(document, version))
    }

    /// A registry from a document that arrived already structured (from Redis or another
    /// process): checked against every rule a parsed document obeys and against the hash it
    /// claims, since whoever wrote it may not be who it says.
    pub fn verified(
        document: RegistryDocument,
        version: RegistryVersion,
        claimed_hash: &str,
        policy: &RegistryPolicy,
    ) -> Result<Self, RegistryErrors> {
        if version.0 == 0 {
            return Err(RegistryErrors(
                vec!["version 0 is not a version".to_owned()],
            ));
        }
        parse::validate_document(&document, policy)?;
        let registry = Self::new(document, version);
        if registry.hash() != claimed_hash {
            return Err(RegistryErrors(vec![format!(
                "content hash {} does not match the claimed {claimed_hash}",
                registry.hash()
            )]));
        }
        Ok(registry)
    }

    pub fn new(document: RegistryDocument, version: RegistryVersion) -> Self {
        Self {
            version,
            hash: document.content_hash(),
            document,
        }
    }

    /// An empty registry (no aliases): what a worker serves before any is loaded.
    pub fn empty() -> Self {
        Self::new(RegistryDocument::default(), RegistryVersion(0))
    }

    pub fn version(&self) -> RegistryVersion {
        self.version
    }

    pub fn hash(&self) -> &str {
        &self.hash
    }

    pub fn document(&self) -> &RegistryDocument {
        &self.document
    }

    pub fn default_alias(&self) -> Option<&AliasName> {
        self.document.default.as_ref()
    }

    /// Aliases sorted by name.
    pub fn aliases(&self) -> impl Iterator<Item = &Alias> {
        self.document.aliases.values()
    }

    pub fn providers(&self) -> impl Iterator<Item = &ProviderDecl> {
        self.document.providers.values()
    }

    pub fn resolve(&self, name: &str) -> Result<&Alias, UnknownAlias> {
        self.document
            .aliases
            .iter()
            .find(|(k, _)| k.as_str() == name)
            .map(|(_, a)| a)
            .ok_or_else(|| UnknownAlias {
                name: name.to_owned(),
                known: self.document.aliases.keys().map(|k| k.0.clone()).collect(),
            })
    }

    /// Whether `target` (`provider/model`) appears in any chain (bounded metric labels use
    /// this on every request, so it compares parts instead of formatting each entry).
    pub fn mentions(&self, target: &str) -> bool {
        let Some((provider, model)) = target.split_once('/') else {
            return false;
        };
        self.mentions_target(provider, model)
    }

    /// Whether the target with these parts appears in any chain.
    pub fn mentions_target(&self, provider: &str, model: &str) -> bool {
        self.aliases().any(|a| {
            a.chain
                .iter()
                .any(|e| e.target.provider.as_str() == provider && e.target.model == model)
        })
    }
}

mod opt_millis {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_u64(d.as_millis() as u64),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        Ok(Option::<u64>::deserialize(d)?.map(Duration::from_millis))
    }
}
