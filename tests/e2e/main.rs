//! End-to-end suites: the real `mana-llm` binary over loopback HTTP, with the mock provider
//! playing every upstream.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod admin;
mod aliases;
mod auth;
mod breaker;
mod cli;
mod control_plane;
mod echo;
mod errors;
mod fleet;
mod fleet_redis;
mod google;
mod lifecycle;
mod nginx;
mod ollama;
mod openai_compat;
mod redis_auth;
mod sdk;
mod secrets;
mod streaming;
mod support;
mod trust;
