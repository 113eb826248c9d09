//! What a registry document may ask of the process that serves it: the operator's rules.
//!
//! A registry is data written by admins (and, if Redis is open, possibly by anyone who can
//! reach it). Declaring a provider means "send this environment variable as a bearer token
//! to this URL", so which variables and which hosts are allowed is the operator's decision,
//! taken through the environment, never the document's:
//!
//! - `MANA_LLM_PROVIDER_KEY_ENVS`: which variables a `providers:` entry may name as
//!   `api_key_env`, as comma-separated names or `*` patterns. Default: names ending in
//!   `_API_KEY`, except the gateway's own (`MANA_LLM_*`), the client key (`GPU_API_KEY`)
//!   and the keys of the built-in providers (a declared provider must not borrow OpenAI's
//!   key to send it elsewhere). An explicit setting may name any variable but `MANA_LLM_*`.
//! - `MANA_LLM_PROVIDER_HOSTS`: if set, the only hosts a `base_url` may point at (exact
//!   names or `*.example.com`).
//! - `MANA_LLM_REGISTRY_MAX_BYTES`: the largest document accepted (default 1 MiB).
//!
//! The control plane checks these rules on every push and reload; every worker checks them
//! again before it installs a version, whatever the control plane said.

use super::guard::DocumentLimits;
use super::RegistryDocument;
use crate::target::BUILTIN_PROVIDERS;

/// The environment variables holding the rules.
pub const KEY_ENVS_ENV: &str = "MANA_LLM_PROVIDER_KEY_ENVS";
pub const HOSTS_ENV: &str = "MANA_LLM_PROVIDER_HOSTS";
pub const MAX_BYTES_ENV: &str = "MANA_LLM_REGISTRY_MAX_BYTES";

/// Key variables the built-in providers read: never lent to a declared provider by default.
const BUILTIN_KEY_ENVS: [&str; 6] = [
    "OPENAI_API_KEY",
    "OPENROUTER_API_KEY",
    "GROQ_API_KEY",
    "TOGETHER_API_KEY",
    "GOOGLE_API_KEY",
    "GPU_API_KEY",
];

/// The operator's rules for registry documents.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RegistryPolicy {
    /// `None`: the default rule (`*_API_KEY`, minus the reserved ones).
    key_envs: Option<Vec<String>>,
    /// `None`: any host.
    hosts: Option<Vec<String>>,
    pub limits: DocumentLimits,
}

/// A policy setting that cannot be used; names the variable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {key}: {message}")]
pub struct PolicyError {
    pub key: &'static str,
    pub message: String,
}

