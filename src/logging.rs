//! Log setup: `LOG_LEVEL` (an env-filter directive, default `info`) and `LOG_FORMAT`
//! (`text`, the default, or `json` for log shippers). Logs go to stderr.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// The logging arguments every role takes.
#[derive(clap::Args)]
pub struct LogArgs {
    /// Log filter: error, warn, info, debug, trace (or an env-filter directive).
    #[arg(long, env = "LOG_LEVEL", default_value = "info")]
    log_level: String,
    /// Log format: text or json.
    #[arg(long, env = "LOG_FORMAT", default_value = "text")]
    log_format: String,
}

impl LogArgs {
    /// Installs the process's log subscriber.
    pub fn init(&self) -> Result<(), String> {
        init(&self.log_level, &self.log_format)
    }
}

pub fn init(level: &str, format: &str) -> Result<(), String> {
    let level = level.trim().to_ascii_lowercase();
    let filter = EnvFilter::try_new(if level.is_empty() { "info" } else { &level })
        .map_err(|e| format!("invalid LOG_LEVEL '{level}': {e}"))?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    let result = match format.trim().to_ascii_lowercase().as_str() {
        "" | "text" => builder.try_init(),
        "json" => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .try_init(),
        other => {
            return Err(format!(
                "invalid LOG_FORMAT '{other}': use 'text' or 'json'"
            ))
        }
    };
    result.map_err(|e| format!("could not install the logger: {e}"))
}
