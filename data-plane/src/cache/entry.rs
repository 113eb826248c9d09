//! The form of a cached answer in Redis, and the checks an entry read back must pass.
//!
//! Anyone who can write to Redis can write a cache entry, and a hit is served to clients as the
//! provider's answer. So an entry is `{"mac": <hex>, "entry": <the answer's JSON>}`, the MAC an
//! HMAC-SHA256 with the fleet key over the entry's Redis key and the answer's exact bytes: an
//! answer moved to another key (another request, another tenant) or changed in place fails it.
//! Without a fleet key there is no `mac` and only the shape is checked; a worker without a key
//! ignores a `mac` it cannot check. Whatever fails is a miss, never an error for the client.

use mana_llm_shared::fleet_key::FleetKey;
use serde::Deserialize;
use serde_json::value::RawValue;

use super::{CacheKey, Cached};

/// The MAC's domain: a cache entry's signature means nothing anywhere else.
const MAC_DOMAIN: &str = "cache-entry:v2";

/// Why an entry read from Redis is not served. Also the `reason` metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Rejected {
    /// Not JSON, or not the shape of an envelope around an answer.
    Malformed,
    /// No MAC, and this worker has a fleet key.
    Unsigned,
    /// A MAC that is not the fleet key's over this key and content.
    BadMac,
}

impl Rejected {
    pub(super) fn label(self) -> &'static str {
        match self {
            Rejected::Malformed => "malformed",
            Rejected::Unsigned => "unsigned",
            Rejected::BadMac => "bad_mac",
        }
    }
}

#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(default, borrow)]
    mac: Option<&'a str>,
    /// Kept as the exact bytes stored, since those are what the MAC covers.
    #[serde(borrow)]
    entry: &'a RawValue,
}