impl RegistryPolicy {
    /// The rules from their settings (`lookup` reads one variable).
    pub fn from_settings(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, PolicyError> {
        let list = |key: &str| {
            lookup(key).and_then(|v| {
                let items: Vec<String> = v
                    .split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect();
                (!items.is_empty()).then_some(items)
            })
        };
        let key_envs = list(KEY_ENVS_ENV);
        if let Some(bad) = key_envs.iter().flatten().find(|p| !is_pattern(p)) {
            return Err(PolicyError {
                key: KEY_ENVS_ENV,
                message: format!("'{bad}' is not a variable name or a '*' pattern"),
            });
        }
        let hosts =
            list(HOSTS_ENV).map(|h| h.into_iter().map(|h| h.to_ascii_lowercase()).collect());
        let mut limits = DocumentLimits::default();
        if let Some(v) = lookup(MAX_BYTES_ENV).filter(|v| !v.trim().is_empty()) {
            limits.max_bytes = v
                .trim()
                .parse::<usize>()
                .ok()
                .filter(|n| *n >= 1024)
                .ok_or_else(|| PolicyError {
                    key: MAX_BYTES_ENV,
                    message: format!("'{v}' is not a number of bytes of at least 1024"),
                })?;
        }
        Ok(Self {
            key_envs,
            hosts,
            limits,
        })
    }

    /// These rules with an explicit list of allowed key variables (tests, embedders).
    pub fn with_key_envs(mut self, patterns: &[&str]) -> Self {
        self.key_envs = Some(patterns.iter().map(|p| (*p).to_owned()).collect());
        self
    }

    /// These rules with a host allow-list.
    pub fn with_hosts(mut self, hosts: &[&str]) -> Self {
        self.hosts = Some(hosts.iter().map(|h| h.to_ascii_lowercase()).collect());
        self
    }

    /// Whether a document may name `env` as a provider key.
    pub fn allows_key_env(&self, env: &str) -> bool {
        if env.starts_with("MANA_LLM_") || !is_pattern(env) || env.contains('*') {
            return false;
        }
        match &self.key_envs {
            Some(patterns) => patterns.iter().any(|p| glob(p, env)),
            None => env.ends_with("_API_KEY") && !BUILTIN_KEY_ENVS.contains(&env),
        }
    }

    /// What the allowed key variables are, for error messages.
    fn describe_key_envs(&self) -> String {
        match &self.key_envs {
            Some(patterns) => format!("{KEY_ENVS_ENV} allows {}", patterns.join(", ")),
            None => format!(
                "allowed by default: names ending in _API_KEY other than MANA_LLM_*, GPU_API_KEY and the built-in providers' keys; set {KEY_ENVS_ENV} to choose"
            ),
        }
    }

    /// Every rule a document breaks, as messages naming the provider.
    pub fn violations(&self, document: &RegistryDocument) -> Vec<String> {
        let mut errors = Vec::new();
        for (id, decl) in &document.providers {
            if BUILTIN_PROVIDERS.contains(&id.as_str()) {
                errors.push(format!(
                    "provider '{id}': the name of a built-in provider cannot be redeclared"
                ));
            }
            if let Err(e) = self.check_url(&decl.base_url) {
                errors.push(format!("provider '{id}': base_url {e}"));
            }
            if let Some(env) = &decl.api_key_env {
                if !self.allows_key_env(env) {
                    errors.push(format!(
                        "provider '{id}': api_key_env '{env}' is not an allowed key variable ({})",
                        self.describe_key_envs()
                    ));
                }
            }
        }
        errors
    }

    fn check_url(&self, raw: &str) -> Result<(), String> {
        let url = url::Url::parse(raw).map_err(|e| format!("is not a valid URL ({e})"))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err("must be an http(s) URL".to_owned());
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err("must not carry credentials (user:password@)".to_owned());
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err("must not have a query or a fragment".to_owned());
        }
        let host = url
            .host_str()
            .ok_or_else(|| "must name a host".to_owned())?
            .to_ascii_lowercase();
        if let Some(allowed) = &self.hosts {
            if !allowed.iter().any(|p| host_matches(p, &host)) {
                return Err(format!(
                    "points at host '{host}', which {HOSTS_ENV} does not allow"
                ));
            }
        }
        Ok(())
    }
}

/// A variable name, optionally with `*` wildcards: letters, digits, `_`.
fn is_pattern(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'*')
}

/// `*` matches any run of characters (including none); everything else literally.
fn glob(pattern: &str, name: &str) -> bool {
    let mut parts = pattern.split('*');
    let Some(first) = parts.next() else {
        return false;
    };
    let Some(mut rest) = name.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    let Some((last, middle)) = parts.split_last() else {
        // No `*` at all: the whole name must have been the prefix.
        return rest.is_empty();
    };
    for part in middle {
        match rest.find(part) {
            Some(i) => rest = &rest[i + part.len()..],
            None => return false,
        }
    }
    rest.ends_with(last)
}

