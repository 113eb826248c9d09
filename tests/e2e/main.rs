//! End-to-end suites: the real `mana-llm` binary over loopback HTTP, with the mock provider
//! playing every upstream.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod admin;
mod aliases;
mod auth;
mod breaker;
mod cache;
mod capabilities;
mod cli;
mod clients;
mod connections;
mod console;
mod contract;
mod control_plane;
mod echo;
mod errors;
mod fleet;
mod fleet_redis;
mod fleet_view;
mod google;
mod h2_window;
mod labels;
mod lifecycle;
mod memory;
mod nginx;
mod ollama;
mod openai_compat;
mod redis_auth;
mod responses;
mod rollout;
mod sdk;
mod secrets;
mod storage;
mod streaming;
mod support;
mod trust;
