//! `mana-llm aliases …` and `mana-llm fleet …`: the command-line client for the control
//! plane's admin API.
//!
//! The HTTP part is deliberately thin (one request, or two, per command); what the user sees —
//! tables, diff lines, error lines, exit codes — is built by pure functions in [`render`] and
//! [`failure`] so it can be tested without a server.

mod client;
mod failure;
mod fleet;
mod render;
mod rollout;

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use mana_llm_control_plane::contract::{EndBody, RollbackBody};
use mana_llm_shared::RegistryVersion;
use reqwest::header::{CONTENT_TYPE, IF_MATCH};
use serde::de::DeserializeOwned;

use client::Client;
use failure::Failure;
use render::{AuditPage, DiffView, Published, Style, VersionView, VersionsPage, PRETTY_UNREADABLE};

/// The env var holding the admin bearer token.
const TOKEN_ENV: &str = "MANA_LLM_ADMIN_TOKEN";
/// A CLI should not hang on a control plane that accepted the connection but never answers.
const TIMEOUT: Duration = Duration::from_secs(10);

#[derive(clap::Args)]
pub struct AdminArgs {
    /// Admin API base URL (the control plane, or `mana-llm serve`); the admin token is read
    /// from MANA_LLM_ADMIN_TOKEN.
    #[arg(
        long,
        global = true,
        env = "MANA_LLM_CONTROL_PLANE_URL",
        default_value = "http://127.0.0.1:3025"
    )]
    pub url: String,
    /// Print JSON instead of tables
    #[arg(long, global = true)]
    pub json: bool,
}

