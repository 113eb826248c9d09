//! `mana-llm control-plane`: the control plane alone — the event log, the admin API, SIGHUP
//! reloads, and the outbox publisher sending each version to the workers through Redis.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use mana_llm_control_plane::ops::Ops;
use mana_llm_control_plane::plane::{self, ControlPlane, Exposure, Settings, Wiring};
use mana_llm_control_plane::registry_log;
use mana_llm_data_plane::conn::ConnLimits;
use mana_llm_shared::fleet::{Beats, RedisBeats};
use mana_llm_shared::fleet_key::{FleetKey, FLEET_KEY_ENV};
use mana_llm_shared::settings::Source;
use mana_llm_shared::RegistryPolicy;
use tokio::net::TcpListener;

use crate::{logging, signals};

#[derive(Args)]
pub struct ControlPlaneArgs {
    /// The SQLite file holding every registry version (created if missing).
    #[arg(long, env = "MANA_LLM_DB", default_value = registry_log::DEFAULT_DB)]
    db: PathBuf,
    /// The alias registry file: seeds an empty log; re-read on SIGHUP and `aliases reload`.
    #[arg(long, env = "MANA_LLM_ALIASES", default_value = registry_log::DEFAULT_ALIASES)]
    aliases: PathBuf,
    /// Address of the admin API. Without MANA_LLM_ADMIN_TOKEN it must be a loopback address.
    #[arg(
        long,
        env = "MANA_LLM_CONTROL_PLANE_LISTEN",
        default_value = "127.0.0.1:3026"
    )]
    listen: SocketAddr,
    /// Redis to publish versions to (e.g. redis://127.0.0.1:6379, redis://:password@host:6379,
    /// rediss://… for TLS). Without it nothing is published.
    #[arg(long, env = "REDIS_URL", hide_env_values = true)]
    redis: Option<String>,
    /// PEM file of the private CA that signed the Redis server's certificate (rediss:// only);
    /// without it the public roots are trusted.
    #[arg(long, env = "MANA_LLM_REDIS_CA_FILE")]
    redis_ca_file: Option<PathBuf>,
    /// Prefix of the Redis keys and channels, so several deployments can share one Redis.
    #[arg(long, env = "MANA_LLM_REDIS_PREFIX", default_value = mana_llm_shared::bus::DEFAULT_PREFIX)]
    redis_prefix: String,
    #[command(flatten)]
    log: logging::LogArgs,
}

pub async fn control_plane(args: ControlPlaneArgs) -> Result<(), String> {
    args.log.init()?;
    let shutdown = signals::shutdown();
    let source = Source::from_env();
    let lookup = |k: &str| source.get(k);
    let token = plane::admin_token(lookup);
    // Alone, the admin API is all this process serves: off would mean nothing to serve.
    if Exposure::of(token.as_deref(), args.listen.ip()) == Exposure::Off {
        return Err(format!(
            "refusing to serve the admin API on {} without MANA_LLM_ADMIN_TOKEN: set a token or listen on 127.0.0.1",
            args.listen
        ));
    }
    let policy = RegistryPolicy::from_settings(lookup).map_err(|e| e.to_string())?;
    let fleet_key =
        FleetKey::from_setting(lookup(FLEET_KEY_ENV).as_deref()).map_err(|e| e.to_string())?;
    let settings = Settings::from_lookup(args.db.clone(), args.aliases.clone(), policy, lookup)
        .map_err(|e| e.to_string())?;
    let plane = ControlPlane::build(settings)
        .await
        .map_err(|e| e.to_string())?;
    let service = plane.service().clone();
    let ops = Ops::new(service.clone()).map_err(|e| e.to_string())?;
    let mut wiring = Wiring {
        publish: None,
        fleet: None,
        reloads: ops.reloads_total.clone(),
    };
    match &args.redis {
        Some(url) => {
            if fleet_key.is_none() {
                tracing::warn!("no MANA_LLM_FLEET_KEY: registry versions are published unsigned, so workers cannot tell them from versions planted in Redis by anyone who can write there. Set the same MANA_LLM_FLEET_KEY on the control plane and every worker");
            }
            let bus = plane::redis_bus(
                url,
                args.redis_ca_file.as_deref(),
                &args.redis_prefix,
                fleet_key,
            )
            .map_err(|e| e.to_string())?;
            ops.register(Box::new(bus.repairs()))
                .map_err(|e| e.to_string())?;
            let beats: Arc<dyn Beats> = Arc::new(RedisBeats::new(bus.redis()));
            ops.watch_fleet(beats.clone());
            wiring.fleet = Some(beats);
            wiring.publish = Some(Arc::new(bus));
        }
        None => tracing::warn!(
            "no --redis / REDIS_URL: versions are stored but not published to workers"
        ),
    }
    let admin = plane.start(wiring);
    let version = service.current_version().await;
    let exposure = Exposure::of(plane.token(), args.listen.ip());
    let router = ControlPlane::admin_router(admin, exposure).merge(ops.router());
    let listener = TcpListener::bind(args.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
    let local = listener.local_addr().map_err(|e| e.to_string())?;
    println!("listening on http://{local}");
    tracing::info!(%local, registry_version = version.0, db = %args.db.display(), redis = args.redis.is_some(), "control plane serving");
    if exposure == Exposure::LoopbackOnly {
        tracing::info!(
            "admin API: no MANA_LLM_ADMIN_TOKEN set, answering loopback clients only (never through a proxy)"
        );
    }

    // Phases: stop the background tasks → refuse new connections and let in-flight requests
    // finish → wait for the tasks and close the event log → exit, within 10 s in all.
    // The admin API is bounded like a worker (same settings): it is one more listener.
    let limits = ConnLimits::from_source(&source).map_err(|e| e.to_string())?;
    signals::serve_until(
        listener,
        router,
        limits,
        shutdown,
        Duration::from_secs(10),
        || plane.stop(),
        |deadline| plane.close(deadline),
    )
    .await
}
