//! From a request's `model` to an answer: resolve it to a chain ([`plan`]), then walk the chain
//! ([`walk`]) until one entry answers.
//!
//! - A `mana/<class>` alias resolves through the registry; an omitted or empty model uses the
//!   registry's `default` alias; anything else is a one-entry chain.
//! - The walk skips entries whose provider is unconfigured, whose breaker is open, or that
//!   cannot do what the request needs (tools), moves on after retryable failures (connect,
//!   timeout, 5xx, 429, a missed first-token deadline) and stops at once on a request error.

pub mod plan;
pub mod walk;

pub use crate::error::Attempt;
pub use plan::{plan, Plan};
pub use walk::{walk, Outcome, WalkContext};