#[derive(clap::Subcommand)]
pub enum AdminCommand {
    /// Publish an aliases file (YAML, or JSON when it ends in .json) as a new registry version.
    /// Pushing the content of the current version changes nothing.
    Push {
        /// The aliases file to publish.
        file: PathBuf,
        /// Refuse (exit 5) unless this is still the current version: guards against
        /// overwriting someone else's push.
        #[arg(long)]
        expected_version: Option<u64>,
        /// Return only once every live worker serves the new version (exit 8 naming the
        /// workers that do not when `--timeout` passes first).
        #[arg(long)]
        wait: bool,
        /// How long `--wait` waits (e.g. 30s, 500ms, 2m).
        #[arg(long, default_value = "30s", value_parser = fleet::parse_timeout)]
        timeout: Duration,
        /// Roll out to part of the fleet first: a percentage (25%) or a number of workers (2).
        /// The rest keep the current version until `aliases promote` or `aliases abort`.
        #[arg(long, conflicts_with = "wait")]
        canary: Option<String>,
        /// With --canary: let the control plane promote or abort by itself, judging the
        /// candidate against stable from the workers' figures.
        #[arg(long, requires = "canary")]
        auto: bool,
        /// With --canary: how long both cohorts serve before an automatic promotion
        /// (90, 90s, 5m; default: the control plane's MANA_LLM_ROLLOUT_SOAK).
        #[arg(long, requires = "canary")]
        soak: Option<String>,
        /// With --canary: requests each cohort must serve before the candidate is judged.
        #[arg(long, requires = "canary")]
        min_requests: Option<u64>,
    },
    /// Show the staged rollout in progress: cohorts, figures, the judge's verdict.
    Rollout,
    /// Make the running rollout's candidate every worker's version.
    Promote {
        /// Recorded in the audit log.
        #[arg(long)]
        reason: Option<String>,
    },
    /// Withdraw the running rollout's candidate: every worker serves stable again.
    Abort {
        /// Recorded in the audit log.
        #[arg(long)]
        reason: Option<String>,
    },
    /// List the newest registry versions: source, actor, time, alias count, hash.
    List {
        /// How many of the newest versions to show.
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
    /// Show one registry version's aliases and their fallback chains.
    Show {
        /// The version to show; the current one when omitted.
        version: Option<u64>,
    },
    /// Show the audit log: every publish, rollback and rejected reload, oldest first.
    History {
        /// Show only events after this sequence number (for paging).
        #[arg(long, default_value_t = 0)]
        after: u64,
        /// How many events to show.
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
    /// Show what changed between two registry versions.
    Diff {
        /// The older version.
        from: u64,
        /// The newer version.
        to: u64,
    },
    /// Publish the content of an earlier version as a new version.
    Rollback {
        /// The version whose content to restore.
        version: u64,
        /// Refuse (exit 5) unless this is still the current version.
        #[arg(long)]
        expected_version: Option<u64>,
    },
    /// Make the control plane re-read its aliases file from disk (like SIGHUP); a bad file is
    /// rejected, recorded in the audit log and changes nothing.
    Reload,
}

/// Runs one admin command and prints its result: a table or message on stdout, or exactly one
/// error line (`mana-llm: …`, followed by the validation errors when the registry is invalid)
/// on stderr.
///
/// Exit codes:
/// - 0: done.
/// - 1: the registry is invalid (400), another request error (4xx), or a local problem such as
///   an unreadable file or a malformed `--url`.
/// - 3: the control plane is unreachable (connection refused, DNS failure, no answer in 10 s).
/// - 4: unauthorized (401): MANA_LLM_ADMIN_TOKEN is missing or wrong.
/// - 5: version conflict (409): the current version is not the `--expected-version`.
/// - 6: not found (404): no such version, or no registry yet.
/// - 7: the control plane failed (5xx) or gave an answer this client cannot read.
/// - 8: `push --wait`: the timeout passed before every live worker served the version.
pub async fn run(args: &AdminArgs, command: AdminCommand) -> ExitCode {
    // An empty variable is treated as unset so `MANA_LLM_ADMIN_TOKEN= mana-llm …` sends nothing.
    let token = std::env::var(TOKEN_ENV).ok().filter(|t| !t.is_empty());
    let style = Style {
        colour: std::io::stdout().is_terminal() && colour_allowed(std::env::var_os("NO_COLOR")),
    };
    let outcome = match Client::new(&args.url, token.as_deref()) {
        Ok(client) => execute(&client, args.json, style, command).await,
        Err(failure) => Err(failure),
    };
    finish(outcome, token.as_deref())
}

/// Prints a command's text on stdout (exit 0), or its one error line on stderr (its exit code).
fn finish(outcome: Result<String, Failure>, token: Option<&str>) -> ExitCode {
    match outcome {
        Ok(text) => {
            print_stdout(&text);
            ExitCode::SUCCESS
        }
        Err(failure) => {
            // The token never goes into a message on purpose; redacting is the safety net for
            // a server that echoes what it was sent.
            let text = failure.render(token);
            let _ = std::io::stderr().lock().write_all(text.as_bytes());
            ExitCode::from(failure.exit)
        }
    }
}

/// <https://no-color.org>: a set, non-empty NO_COLOR turns colour off.
fn colour_allowed(no_color: Option<std::ffi::OsString>) -> bool {
    no_color.is_none_or(|v| v.is_empty())
}

/// Writes to stdout, ignoring a closed pipe (`mana-llm aliases list | head` must not panic).
fn print_stdout(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
}

async fn execute(
    client: &Client,
    json: bool,
    style: Style,
    command: AdminCommand,
) -> Result<String, Failure> {
    match command {
        AdminCommand::Push {
            file,
            expected_version,
            wait,
            timeout,
            canary,
            auto,
            soak,
            min_requests,
        } => {
            let body = read_file(&file)?;
            let mut request = client
                .post("/registry")
                .header(CONTENT_TYPE, content_type(&file))
                .body(body);
            if let Some(v) = expected_version {
                request = request.header(IF_MATCH, v.to_string());
            }
            if let Some(share) = canary {
                let mut query = vec![("canary", share), ("auto", auto.to_string())];
                query.extend(soak.map(|s| ("soak", s)));
                query.extend(min_requests.map(|n| ("min_requests", n.to_string())));
                let text = client.send(request.query(&query), expected_version).await?;
                return output::<rollout::Started>(&text, json, rollout::render_started);
            }
            let text = client.send(request, expected_version).await?;
            let mut out = output::<Published>(&text, json, |p| render::published(p, None))?;
            if wait {
                let version = parse::<Published>(&text)?.version;
                let reached = fleet::wait(client, version, timeout).await?;
                if !json {
                    out.push_str(&reached);
                }
            }
            Ok(out)
        }
        AdminCommand::List { limit } => {
            // Versions are numbered 1, 2, 3, … and the API pages oldest first, so the newest
            // `limit` are the ones after `current - limit`.
            let after = match client.send(client.get("/registry"), None).await {
                Ok(text) => parse::<VersionView>(&text)?
                    .made
                    .version
                    .0
                    .saturating_sub(u64::from(limit)),
                Err(f) if f.exit == failure::EXIT_NOT_FOUND => 0,
                Err(f) => return Err(f),
            };
            let path = format!("/registry/versions?after={after}&limit={limit}");
            let text = client.send(client.get(&path), None).await?;
            output::<VersionsPage>(&text, json, render::versions)
        }
        AdminCommand::Show { version } => {
            let path = match version {
                Some(v) => format!("/registry/versions/{v}"),
                None => "/registry".to_string(),
            };
            let text = client.send(client.get(&path), None).await?;
            output::<VersionView>(&text, json, render::version)
        }
        AdminCommand::History { after, limit } => {
            let path = format!("/audit?after={after}&limit={limit}");
            let text = client.send(client.get(&path), None).await?;
            output::<AuditPage>(&text, json, render::audit)
        }
        AdminCommand::Diff { from, to } => {
            let path = format!("/registry/diff?from={from}&to={to}");
            let text = client.send(client.get(&path), None).await?;
            if json {
                return pretty(&text);
            }
            let diff = parse::<DiffView>(&text)?;
            // The diff names added aliases only; their chains come from the newer version. That
            // is decoration, so failing to fetch it still prints the diff.
            let target = if diff.diff.added.is_empty() {
                None
            } else {
                let path = format!("/registry/versions/{to}");
                match client.send(client.get(&path), None).await {
                    Ok(text) => parse::<VersionView>(&text).ok(),
                    Err(_) => None,
                }
            };
            Ok(render::diff(&diff, target.as_ref(), style))
        }
        AdminCommand::Rollback {
            version,
            expected_version,
        } => {
            let body = RollbackBody {
                expected_version: expected_version.map(RegistryVersion),
                to_version: RegistryVersion(version),
            };
            let request = client
                .post("/registry/rollback")
                .header(CONTENT_TYPE, "application/json")
                .body(to_json(&body)?);
            let text = client.send(request, expected_version).await?;
            output::<Published>(&text, json, |p| render::published(p, Some(version)))
        }
        AdminCommand::Rollout => {
            let text = client.send(client.get("/rollout"), None).await?;
            output::<rollout::Status>(&text, json, rollout::render_status)
        }
        AdminCommand::Promote { reason } => end_rollout(client, json, "promote", reason).await,
        AdminCommand::Abort { reason } => end_rollout(client, json, "abort", reason).await,
        AdminCommand::Reload => {
            let text = client.send(client.post("/registry/reload"), None).await?;
            output::<Published>(&text, json, |p| render::published(p, None))
        }
    }
}

/// `aliases promote` / `aliases abort`.
async fn end_rollout(
    client: &Client,
    json: bool,
    how: &str,
    reason: Option<String>,
) -> Result<String, Failure> {
    let body = EndBody {
        reason,
        candidate_version: None,
    };
    let request = client
        .post(&format!("/rollout/{how}"))
        .header(CONTENT_TYPE, "application/json")
        .body(to_json(&body)?);
    let text = client.send(request, None).await?;
    output::<rollout::Ended>(&text, json, rollout::render_ended)
}

/// The server's JSON as is (re-indented) with `--json`, else the typed answer rendered.
fn output<T: DeserializeOwned>(
    text: &str,
    json: bool,
    render: impl FnOnce(&T) -> String,
) -> Result<String, Failure> {
    if json {
        pretty(text)
    } else {
        parse::<T>(text).map(|value| render(&value))
    }
}

fn pretty(text: &str) -> Result<String, Failure> {
    render::pretty_json(text)
        .map(|mut s| {
            s.push('\n');
            s
        })
        .ok_or_else(|| Failure::unreadable(PRETTY_UNREADABLE))
}

fn to_json<T: serde::Serialize>(body: &T) -> Result<String, Failure> {
    serde_json::to_string(body)
        .map_err(|e| Failure::local(format!("cannot encode the request: {e}")))
}

fn parse<T: DeserializeOwned>(text: &str) -> Result<T, Failure> {
    serde_json::from_str(text).map_err(|e| Failure::unreadable(&e.to_string()))
}

fn read_file(path: &Path) -> Result<String, Failure> {
    std::fs::read_to_string(path)
        .map_err(|e| Failure::local(format!("cannot read {}: {e}", path.display())))
}

fn content_type(path: &Path) -> &'static str {
    let is_json = path
        .extension()
        .is_some_and(|ext| ext.eq_ignore_ascii_case("json"));
    if is_json {
        "application/json"
    } else {
        "application/yaml"
    }
}

/// `mana-llm fleet status`: every live worker, the version it serves and whether it lags.
pub async fn fleet_status(args: &AdminArgs) -> ExitCode {
    let token = std::env::var(TOKEN_ENV).ok().filter(|t| !t.is_empty());
    let outcome = match Client::new(&args.url, token.as_deref()) {
        Ok(client) => match client.send(client.get("/fleet"), None).await {
            Ok(text) => output::<fleet::FleetView>(&text, args.json, fleet::render_status),
            Err(failure) => Err(failure),
        },
        Err(failure) => Err(failure),
    };
    finish(outcome, token.as_deref())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_files_are_sent_as_json_everything_else_as_yaml() {
        assert_eq!(content_type(Path::new("a.json")), "application/json");
        assert_eq!(content_type(Path::new("a.JSON")), "application/json");
        assert_eq!(content_type(Path::new("aliases.yaml")), "application/yaml");
        assert_eq!(content_type(Path::new("aliases")), "application/yaml");
    }

    #[test]
    fn no_color_set_and_non_empty_turns_colour_off() {
        assert!(colour_allowed(None));
        assert!(colour_allowed(Some("".into())));
        assert!(!colour_allowed(Some("1".into())));
    }

    #[test]
    fn a_missing_file_names_the_path_and_exits_1() {
        let failure = read_file(Path::new("/nonexistent/aliases.yaml")).err();
        let failure = failure.map(|f| (f.exit, f.line.contains("/nonexistent/aliases.yaml")));
        assert_eq!(failure, Some((1, true)));
    }
}
