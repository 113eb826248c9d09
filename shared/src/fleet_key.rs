//! The fleet key: what makes state in Redis trustworthy.
//!
//! Redis is shared by every worker and the control plane, and anyone who can reach it can
//! write to it. Whatever the fleet must trust from Redis — the published registry version,
//! cached responses — is therefore MAC'd with a key only the fleet's processes hold
//! (`MANA_LLM_FLEET_KEY`, HMAC-SHA256). Without a key, state is still validated, but its
//! origin cannot be checked; every process says so at start.

use std::fmt;

use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// The environment variable holding the fleet key.
pub const FLEET_KEY_ENV: &str = "MANA_LLM_FLEET_KEY";

/// The shortest fleet key accepted: 16 bytes is the least HMAC-SHA256 should be keyed with.
pub const MIN_FLEET_KEY_LEN: usize = 16;

/// A shared HMAC-SHA256 key. Its `Debug` never shows the value.
#[derive(Clone, PartialEq, Eq)]
pub struct FleetKey(Vec<u8>);

/// Why a fleet key setting cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{FLEET_KEY_ENV} must be at least {MIN_FLEET_KEY_LEN} characters long")]
pub struct FleetKeyTooShort;

impl FleetKey {
    /// `Ok(None)` for an absent or blank value; an error for one too short to be a key.
    pub fn from_setting(value: Option<&str>) -> Result<Option<Self>, FleetKeyTooShort> {
        match value.map(str::trim).filter(|v| !v.is_empty()) {
            None => Ok(None),
            Some(v) if v.len() < MIN_FLEET_KEY_LEN => Err(FleetKeyTooShort),
            Some(v) => Ok(Some(Self(v.as_bytes().to_vec()))),
        }
    }

    /// The key's bytes, for scrubbing it out of any text that could leave the process.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    /// HMAC-SHA256 over `parts`, each length-prefixed so that no two different part lists
    /// give the same input, as lower-case hex.
    pub fn sign(&self, domain: &str, parts: &[&[u8]]) -> String {
        to_hex(&self.mac(domain, parts))
    }

    /// Whether `signature` (hex) is this key's signature of `parts`, compared in constant time.
    pub fn verify(&self, domain: &str, parts: &[&[u8]], signature: &str) -> bool {
        let expected = self.sign(domain, parts);
        expected.len() == signature.len()
            && bool::from(expected.as_bytes().ct_eq(signature.as_bytes()))
    }

    fn mac(&self, domain: &str, parts: &[&[u8]]) -> Vec<u8> {
        // `new_from_slice` accepts any key length for HMAC; the error arm is unreachable but
        // handled without a panic.
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(&self.0) else {
            return Vec::new();
        };
        for part in std::iter::once(domain.as_bytes()).chain(parts.iter().copied()) {
            mac.update(&(part.len() as u64).to_be_bytes());
            mac.update(part);
        }
        mac.finalize().into_bytes().to_vec()
    }
}

impl fmt::Debug for FleetKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("FleetKey([redacted])")
    }
}

/// Lower-case hex of `bytes`.
pub fn to_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(s: &str) -> FleetKey {
        FleetKey::from_setting(Some(s)).unwrap().unwrap()
    }

    #[test]
    fn blank_is_none_and_short_is_an_error() {
        assert_eq!(FleetKey::from_setting(None), Ok(None));
        assert_eq!(FleetKey::from_setting(Some("  ")), Ok(None));
        assert_eq!(FleetKey::from_setting(Some("short")), Err(FleetKeyTooShort));
    }

    #[test]
    fn known_answer() {
        // Pinned: a change to the framing would invalidate every signature in a running fleet.
        let k = key("0123456789abcdef");
        assert_eq!(
            k.sign("test", &[b"a", b"bc"]),
            "7923035a0a577a9bd9873d4ea3208420176ef2cfcc9c6cc07083bfa29b35ed47"
        );
    }

    #[test]
    fn verifies_its_own_signature_only() {
        let k = key("0123456789abcdef");
        let sig = k.sign("registry", &[b"1", b"hash"]);
        assert!(k.verify("registry", &[b"1", b"hash"], &sig));
        assert!(!k.verify("registry", &[b"2", b"hash"], &sig));
        assert!(!k.verify("cache", &[b"1", b"hash"], &sig));
        assert!(!key("fedcba9876543210").verify("registry", &[b"1", b"hash"], &sig));
        assert!(!k.verify("registry", &[b"1", b"hash"], ""));
    }

    #[test]
    fn framing_separates_parts() {
        let k = key("0123456789abcdef");
        assert_ne!(k.sign("d", &[b"ab", b"c"]), k.sign("d", &[b"a", b"bc"]));
    }

    #[test]
    fn debug_hides_the_key() {
        assert!(!format!("{:?}", key("0123456789abcdef-secret")).contains("secret"));
    }

    #[test]
    fn the_key_is_exposed_for_scrubbing_and_never_debug_printed() {
        let key = FleetKey::from_setting(Some("  fleet-key-0123456789abc  "))
            .unwrap()
            .unwrap();
        assert_eq!(key.expose(), b"fleet-key-0123456789abc");
        let printed = format!("{key:?}");
        assert_eq!(printed, "FleetKey([redacted])");
    }
}
