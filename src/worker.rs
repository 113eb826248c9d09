//! `mana-llm worker`: one stateless data-plane worker of a fleet. It serves the registry
//! version the control plane published to Redis, shares provider health and cached answers
//! with the other workers through the same Redis, and keeps serving its last version when the
//! control plane or Redis is down.
//!
//! The story: config → build (empty registry: not ready) → load the published version (Redis,
//! else the control plane) → serve → on SIGTERM stop being ready, drain, exit 0.

use std::net::SocketAddr;
use std::time::Duration;

use clap::Args;
use mana_llm_data_plane::server::Origin;
use mana_llm_data_plane::sync::fetch_from_control_plane;
use mana_llm_data_plane::{App, GatewayConfig, Source};
use mana_llm_shared::backoff::Backoff;
use mana_llm_shared::Registry;
use tokio::net::TcpListener;

use crate::{logging, signals};

#[derive(Args)]
pub struct WorkerArgs {
    /// Address to serve the OpenAI-compatible API on.
    #[arg(long, env = "MANA_LLM_LISTEN", default_value = "0.0.0.0:3025")]
    listen: SocketAddr,
    /// Redis shared by the fleet: registry versions, provider health, cached answers.
    /// May carry a password (redis://:password@host:6379) and use TLS (rediss://; a private
    /// CA is trusted through MANA_LLM_REDIS_CA_FILE).
    #[arg(long, env = "REDIS_URL", hide_env_values = true)]
    redis: String,
    /// The control plane's URL, asked for the current registry when Redis has none at start.
    #[arg(long, env = "MANA_LLM_CONTROL_PLANE_URL")]
    control_plane: Option<String>,
    /// This worker's id in metrics, logs and fleet locks (default: a random uuid).
    #[arg(long, env = "MANA_LLM_WORKER_ID")]
    worker_id: Option<String>,
    /// How long in-flight requests and streams may run after SIGTERM before the process exits.
    #[arg(long, env = "MANA_LLM_DRAIN_SECONDS", default_value_t = 30)]
    drain_seconds: u64,
    #[command(flatten)]
    log: logging::LogArgs,
}

pub async fn worker(args: WorkerArgs) -> Result<(), String> {
    args.log.init()?;
    let shutdown = signals::shutdown();
    let mut source = Source::from_env().with("REDIS_URL", args.redis.clone());
    if let Some(id) = &args.worker_id {
        source = source.with("MANA_LLM_WORKER_ID", id.clone());
    }
    let token = source
        .get("MANA_LLM_ADMIN_TOKEN")
        .filter(|t| !t.trim().is_empty());
    let config = GatewayConfig::from_source(&source).map_err(|e| e.to_string())?;
    let worker_id = config.worker_id.clone();
    // Not ready until a version arrives: the follower installs it from Redis.
    let app = App::build(config, Registry::empty(), source).map_err(|e| e.to_string())?;
    app.spawn_background();
    if let Some(url) = args.control_plane.clone() {
        spawn_control_plane_fallback(app.clone(), url, token);
    }

    let listener = TcpListener::bind(args.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
    let local = listener.local_addr().map_err(|e| e.to_string())?;
    app.state().listen.set(local);
    println!("listening on http://{local}");
    tracing::info!(%local, worker_id, "mana-llm worker serving (ready once a registry version is loaded)");

    // Phases: stop being ready and stop background work → refuse new connections and let
    // in-flight work finish → wait for the background tasks → exit, at the latest when the
    // drain deadline passes.
    let drain = Duration::from_secs(args.drain_seconds);
    let limits = app.state().config.connections.clone();
    let stop = || {
        app.start_draining();
        app.stop_background();
    };
    signals::serve_until(
        listener,
        app.router(),
        limits,
        shutdown,
        drain,
        stop,
        |deadline| app.finish_background(deadline),
    )
    .await
}

/// While no version is loaded (Redis empty or down), ask the control plane directly.
fn spawn_control_plane_fallback(app: App, url: String, token: Option<String>) {
    let cancel = app.background();
    tokio::spawn(async move {
        let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(5));
        while app.state().snapshots.version().0 == 0 {
            match fetch_from_control_plane(&url, token.as_deref()).await {
                Ok(published) => {
                    // Validated like any version; a refusal is logged and counted there.
                    let _ = app.install(published, Origin::ControlPlane);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "no registry yet; asking the control plane again")
                }
            }
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tokio::time::sleep(backoff.failed()) => {}
            }
        }
    });
}
