//! Where settings come from ([`Source`]) and the error naming a bad one ([`ConfigError`]): the
//! one settings reader of every role, defined in `shared` so the control plane reads through
//! it too.

pub use mana_llm_shared::settings::{ConfigError, Source};
