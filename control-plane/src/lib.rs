//! The mana-llm control plane: the only writer of alias registries.
//!
//! Every change is an event appended to a SQLite log; the current registry is a projection
//! of that log. The write path reads in file order:
//!
//! - [`service`]: `RegistryService` — command in, events appended, state updated; the queries
//!   the admin API serves; a change signal for the publisher.
//! - [`domain`]: `RegistryAggregate` — `handle(command)` holds every rule, `apply(event)`
//!   only folds state. Pure, no I/O.
//! - [`store`]: `EventStore` — the append-only event log and the outbox (sqlx, SQLite, WAL),
//!   optimistic concurrency per stream.
//! - [`projection`]: replaying the log from empty, and the read queries on the aggregate.
//! - [`diff`]: what changed between two registry documents.
//! - [`ops`]: `/health`, `/ready` and `/metrics` of a standalone control plane.
//! - [`api`]: the admin API under `/admin/v1` (bearer token, or loopback only).
//! - [`api::console`]: the admin web console under `/admin/` (sign-in, sessions, embedded assets).
//! - [`reload`]: re-reading the aliases file (SIGHUP, the admin API's reload).
//! - [`publisher`]: the outbox loop that publishes committed versions to the bus.
//! - [`rollout`]: a staged rollout's figures from the heartbeats, and the judge's loop.
//! - [`redis_bus`]: the Redis bus (`current` key + versions channel, one atomic script).
//! - [`registry_log`]: opening the event log, seeding it from the aliases file.
//! - [`plane`]: `ControlPlane` — build, start the background tasks, serve, stop, close: the
//!   one lifecycle both `mana-llm serve` and `mana-llm control-plane` run.
//!
//! The schema lives in the workspace's `migrations/` folder.

pub mod api;
pub mod contract;
pub mod diff;
pub mod domain;
pub mod ops;
pub mod plane;
pub mod projection;
pub mod publisher;
pub mod redis_bus;
pub mod registry_log;
pub mod reload;
pub mod rollout;
pub mod service;
pub mod store;

pub use diff::{ChangedAlias, DefaultChange, Diff};
pub use domain::{
    Command, DomainError, PublishSource, RegistryAggregate, VersionOrigin, VersionRecord,
};
pub use plane::{ControlPlane, Exposure, PlaneError, Settings, Wiring};
pub use projection::replay;
pub use service::{Executed, RegistryService, ServiceError};
pub use store::{EventStore, OutboxRow, StoreError, StoredEvent};
