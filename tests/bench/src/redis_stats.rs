//! What Redis itself did between two readings: commands by name (`INFO commandstats`), its
//! own CPU time (`INFO cpu`), commands processed (`INFO stats`), memory and clients.

use std::collections::BTreeMap;
use std::time::Instant;

use serde_json::{json, Value};

pub struct Reading {
    at: Instant,
    /// Calls per command name.
    calls: BTreeMap<String, u64>,
    /// `used_cpu_user + used_cpu_sys`, in seconds.
    cpu_s: f64,
    total_commands: u64,
    pub used_memory: u64,
    pub connected_clients: u64,
}

pub async fn connect(url: &str) -> Result<redis::aio::MultiplexedConnection, String> {
    redis::Client::open(url)
        .map_err(|e| e.to_string())?
        .get_multiplexed_async_connection()
        .await
        .map_err(|e| format!("redis {url}: {e}"))
}

pub async fn read(conn: &mut redis::aio::MultiplexedConnection) -> Result<Reading, String> {
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .arg("cpu")
        .arg("stats")
        .arg("memory")
        .arg("clients")
        .query_async(conn)
        .await
        .map_err(|e| format!("INFO: {e}"))?;
    let field = |name: &str| {
        info.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
            .map(str::trim)
            .unwrap_or("0")
    };
    let calls = info
        .lines()
        .filter_map(|l| l.strip_prefix("cmdstat_"))
        .filter_map(|l| {
            let (name, rest) = l.split_once(':')?;
            let calls = rest
                .strip_prefix("calls=")?
                .split(',')
                .next()?
                .parse()
                .ok()?;
            Some((name.to_owned(), calls))
        })
        .collect();
    let number = |name: &str| field(name).parse::<f64>().unwrap_or(0.0);
    Ok(Reading {
        at: Instant::now(),
        calls,
        cpu_s: number("used_cpu_user") + number("used_cpu_sys"),
        total_commands: number("total_commands_processed") as u64,
        used_memory: number("used_memory") as u64,
        connected_clients: number("connected_clients") as u64,
    })
}

/// Commands run between `before` and `after`, leaving out the harness's own `INFO`.
pub fn commands(before: &Reading, after: &Reading) -> BTreeMap<String, u64> {
    after
        .calls
        .iter()
        .filter(|(name, _)| name.as_str() != "info")
        .map(|(name, n)| {
            (
                name.clone(),
                n - before.calls.get(name).copied().unwrap_or(0),
            )
        })
        .filter(|(_, n)| *n > 0)
        .collect()
}

fn round(v: f64, places: i32) -> f64 {
    let f = 10f64.powi(places);
    (v * f).round() / f
}

/// The deltas between two readings, per request when `requests` > 0 and per second.
pub fn delta(before: &Reading, after: &Reading, requests: f64) -> Value {
    let commands = commands(before, after);
    let total: u64 = commands.values().sum();
    let publishes = commands.get("publish").copied().unwrap_or(0);
    let cpu_ms = (after.cpu_s - before.cpu_s) * 1000.0;
    let seconds = after.at.duration_since(before.at).as_secs_f64().max(1e-9);
    // `total_commands_processed` counts the harness's INFO too: one per reading.
    let processed = after
        .total_commands
        .saturating_sub(before.total_commands + 1);
    let per_request = |v: f64| {
        if requests > 0.0 {
            json!(round(v / requests, 4))
        } else {
            Value::Null
        }
    };
    json!({
        "seconds": round(seconds, 2),
        "commands": commands,
        "commands_per_request": per_request(total as f64),
        "publish_per_request": per_request(publishes as f64),
        "cpu_ms": round(cpu_ms, 1),
        "cpu_us_per_request": per_request(cpu_ms * 1000.0),
        "cpu_percent": round(cpu_ms / 10.0 / seconds, 2),
        "ops_per_sec": round(processed as f64 / seconds, 1),
        "used_memory_mib": round(after.used_memory as f64 / 1048576.0, 2),
        "connected_clients": after.connected_clients,
    })
}
