//! Domain types both mana-llm planes speak.
//!
//! - [`target`]: how a model string names a provider and a model (`provider/model`, bare names,
//!   the `mana/` alias namespace).
//!
//! The registry document, its validation, control-plane events and bus messages join this crate
//! with the aliases and control-plane issues.

pub mod target;

pub use target::{ModelRef, ProviderId, Target, ALIAS_PREFIX, DEFAULT_PROVIDER};
