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
use mana_llm_control_plane::api::{
    disabled_router, is_loopback, router as admin_router, AdminState,
};
use mana_llm_control_plane::redis_bus::RedisBus;
use mana_llm_control_plane::{publisher, rollout};
use mana_llm_data_plane::{logging, sync, App, GatewayConfig, Source};
use mana_llm_shared::bus::{BusNames, FanOut, LocalBus, Publish};
use mana_llm_shared::redis_client;
use tokio::net::TcpListener;

use crate::{registry_log, signals};

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
    /// Log filter: error, warn, info, debug, trace (or an env-filter directive).
    #[arg(long, env = "LOG_LEVEL", default_value = "info")]
    log_level: String,
    /// Log format: text or json.
    #[arg(long, env = "LOG_FORMAT", default_value = "text")]
    log_format: String,
}

pub async fn serve(args: ServeArgs) -> Result<(), String> {
    logging::init(&args.log_level, &args.log_format)?;
    let shutdown = signals::shutdown();
    let source = Source::from_env();
    let config = GatewayConfig::from_source(&source).map_err(|e| e.to_string())?;
    let token = source
        .get("MANA_LLM_ADMIN_TOKEN")
        .filter(|t| !t.trim().is_empty());

    let policy = config.registry_policy.clone();
    let fleet_key = config.fleet_key.clone();
    let service = registry_log::open(&args.db, &args.aliases, policy.clone()).await?;
    let registry = registry_log::current(&service, &policy).await?;
    let app = App::build(config, registry, source).map_err(|e| e.to_string())?;

    app.spawn_background();
    let background = app.background();
    let bus = LocalBus::default();
    sync::follow_local(
        app.clone(),
        bus.subscribe(),
        bus.subscribe_canary(),
        background.clone(),
    );
    // With REDIS_URL the embedded control plane also publishes for standalone workers.
    let publish: Arc<dyn Publish> = match &app.state().config.redis {
        Some(r) => {
            let client =
                redis_client::open(&r.url, r.ca_file.as_deref()).map_err(|e| e.to_string())?;
            let redis = RedisBus::new(client, BusNames::new(&r.prefix), Duration::from_secs(2))
                .map_err(|e| e.to_string())?
                .with_fleet_key(fleet_key);
            app.state()
                .metrics
                .register(Box::new(redis.repairs()))
                .map_err(|e| e.to_string())?;
            Arc::new(FanOut(vec![Arc::new(bus), Arc::new(redis)]))
        }
        None => Arc::new(bus),
    };
    publisher::spawn(service.clone(), publish, background.clone());
    let (hup_service, hup_app, hup_path) = (service.clone(), app.clone(), args.aliases.clone());
    signals::on_hangup(move || {
        let (service, app, path) = (hup_service.clone(), hup_app.clone(), hup_path.clone());
        async move { app.count_reload(registry_log::reload(&service, &path).await) }
    });

    // Without a token the peer address is the admin API's only check, which means nothing
    // on a server other machines can reach: there the data plane still serves (the container
    // image's default is `serve` on 0.0.0.0) and every admin path answers 403 instead.
    let rollouts = rollout::start(
        service.clone(),
        Some(app.state().beats.clone()),
        |k| std::env::var(k).ok(),
        background.clone(),
    )?;
    let admin_on = token.is_some() || is_loopback(args.host);
    let admin = if admin_on {
        admin_router(Arc::new(AdminState {
            service,
            token: token.clone(),
            aliases_path: Some(args.aliases.clone()),
            fleet: Some(app.state().beats.clone()),
            rollouts,
        }))
    } else {
        disabled_router()
    };
    let router = app.router().merge(admin);
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
    if !admin_on {
        tracing::warn!(
            host = %args.host,
            "admin API OFF: listening beyond loopback without MANA_LLM_ADMIN_TOKEN, so /admin/v1 \
             answers 403; set MANA_LLM_ADMIN_TOKEN to push or roll back registries here"
        );
    } else if token.is_none() {
        tracing::info!(
            "admin API: no MANA_LLM_ADMIN_TOKEN set, so /admin/v1 answers loopback clients only \
             (never through a proxy)"
        );
    }

    // Phases: stop being ready and stop background work → refuse new connections and let
    // in-flight work finish → exit, at the latest when the drain deadline passes.
    let drain = Duration::from_secs(args.drain_seconds);
    let limits = app.state().config.connections.clone();
    signals::serve_until(listener, router, limits, shutdown, drain, || {
        app.start_draining();
        app.stop_background();
    })
    .await
}
