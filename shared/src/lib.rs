//! Domain types both mana-llm planes speak.
//!
//! - [`target`]: how a model string names a provider and a model (`provider/model`, bare names,
//!   the `mana/` alias namespace).
//! - [`registry`]: the alias registry (`aliases.yaml`): parsing, validation, immutable
//!   versioned snapshots with a content hash.
//! - [`events`]: what happened to the registry (the control plane's event log).
//! - [`bus`]: what the control plane tells workers, and the Redis names it uses.
//! - [`redis_client`], [`redis_conn`], [`backoff`]: the one way every process reaches Redis: building
//!   the client (credentials, TLS), the connection holder no caller ever waits on, the retry rhythm.
//! - [`fleet`]: what each worker reports about itself (heartbeats).
//! - [`settings`]: where settings come from (`Source`, the environment or a map) and the error
//!   naming a bad one.
//! - [`rollout`]: staged rollouts: the cohort rule and the judge of a candidate version.
//! - [`fleet_key`]: HMAC-SHA256 signatures over what the fleet shares through Redis.
//! - [`redis_client`]: the Redis client of every process: password, ACL user, TLS.
//! - [`clock`]: RFC 3339 timestamps, written and read without a date crate.

pub mod backoff;
pub mod bus;
pub mod clock;
pub mod events;
pub mod fleet;
pub mod fleet_key;
pub mod redis_client;
pub mod redis_conn;
pub mod registry;
pub mod rollout;
pub mod settings;
pub mod target;
/// Test support: a throwaway `redis-server` and port checks (every crate's tests and, with
/// feature `testing`, the end-to-end suite).
#[cfg(any(test, feature = "testing"))]
pub mod testing;

pub use registry::{
    Alias, AliasName, ChainEntry, ContentHash, DocumentFormat, DocumentLimits, Registry,
    RegistryDocument, RegistryErrors, RegistryPolicy, RegistryVersion, UnknownAlias,
};
pub use target::{ModelRef, ProviderId, Target, ALIAS_PREFIX, BUILTIN_PROVIDERS, DEFAULT_PROVIDER};