/// The Redis value for `json` (an encoded [`Cached`]) stored under `key`.
pub(super) fn seal(key: &CacheKey, json: &[u8], fleet_key: Option<&FleetKey>) -> Vec<u8> {
    // Written by hand so that `entry` is `json` byte for byte, as signed.
    let mac = fleet_key.map(|k| k.sign(MAC_DOMAIN, &[key.0.as_bytes(), json]));
    let mut out = Vec::with_capacity(json.len() + 96);
    match &mac {
        Some(mac) => {
            out.extend_from_slice(br#"{"mac":""#);
            out.extend_from_slice(mac.as_bytes());
            out.extend_from_slice(br#"","entry":"#);
        }
        None => out.extend_from_slice(br#"{"entry":"#),
    }
    out.extend_from_slice(json);
    out.push(b'}');
    out
}

/// The answer in `bytes`, read from Redis under `key`, if it may be served.
pub(super) fn open(
    key: &CacheKey,
    bytes: &[u8],
    fleet_key: Option<&FleetKey>,
) -> Result<Cached, Rejected> {
    let envelope: Envelope<'_> = serde_json::from_slice(bytes).map_err(|_| Rejected::Malformed)?;
    let json = envelope.entry.get();
    if let Some(fleet_key) = fleet_key {
        let mac = envelope.mac.ok_or(Rejected::Unsigned)?;
        if !fleet_key.verify(MAC_DOMAIN, &[key.0.as_bytes(), json.as_bytes()], mac) {
            return Err(Rejected::BadMac);
        }
    }
    let cached: Cached = serde_json::from_str(json).map_err(|_| Rejected::Malformed)?;
    if !cached.is_well_formed() {
        return Err(Rejected::Malformed);
    }
    Ok(cached)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn fleet(k: &str) -> FleetKey {
        FleetKey::from_setting(Some(k)).unwrap().unwrap()
    }

    fn key(hash: &str) -> CacheKey {
        CacheKey(format!("mana-llm:cache:v2:{hash}"))
    }

    fn answer_json(text: &str) -> Vec<u8> {
        serde_json::to_vec(&json!({
            "target": "groq/llama",
            "completion": {"id": "c", "created": 1, "model": "groq/llama",
                "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}]}
        }))
        .unwrap()
    }

    fn text(c: &Cached) -> &str {
        c.completion.choices[0].message.content.as_deref().unwrap()
    }

    /// The stored value with its `entry` replaced by `entry` and its `mac` kept as it was.
    fn with_entry(stored: &[u8], entry: &[u8]) -> Vec<u8> {
        let v: Value = serde_json::from_slice(stored).unwrap();
        let mut out = format!(r#"{{"mac":{},"entry":"#, v["mac"]).into_bytes();
        out.extend_from_slice(entry);
        out.push(b'}');
        out
    }

    #[test]
    fn a_sealed_entry_opens_under_its_key() {
        let k = fleet("0123456789abcdef");
        let stored = seal(&key("a"), &answer_json("hi"), Some(&k));
        assert_eq!(text(&open(&key("a"), &stored, Some(&k)).unwrap()), "hi");
        let plain = seal(&key("a"), &answer_json("hi"), None);
        assert_eq!(text(&open(&key("a"), &plain, None).unwrap()), "hi");
        // A worker without the key cannot check a MAC, so it only checks the shape.
        assert_eq!(text(&open(&key("a"), &stored, None).unwrap()), "hi");
    }

    #[test]
    fn changed_content_fails_the_mac() {
        let k = fleet("0123456789abcdef");
        let stored = seal(&key("a"), &answer_json("hi"), Some(&k));
        let tampered = with_entry(&stored, &answer_json("injected"));
        assert_eq!(
            open(&key("a"), &tampered, Some(&k)).unwrap_err(),
            Rejected::BadMac
        );
    }

    #[test]
    fn an_entry_moved_to_another_key_fails_the_mac() {
        let k = fleet("0123456789abcdef");
        let stored = seal(&key("tenant-a"), &answer_json("hi"), Some(&k));
        assert_eq!(
            open(&key("tenant-b"), &stored, Some(&k)).unwrap_err(),
            Rejected::BadMac
        );
    }

    #[test]
    fn another_fleet_key_or_none_is_rejected() {
        let k = fleet("0123456789abcdef");
        let foreign = seal(
            &key("a"),
            &answer_json("hi"),
            Some(&fleet("fedcba9876543210")),
        );
        assert_eq!(
            open(&key("a"), &foreign, Some(&k)).unwrap_err(),
            Rejected::BadMac
        );
        let unsigned = seal(&key("a"), &answer_json("hi"), None);
        assert_eq!(
            open(&key("a"), &unsigned, Some(&k)).unwrap_err(),
            Rejected::Unsigned
        );
        let empty_mac = with_entry(&unsigned, &answer_json("hi")); // "mac": null
        assert_eq!(
            open(&key("a"), &empty_mac, Some(&k)).unwrap_err(),
            Rejected::Unsigned
        );
    }

    #[test]
    fn a_bare_answer_from_an_older_format_is_malformed() {
        let k = fleet("0123456789abcdef");
        // The v1 format stored the answer alone: it has no `entry`, with or without a key.
        assert_eq!(
            open(&key("a"), &answer_json("hi"), Some(&k)).unwrap_err(),
            Rejected::Malformed
        );
        assert_eq!(
            open(&key("a"), &answer_json("hi"), None).unwrap_err(),
            Rejected::Malformed
        );
    }

    #[test]
    fn the_shape_is_checked_with_or_without_a_key() {
        let k = fleet("0123456789abcdef");
        let bad: [&[u8]; 5] = [
            b"not json",
            br#"{"entry": "a string"}"#,
            br#"{"entry": {"target": "groq/llama", "completion": {}}}"#,
            br#"{"entry": {"target": "", "completion": {"choices": [{"message": {}}]}}}"#,
            br#"{"entry": {"completion": {"choices": [{"message": {}}]}}}"#,
        ];
        for entry in bad {
            assert_eq!(
                open(&key("a"), entry, None).unwrap_err(),
                Rejected::Malformed,
                "{}",
                String::from_utf8_lossy(entry)
            );
            // Signed, so only the shape can fail.
            let v: Result<Value, _> = serde_json::from_slice(entry);
            if let Ok(inner) = v.as_ref().map(|v| v["entry"].to_string()) {
                let signed = seal(&key("a"), inner.as_bytes(), Some(&k));
                assert_eq!(
                    open(&key("a"), &signed, Some(&k)).unwrap_err(),
                    Rejected::Malformed
                );
            }
        }
    }
}
