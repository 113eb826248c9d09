//! The RFC 3339 timestamps `/api/tags` writes in `modified_at`, as Unix seconds.

/// Seconds since the Unix epoch for an RFC 3339 timestamp, `YYYY-MM-DDTHH:MM:SS(.frac)?(Z|±HH:MM)`,
/// as Ollama writes `modified_at`. `None` if it is not one or lies before 1970.
pub fn unix_seconds(s: &str) -> Option<u64> {
    mana_llm_shared::clock::unix_time(s).map(|d| d.as_secs())
}
