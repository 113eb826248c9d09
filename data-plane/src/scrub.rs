//! Keeping the process's secrets inside it.
//!
//! Upstreams often quote the credential they were sent in their error text ("Incorrect API
//! key provided: sk-…"), and that text travels on: into response bodies, stream error events,
//! log lines, the breakers' `last_error` (shown by `/v1/health`, shared through Redis). A
//! [`Scrubber`] knows every secret value of the process and replaces each with [`REDACTED`];
//! it is applied where upstream text enters (the provider wrapper) and again where it is
//! stored.

use std::borrow::Cow;
use std::fmt;

use crate::settings::Source;

/// What a secret is replaced with.
pub const REDACTED: &str = "[redacted]";

/// Values shorter than this are not scrubbed: a two- or three-character "secret" (`GPU_API_KEY=a`
/// in a test setup) would match inside ordinary words and mangle every message, and a value
/// that short protects nothing anyway.
const MIN_SECRET_LEN: usize = 4;

/// Variables holding secrets by name, besides the suffixes in [`SECRET_SUFFIXES`] (which
/// cover these too; they are listed so the intent survives a rename of the suffix rule).
const SECRET_NAMES: [&str; 4] = [
    "GPU_API_KEY",
    "MANA_LLM_API_KEYS",
    "MANA_LLM_ADMIN_TOKEN",
    "MANA_LLM_FLEET_KEY",
];

/// A variable whose name ends like this holds a secret (`OPENAI_API_KEY`, a registry-declared
/// `LMSTUDIO_KEY`, `MANA_LLM_ADMIN_TOKEN`, …). Values may be comma-separated lists.
const SECRET_SUFFIXES: [&str; 6] = [
    "_KEY",
    "_KEYS",
    "_TOKEN",
    "_SECRET",
    "_SECRETS",
    "_PASSWORD",
];

/// The secret values of one process, longest first.
#[derive(Clone, Default)]
pub struct Scrubber {
    /// Longest first, so a secret that contains another is replaced whole, not in part.
    secrets: Vec<String>,
}

impl fmt::Debug for Scrubber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Scrubber")
            .field("secrets", &self.secrets.len())
            .finish()
    }
}

impl Scrubber {
    /// Every secret in `src`: the values of secret-named variables (and each item of a list),
    /// and the password of any URL-valued variable (`REDIS_URL`, a base URL with credentials).
    pub fn from_source(src: &Source) -> Self {
        let mut scrubber = Self::default();
        for (name, value) in src.vars() {
            if is_secret_name(name) {
                scrubber.add(value);
                for item in value.split(',') {
                    scrubber.add(item);
                }
            }
            if let Some(password) = url_password(value) {
                scrubber.add(&percent_decode(password));
                scrubber.add(password);
            }
        }
        scrubber
    }

    /// This scrubber plus one more secret (a key a registry-declared provider reads).
    pub fn with(mut self, secret: &str) -> Self {
        self.add(secret);
        self
    }

    fn add(&mut self, secret: &str) {
        let secret = secret.trim();
        if secret.len() < MIN_SECRET_LEN || self.secrets.iter().any(|s| s == secret) {
            return;
        }
        self.secrets.push(secret.to_owned());
        self.secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
    }

    pub fn is_empty(&self) -> bool {
        self.secrets.is_empty()
    }

    /// `text` with every secret replaced by [`REDACTED`]; borrowed when there was none.
    pub fn scrub<'a>(&self, text: &'a str) -> Cow<'a, str> {
        let mut out = Cow::Borrowed(text);
        for secret in &self.secrets {
            if out.contains(secret.as_str()) {
                out = Cow::Owned(out.replace(secret.as_str(), REDACTED));
            }
        }
        out
    }

    /// Scrubs an owned string in place of a copy.
    pub fn scrub_owned(&self, text: String) -> String {
        match self.scrub(&text) {
            Cow::Borrowed(_) => text,
            Cow::Owned(clean) => clean,
        }
    }
}

fn is_secret_name(name: &str) -> bool {
    let name = name.to_ascii_uppercase();
    SECRET_NAMES.contains(&name.as_str()) || SECRET_SUFFIXES.iter().any(|s| name.ends_with(s))
}

/// The password of `scheme://user:password@host…`, as written (percent-encoded).
fn url_password(value: &str) -> Option<&str> {
    let (userinfo, _) = split_userinfo(value)?;
    let (_, password) = userinfo.split_once(':')?;
    Some(password).filter(|p| !p.is_empty())
}

/// `scheme://userinfo@rest` split into `userinfo` and the offset of its `@` in `url`.
fn split_userinfo(url: &str) -> Option<(&str, usize)> {
    let start = url.find("://")? + 3;
    let authority = url[start..].split(['/', '?', '#']).next()?;
    let at = authority.rfind('@')?;
    Some((&authority[..at], start + at))
}

