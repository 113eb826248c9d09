//! Model strings: `provider/model`, bare names and aliases.
//!
//! A model string is split at the **first** `/`: `openrouter/anthropic/claude-3-haiku` names
//! provider `openrouter` and model `anthropic/claude-3-haiku`. A bare name (no `/`) goes to the
//! default provider, `ollama`. Strings starting with `mana/` are aliases and are resolved through
//! the registry instead.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The provider a bare model name (one without `/`) is routed to.
pub const DEFAULT_PROVIDER: &str = "ollama";

/// The reserved namespace of registry aliases.
pub const ALIAS_PREFIX: &str = "mana/";

/// Provider ids the gateway itself defines (`mana` is the alias namespace): a registry may
/// not declare a provider under one of these names.
pub const BUILTIN_PROVIDERS: [&str; 8] = [
    "ollama",
    "echo",
    "openai",
    "openrouter",
    "groq",
    "together",
    "google",
    "mana",
];

/// A provider id such as `ollama`, `groq` or `openrouter`: always lower case.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ProviderId(String);

impl ProviderId {
    pub fn new(id: &str) -> Self {
        Self(id.trim().to_ascii_lowercase())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ProviderId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A concrete routing target: one provider and the model name that provider understands.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Target {
    pub provider: ProviderId,
    pub model: String,
}

impl Target {
    /// Parses `provider/model`; a bare name goes to [`DEFAULT_PROVIDER`].
    pub fn parse(s: &str) -> Self {
        match s.split_once('/') {
            Some((provider, model)) => Self {
                provider: ProviderId::new(provider),
                model: model.to_owned(),
            },
            None => Self {
                provider: ProviderId::new(DEFAULT_PROVIDER),
                model: s.to_owned(),
            },
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.provider, self.model)
    }
}

impl Serialize for Target {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Target {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Self::parse(&String::deserialize(d)?))
    }
}

/// What a request's `model` field asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelRef {
    /// `mana/<class>`: resolved through the alias registry.
    Alias(String),
    /// Anything else: one provider, one model.
    Direct(Target),
}

impl ModelRef {
    pub fn parse(s: &str) -> Self {
        if s.starts_with(ALIAS_PREFIX) {
            Self::Alias(s.to_owned())
        } else {
            Self::Direct(Target::parse(s))
        }
    }

    /// True for strings in the alias namespace (`mana/…`), with or without a valid class.
    pub fn is_alias(s: &str) -> bool {
        s.starts_with(ALIAS_PREFIX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_at_the_first_slash() {
        let t = Target::parse("openrouter/meta-llama/llama-3.1-8b-instruct");
        assert_eq!(t.provider.as_str(), "openrouter");
        assert_eq!(t.model, "meta-llama/llama-3.1-8b-instruct");
        assert_eq!(t.to_string(), "openrouter/meta-llama/llama-3.1-8b-instruct");
    }

    #[test]
    fn bare_names_go_to_ollama() {
        let t = Target::parse("gemma3:4b");
        assert_eq!(t.provider.as_str(), "ollama");
        assert_eq!(t.model, "gemma3:4b");
    }

    #[test]
    fn provider_is_lower_cased() {
        assert_eq!(Target::parse("Groq/llama").provider.as_str(), "groq");
    }

    #[test]
    fn alias_namespace_is_a_prefix_check() {
        for s in ["mana/fast-text", "mana/anything", "mana/foo"] {
            assert!(ModelRef::is_alias(s), "{s}");
            assert_eq!(ModelRef::parse(s), ModelRef::Alias(s.to_owned()));
        }
        for s in [
            "ollama/gemma3:4b",
            "groq/llama",
            "gemma3:4b",
            "",
            "mana",
            "manaX/foo",
        ] {
            assert!(!ModelRef::is_alias(s), "{s}");
        }
    }
}