/// `example.com` matches itself; `*.example.com` matches any subdomain (not the apex).
fn host_matches(pattern: &str, host: &str) -> bool {
    match pattern.strip_prefix("*.") {
        Some(suffix) => host
            .strip_suffix(suffix)
            .is_some_and(|sub| sub.len() > 1 && sub.ends_with('.')),
        None => pattern == host,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(pairs: &[(&str, &str)]) -> Result<RegistryPolicy, PolicyError> {
        let map: std::collections::HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        RegistryPolicy::from_settings(|k| map.get(k).cloned())
    }

    #[test]
    fn the_default_allows_other_api_keys_only() {
        let p = RegistryPolicy::default();
        assert!(p.allows_key_env("LMSTUDIO_API_KEY"));
        assert!(p.allows_key_env("AZURE_API_KEY"));
        for denied in [
            "HOME",
            "AWS_SECRET_ACCESS_KEY",
            "REDIS_URL",
            "MANA_LLM_ADMIN_TOKEN",
            "MANA_LLM_FLEET_KEY",
            "MANA_LLM_X_API_KEY",
            "OPENAI_API_KEY",
            "GROQ_API_KEY",
            "GOOGLE_API_KEY",
            "GPU_API_KEY",
            "_API_KEYX",
            "A*_API_KEY",
            "",
            "LM STUDIO_API_KEY",
        ] {
            assert!(!p.allows_key_env(denied), "{denied}");
        }
    }

    #[test]
    fn an_explicit_list_decides_but_never_lends_our_own() {
        let p = policy(&[(KEY_ENVS_ENV, "OPENAI_API_KEY, LOCAL_*")]).unwrap();
        assert!(p.allows_key_env("OPENAI_API_KEY"));
        assert!(p.allows_key_env("LOCAL_TOKEN"));
        assert!(p.allows_key_env("LOCAL_"));
        assert!(!p.allows_key_env("LMSTUDIO_API_KEY"));
        assert!(!p.allows_key_env("XLOCAL_TOKEN"));
        let p = policy(&[(KEY_ENVS_ENV, "*")]).unwrap();
        assert!(p.allows_key_env("HOME"));
        assert!(!p.allows_key_env("MANA_LLM_ADMIN_TOKEN"));
    }

    #[test]
    fn bad_settings_name_the_variable() {
        assert_eq!(
            policy(&[(KEY_ENVS_ENV, "A-B")]).unwrap_err().key,
            KEY_ENVS_ENV
        );
        assert_eq!(
            policy(&[(MAX_BYTES_ENV, "big")]).unwrap_err().key,
            MAX_BYTES_ENV
        );
        assert_eq!(
            policy(&[(MAX_BYTES_ENV, "10")]).unwrap_err().key,
            MAX_BYTES_ENV
        );
        assert_eq!(
            policy(&[(MAX_BYTES_ENV, "2048")]).unwrap().limits.max_bytes,
            2048
        );
        assert_eq!(
            policy(&[(KEY_ENVS_ENV, " , ")]).unwrap(),
            RegistryPolicy::default()
        );
    }

    #[test]
    fn globs() {
        assert!(glob("A*C", "ABC"));
        assert!(glob("A*C", "AC"));
        assert!(!glob("A*C", "ACB"));
        assert!(glob("*_KEY", "X_KEY"));
        assert!(glob("A*B*C", "AxxBxxC"));
        assert!(!glob("A*B*C", "AxxCxxB"));
        assert!(glob("EXACT", "EXACT"));
        assert!(!glob("EXACT", "EXACTLY"));
    }

    #[test]
    fn urls() {
        let p = RegistryPolicy::default();
        assert!(p.check_url("http://localhost:1234/v1").is_ok());
        assert!(p.check_url("https://api.example.com/v1").is_ok());
        for bad in [
            "ftp://example.com",
            "file:///etc/passwd",
            "https://user:pw@example.com/v1",
            "https://user@example.com/v1",
            "https://example.com/v1?x=1",
            "https://example.com/v1#f",
            "not a url",
            "http://",
        ] {
            assert!(p.check_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn hosts_allow_list() {
        let p = policy(&[(HOSTS_ENV, "llm.internal, *.Example.com")]).unwrap();
        assert!(p.check_url("http://llm.internal:8080/v1").is_ok());
        assert!(p.check_url("https://a.example.com/v1").is_ok());
        assert!(p.check_url("https://a.b.example.com/v1").is_ok());
        let e = p.check_url("https://example.com/v1").unwrap_err();
        assert!(e.contains("'example.com'"), "{e}");
        assert!(p.check_url("https://evilexample.com/v1").is_err());
        assert!(p.check_url("https://llm.internal.evil.com/v1").is_err());
    }

    #[test]
    fn a_glob_middle_part_is_consumed_once() {
        assert!(glob("A*B*C", "A1B2C"));
        assert!(glob("A*BB*C", "ABBC"));
        assert!(!glob("A*B*B", "AxB"), "two B's are needed");
        assert!(!glob("A*B*C", "A1C"));
    }

    #[test]
    fn a_wildcard_host_needs_a_real_subdomain() {
        assert!(host_matches("*.example.com", "api.example.com"));
        assert!(!host_matches("*.example.com", ".example.com"));
        assert!(!host_matches("*.example.com", "example.com"));
        assert!(!host_matches("*.example.com", "badexample.com"));
    }
}