/// `text` with `%XX` sequences decoded (invalid ones kept as they are).
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        // Two hex digits exactly: `from_str_radix` alone would also take a sign ("%+1").
        let hex = bytes
            .get(i + 1..i + 3)
            .filter(|h| h.iter().all(u8::is_ascii_hexdigit))
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `url` with its password replaced by [`REDACTED`], for `Debug` output of settings.
pub fn redact_url(url: &str) -> Cow<'_, str> {
    match (split_userinfo(url), url_password(url)) {
        (Some((userinfo, at)), Some(_)) => {
            let scheme_end = at - userinfo.len();
            let user = userinfo.split_once(':').map_or("", |(user, _)| user);
            Cow::Owned(format!(
                "{}{user}:{REDACTED}{}",
                &url[..scheme_end],
                &url[at..]
            ))
        }
        _ => Cow::Borrowed(url),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn source(pairs: &[(&str, &str)]) -> Source {
        Source::from_map(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<HashMap<_, _>>(),
        )
    }

    /// A config printed for debugging shows how many secrets there are, never one of them.
    #[test]
    fn debug_shows_a_count_not_the_secrets() {
        let s = Scrubber::from_source(&source(&[("OPENAI_API_KEY", "sk-openai-1234")]));
        assert_eq!(format!("{s:?}"), "Scrubber { secrets: 1 }");
        assert!(!s.is_empty());
    }

    #[test]
    fn every_kind_of_secret_is_found() {
        let s = Scrubber::from_source(&source(&[
            ("OPENAI_API_KEY", "sk-openai-1234"),
            ("GPU_API_KEY", "gpu-key-5678"),
            ("MANA_LLM_API_KEYS", "client-one, client-two"),
            ("MANA_LLM_ADMIN_TOKEN", "admin-token-1"),
            ("MANA_LLM_FLEET_KEY", "fleet-key-0123456789abcdef"),
            ("LMSTUDIO_KEY", "lm-studio-key"),
            ("SOME_SECRET", "shh-secret"),
            ("DB_PASSWORD", "db-pass-word"),
            ("REDIS_URL", "redis://user:p%40ss-word@127.0.0.1:6379/0"),
            ("OLLAMA_URL", "http://:ollama-pw@gpu:11434"),
            ("MANA_LLM_WORKER_ID", "worker-7"),
        ]));
        let text = "sk-openai-1234 gpu-key-5678 client-one client-two admin-token-1 \
                    fleet-key-0123456789abcdef lm-studio-key shh-secret db-pass-word p@ss-word \
                    p%40ss-word ollama-pw";
        let clean = s.scrub(text);
        for secret in text.split(' ').filter(|w| !w.is_empty()) {
            assert!(!clean.contains(secret), "{secret} survived: {clean}");
        }
        assert_eq!(clean.matches(REDACTED).count(), 12, "{clean}");
        assert_eq!(s.scrub("worker-7 user"), "worker-7 user", "not secrets");
    }

    #[test]
    fn text_without_secrets_is_borrowed() {
        let s = Scrubber::default().with("sk-abcdef");
        assert!(matches!(s.scrub("all fine"), Cow::Borrowed(_)));
        assert_eq!(
            s.scrub("Incorrect API key provided: sk-abcdef."),
            "Incorrect API key provided: [redacted]."
        );
        assert_eq!(s.scrub_owned("sk-abcdef".to_owned()), REDACTED);
    }

    #[test]
    fn a_secret_containing_another_is_replaced_whole() {
        let s = Scrubber::default().with("abcd").with("abcdefgh-long");
        assert_eq!(
            s.scrub("key abcdefgh-long, abcd"),
            "key [redacted], [redacted]"
        );
    }

    #[test]
    fn short_values_are_ignored() {
        let s = Scrubber::from_source(&source(&[("GPU_API_KEY", "a"), ("X_TOKEN", "abc")]));
        assert!(s.is_empty());
        assert_eq!(s.scrub("a abc"), "a abc");
    }

    #[test]
    fn debug_shows_no_secret() {
        let s = Scrubber::default().with("sk-very-secret");
        assert!(!format!("{s:?}").contains("very-secret"));
    }

    #[test]
    fn urls_lose_their_password_only() {
        assert_eq!(
            redact_url("redis://user:pw-1234@host:6379/0"),
            "redis://user:[redacted]@host:6379/0"
        );
        assert_eq!(
            redact_url("redis://:pw-1234@host"),
            "redis://:[redacted]@host"
        );
        assert_eq!(redact_url("redis://host:6379"), "redis://host:6379");
        assert_eq!(
            redact_url("http://user@host/a:b@c"),
            "http://user@host/a:b@c"
        );
    }
}
