//! `mana-llm serve`: the embedded default. One process runs the control plane (SQLite event
//! log, admin API under `/admin/v1`) and one worker, joined by an in-process bus.
//!
//! The story: config → event log (seeded from aliases.yaml on first start) → worker built on
//! the current version → publisher and follower joined by the local bus → serve → on SIGTERM
//! stop being ready, drain in-flight work (bounded), exit 0.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use mana_llm_control_plane::plane::{self, ControlPlane, Exposure, Settings, Wiring};
use mana_llm_control_plane::registry_log;
use mana_llm_data_plane::{sync, App, GatewayConfig, Source};
use mana_llm_shared::bus::{FanOut, LocalBus, Publish};
use tokio::net::TcpListener;

use crate::{logging, signals};

#[derive(Args)]
pub struct ServeArgs {
    /// Address to listen on. Use 0.0.0.0 to accept connections from other machines; there the
    /// admin API (/admin/v1) is off unless MANA_LLM_ADMIN_TOKEN is set.
    #[arg(long, env = "MANA_LLM_HOST", default_value = "127.0.0.1")]
    host: std::net::IpAddr,
    /// Port to listen on (0 picks a free one; the chosen address is printed on stdout).
    #[arg(long, env = "PORT", default_value_t = 3025)]
    port: u16,
    /// The alias registry file: seeds an empty event log, re-read on SIGHUP and on
    /// `mana-llm aliases reload`. When the default file is missing, the shipped registry seeds.
    #[arg(long, env = "MANA_LLM_ALIASES", default_value = registry_log::DEFAULT_ALIASES)]
    aliases: PathBuf,
    /// The SQLite file holding every registry version (created if missing).
    #[arg(long, env = "MANA_LLM_DB", default_value = registry_log::DEFAULT_DB)]
    db: PathBuf,
    /// How long in-flight requests and streams may run after SIGTERM before the process exits.
    #[arg(long, env = "MANA_LLM_DRAIN_SECONDS", default_value_t = 30)]
    drain_seconds: u64,
    #[command(flatten)]
    log: logging::LogArgs,
}

pub async fn serve(args: ServeArgs) -> Result<(), String> {
    args.log.init()?;
    let shutdown = signals::shutdown();
    let source = Source::from_env();
    let config = GatewayConfig::from_source(&source).map_err(|e| e.to_string())?;
    let settings = Settings::from_lookup(
        args.db.clone(),
        args.aliases.clone(),
        config.registry_policy.clone(),
        |k| source.get(k),
    )
    .map_err(|e| e.to_string())?;
    let fleet_key = config.fleet_key.clone();
    let plane = ControlPlane::build(settings)
        .await
        .map_err(|e| e.to_string())?;
    let registry = plane.current_registry().await.map_err(|e| e.to_string())?;
    let app = App::build(config, registry, source).map_err(|e| e.to_string())?;

    app.spawn_background();
    let bus = LocalBus::default();
    app.track(sync::follow_local(
        app.clone(),
        bus.subscribe(),
        bus.subscribe_canary(),
        app.background(),
    ));
    // With REDIS_URL the embedded control plane also publishes for standalone workers.
    let metrics = &app.state().metrics;
    let publish: Arc<dyn Publish> = match &app.state().config.redis {
        Some(r) => {
            let redis = plane::redis_bus(&r.url, r.ca_file.as_deref(), &r.prefix, fleet_key)
                .map_err(|e| e.to_string())?;
            metrics
                .register(Box::new(redis.repairs()))
                .map_err(|e| e.to_string())?;
            Arc::new(FanOut(vec![Arc::new(bus), Arc::new(redis)]))
        }
        None => Arc::new(bus),
    };
    let admin = plane.start(Wiring {
        publish: Some(publish),
        fleet: Some(app.state().beats.clone()),
        reloads: metrics.registry_reloads_total.clone(),
    });

    // Unlike a control plane alone, a server whose admin API is off still serves the data
    // plane (the container image's default is `serve` on 0.0.0.0): every admin path answers
    // 403 instead.
    let exposure = Exposure::of(plane.token(), args.host);
    let router = app
        .router()
        .merge(ControlPlane::admin_router(admin, exposure));
    let addr = SocketAddr::new(args.host, args.port);
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    let local = listener.local_addr().map_err(|e| e.to_string())?;
    app.state().listen.set(local);
    // Tests and scripts read this line to find a port chosen with --port 0.
    println!("listening on http://{local}");
    let snapshot = app.state().snapshots.load();
    let providers: Vec<String> = snapshot
        .providers
        .configured()
        .map(|p| p.id().to_string())
        .collect();
    tracing::info!(%local, providers = %providers.join(","), auth = app.state().config.auth.enabled(),
        registry_version = snapshot.registry.version().0, db = %args.db.display(), "mana-llm serving");
    match exposure {
        Exposure::Off => tracing::warn!(
            host = %args.host,
            "admin API OFF: listening beyond loopback without MANA_LLM_ADMIN_TOKEN, so /admin/v1 \
             answers 403; set MANA_LLM_ADMIN_TOKEN to push or roll back registries here"
        ),
        Exposure::LoopbackOnly => tracing::info!(
            "admin API: no MANA_LLM_ADMIN_TOKEN set, so /admin/v1 answers loopback clients only \
             (never through a proxy)"
        ),
        Exposure::Token => {}
    }

    // Phases: stop being ready and stop background work → refuse new connections and let
    // in-flight work finish → wait for the worker's and the control plane's background tasks
    // and close the event log, at the latest when the drain deadline passes → exit.
    let drain = Duration::from_secs(args.drain_seconds);
    let limits = app.state().config.connections.clone();
    let stop = || {
        app.start_draining();
        app.stop_background();
        plane.stop();
    };
    signals::serve_until(
        listener,
        router,
        limits,
        shutdown,
        drain,
        stop,
        |deadline| {
            let (app, plane) = (&app, &plane);
            async move {
                app.finish_background(deadline).await;
                plane.close(deadline).await;
            }
        },
    )
    .await
}
