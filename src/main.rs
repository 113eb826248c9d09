//! `mana-llm`: one binary for every role.
//!
//! The story of `serve`: read the configuration → build the gateway → bind → serve until
//! SIGTERM/SIGINT → drain in-flight requests (bounded by a deadline) → exit 0.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use mana_llm_data_plane::server::{read_registry, Reloaded};
use mana_llm_data_plane::{logging, run, App, GatewayConfig, Source};
use mana_llm_shared::{Registry, RegistryVersion};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// The shipped registry, used when the default aliases file is not where we run.
const SHIPPED_ALIASES: &str = include_str!("../aliases.yaml");
const DEFAULT_ALIASES: &str = "aliases.yaml";

#[derive(Parser)]
#[command(
    name = "mana-llm",
    version,
    about = "An OpenAI-compatible LLM gateway: one endpoint in front of Ollama, OpenAI, OpenRouter, Groq, Together and Gemini.",
    long_about = "An OpenAI-compatible LLM gateway: one endpoint in front of Ollama, OpenAI, OpenRouter, Groq, \
Together and Gemini.\n\nModels are named 'provider/model' (e.g. 'groq/llama-3.1-8b-instant'); a bare name goes to \
Ollama, and the built-in 'echo/<anything>' answers offline. Providers are configured by environment variables \
(OLLAMA_URL, OPENAI_API_KEY, OPENROUTER_API_KEY, GROQ_API_KEY, TOGETHER_API_KEY, GOOGLE_API_KEY, …); see the README."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the whole gateway in one process (the embedded default): the OpenAI-compatible API on
    /// one port, no Redis needed.
    Serve(ServeArgs),
    /// Work with alias registries.
    #[command(subcommand)]
    Aliases(AliasesCommand),
}

#[derive(Subcommand)]
enum AliasesCommand {
    /// Check an aliases file offline: prints every error (exit 1) or a summary (exit 0).
    Validate {
        /// The file to check.
        file: PathBuf,
    },
}

#[derive(Args)]
struct ServeArgs {
    /// Address to listen on. Use 0.0.0.0 to accept connections from other machines.
    #[arg(long, env = "MANA_LLM_HOST", default_value = "127.0.0.1")]
    host: std::net::IpAddr,
    /// Port to listen on (0 picks a free one; the chosen address is printed on stdout).
    #[arg(long, env = "PORT", default_value_t = 3025)]
    port: u16,
    /// The alias registry file; re-read on SIGHUP. When the default file is missing, the
    /// shipped registry is used.
    #[arg(long, env = "MANA_LLM_ALIASES", default_value = DEFAULT_ALIASES)]
    aliases: PathBuf,
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

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => serve(args).await,
        Command::Aliases(AliasesCommand::Validate { file }) => return validate(&file),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("mana-llm: {message}");
            ExitCode::from(2)
        }
    }
}

fn validate(file: &Path) -> ExitCode {
    match read_registry(file, RegistryVersion(1)) {
        Ok(registry) => {
            println!(
                "{}: ok, {} aliases, default {}",
                file.display(),
                registry.aliases().count(),
                registry.default_alias().map_or("(none)", |d| d.as_str())
            );
            for alias in registry.aliases() {
                let chain: Vec<String> = alias.chain.iter().map(|e| e.target.to_string()).collect();
                println!("  {}: {}", alias.name, chain.join(" -> "));
            }
            ExitCode::SUCCESS
        }
        Err(errors) => {
            eprintln!("{}: {} error(s)", file.display(), errors.0.len());
            for e in &errors.0 {
                eprintln!("  - {e}");
            }
            ExitCode::from(1)
        }
    }
}

/// The registry to start with: the file, or the shipped copy when the default file is absent.
fn initial_registry(path: &Path) -> Result<Registry, String> {
    if path == Path::new(DEFAULT_ALIASES) && !path.exists() {
        tracing::warn!("no {DEFAULT_ALIASES} here; serving the shipped registry (set MANA_LLM_ALIASES to use your own)");
        return Registry::parse(SHIPPED_ALIASES, "shipped aliases.yaml", RegistryVersion(1))
            .map_err(|e| e.to_string());
    }
    read_registry(path, RegistryVersion(1)).map_err(|e| format!("invalid alias registry: {e}"))
}

async fn serve(args: ServeArgs) -> Result<(), String> {
    logging::init(&args.log_level, &args.log_format)?;
    let source = Source::from_env();
    let config = GatewayConfig::from_source(&source).map_err(|e| e.to_string())?;
    let registry = initial_registry(&args.aliases)?;
    let app = App::build(config, registry, source).map_err(|e| e.to_string())?;
    let background = CancellationToken::new();
    app.spawn_background(background.clone());
    reload_on_sighup(app.clone(), args.aliases.clone());
    let addr = SocketAddr::new(args.host, args.port);
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    let local = listener.local_addr().map_err(|e| e.to_string())?;
    // Tests and scripts read this line to find a port chosen with --port 0.
    println!("listening on http://{local}");
    let providers: Vec<String> = app
        .state()
        .snapshots
        .load()
        .providers
        .configured()
        .map(|p| p.id().to_string())
        .collect();
    let version = app.state().snapshots.version().0;
    tracing::info!(%local, providers = %providers.join(","), auth = app.state().config.auth.enabled(), registry_version = version, "mana-llm serving");

    let (stop_tx, mut stop_rx) = watch::channel(false);
    let server = tokio::spawn(run(listener, app.router(), async move {
        let _ = stop_rx.wait_for(|stop| *stop).await;
    }));
    shutdown_signal().await;
    // Phases: stop being ready → stop accepting and let in-flight work finish → exit, at the
    // latest when the drain deadline passes.
    app.start_draining();
    background.cancel();
    tracing::info!(
        drain_seconds = args.drain_seconds,
        "shutting down: draining in-flight requests"
    );
    let _ = stop_tx.send(true);
    match tokio::time::timeout(Duration::from_secs(args.drain_seconds), server).await {
        Ok(Ok(Ok(()))) => tracing::info!("drained; bye"),
        Ok(Ok(Err(e))) => return Err(format!("server error: {e}")),
        Ok(Err(e)) => return Err(format!("server task failed: {e}")),
        Err(_) => tracing::warn!("drain deadline passed; exiting with requests still open"),
    }
    Ok(())
}

/// SIGHUP re-reads the aliases file; a bad file is logged and changes nothing.
fn reload_on_sighup(app: App, path: PathBuf) {
    #[cfg(unix)]
    tokio::spawn(async move {
        let Ok(mut hangups) =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        else {
            tracing::warn!("cannot listen for SIGHUP; reloads are off");
            return;
        };
        while hangups.recv().await.is_some() {
            match app.reload_from(&path) {
                Ok(Reloaded::Applied(version)) => {
                    tracing::info!(version, path = %path.display(), "alias registry reloaded")
                }
                Ok(Reloaded::Unchanged(version)) => {
                    tracing::info!(version, "alias registry unchanged")
                }
                Err(errors) => {
                    for e in &errors.0 {
                        tracing::error!(error = %e, "alias reload rejected, keeping previous state");
                    }
                }
            }
        }
    });
    #[cfg(not(unix))]
    let _ = (app, path);
}

async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
