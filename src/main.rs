//! `mana-llm`: one binary for every role. This file only parses the command line and hands
//! over: [`serve`] (the embedded default), [`control_plane`], and the `aliases` commands.

mod admin;
mod control_plane;
mod logging;
mod serve;
mod signals;
mod worker;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use mana_llm_data_plane::server::read_registry;
use mana_llm_shared::{RegistryPolicy, RegistryVersion};

use control_plane::ControlPlaneArgs;
use serve::ServeArgs;
use worker::WorkerArgs;

/// glibc's allocator showed up as ~15 % of the gateway's CPU under load (arena locks, futex
/// wake-ups between the runtime's threads); mimalloc's thread-local free lists avoid both.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
    /// Run the control plane alone: the versioned registry (SQLite event log), the admin API,
    /// and publishing each version to the workers through Redis.
    ControlPlane(ControlPlaneArgs),
    /// Run one stateless data-plane worker of a fleet: registry versions, provider health and
    /// cached answers come from (and are shared through) Redis.
    Worker(WorkerArgs),
    /// Work with alias registries: validate a file offline, or push, inspect, diff and roll
    /// back versions through the admin API (token from MANA_LLM_ADMIN_TOKEN).
    Aliases {
        #[command(flatten)]
        admin: admin::AdminArgs,
        #[command(subcommand)]
        command: AliasesCommand,
    },
    /// See the fleet: every live worker (from its heartbeat), the registry version it serves,
    /// whether it lags the control plane's current one.
    Fleet {
        #[command(flatten)]
        admin: admin::AdminArgs,
        #[command(subcommand)]
        command: FleetCommand,
    },
}

#[derive(Subcommand)]
enum FleetCommand {
    /// Every live worker as a table (or `--json`).
    Status,
}

#[derive(Subcommand)]
enum AliasesCommand {
    /// Check an aliases file offline: prints every error (exit 1) or a summary (exit 0).
    Validate {
        /// The file to check.
        file: PathBuf,
    },
    #[command(flatten)]
    Admin(admin::AdminCommand),
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => serve::serve(args).await,
        Command::ControlPlane(args) => control_plane::control_plane(args).await,
        Command::Worker(args) => worker::worker(args).await,
        Command::Aliases {
            command: AliasesCommand::Validate { file },
            ..
        } => return validate(&file),
        Command::Aliases {
            admin,
            command: AliasesCommand::Admin(command),
        } => return admin::run(&admin, command).await,
        Command::Fleet {
            admin,
            command: FleetCommand::Status,
        } => return admin::fleet_status(&admin).await,
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
    // The operator's rules apply offline too: a file that passes here passes a push.
    let policy = match RegistryPolicy::from_settings(|k| std::env::var(k).ok()) {
        Ok(policy) => policy,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    match read_registry(file, RegistryVersion(1), &policy) {
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
