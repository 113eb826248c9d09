//! Domain types both mana-llm planes speak.
//!
//! - [`target`]: how a model string names a provider and a model (`provider/model`, bare names,
//!   the `mana/` alias namespace).
//! - [`registry`]: the alias registry (`aliases.yaml`): parsing, validation, immutable
//!   versioned snapshots with a content hash.
//!
//! Control-plane events and bus messages join this crate with the control-plane issue.

pub mod registry;
pub mod target;

pub use registry::{
    Alias, AliasName, ChainEntry, Registry, RegistryDocument, RegistryErrors, RegistryVersion,
    UnknownAlias,
};
pub use target::{ModelRef, ProviderId, Target, ALIAS_PREFIX, DEFAULT_PROVIDER};
