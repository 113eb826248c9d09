//! Gateway configuration, read once at start from one [`Source`] and validated there.
//!
//! Every setting is an environment variable (names kept from the original service where it had
//! one). Tests hand in a map instead of mutating the process environment.

use std::fmt;
use std::time::Duration;

use mana_llm_shared::fleet_key::{FleetKey, FLEET_KEY_ENV};
use mana_llm_shared::redis_client::REDIS_CA_FILE_ENV;
use mana_llm_shared::RegistryPolicy;

use crate::cache::CacheConfig;
use crate::health::probe::ProbeConfig;
use crate::health::BreakerConfig;
use crate::providers::{ProvidersConfig, Secret};

pub use crate::settings::{ConfigError, Source};

/// The original service's default CORS origins.
const DEFAULT_CORS_ORIGINS: &str =
    "http://localhost:5173,http://localhost:5190,https://mana.how,https://playground.mana.how";

/// Client authentication: off unless a key is configured.
#[derive(Debug, Clone, Default)]
pub struct AuthConfig {
    pub keys: Vec<Secret>,
}

impl AuthConfig {
    /// `GPU_API_KEY` (the original's single key) plus `MANA_LLM_API_KEYS` (comma-separated);
    /// `GPU_REQUIRE_AUTH=false` turns checking off even with keys set, as in the original.
    fn from_source(src: &Source) -> Result<Self, ConfigError> {
        let mut keys: Vec<Secret> = Secret::from_env(src.get("GPU_API_KEY"))
            .into_iter()
            .collect();
        keys.extend(
            src.list("MANA_LLM_API_KEYS", "")
                .into_iter()
                .filter_map(|k| Secret::from_env(Some(k))),
        );
        let required = src.flag("GPU_REQUIRE_AUTH", !keys.is_empty())?;
        if !required {
            keys.clear();
        } else if keys.is_empty() {
            return Err(ConfigError::new(
                "GPU_REQUIRE_AUTH",
                "auth is required but neither GPU_API_KEY nor MANA_LLM_API_KEYS is set",
            ));
        }
        Ok(Self { keys })
    }

    pub fn enabled(&self) -> bool {
        !self.keys.is_empty()
    }
}

/// Everything the data plane needs to serve.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    pub providers: ProvidersConfig,
    pub auth: AuthConfig,
    pub cors_origins: Vec<String>,
    /// Largest accepted request body, in bytes (base64 images make bodies big).
    pub body_limit: usize,
    /// Silence after which a stream gets a `: keep-alive` comment.
    pub keep_alive: Duration,
    /// Bounds a whole chain walk (until an answer, or a stream's first chunk).
    pub request_timeout: Duration,
    /// Default deadline for each chain entry's first output; entries may set their own.
    pub first_token_timeout: Option<Duration>,
    pub breaker: BreakerConfig,
    /// `None` turns the background probe off.
    pub probe: Option<ProbeConfig>,
    /// Set: provider health and cached answers are shared with the fleet through Redis.
    pub redis: Option<RedisConfig>,
    /// This worker's name in metrics, logs and Redis locks.
    pub worker_id: String,
    /// How often a worker compares its registry version with the published one.
    pub sync_interval: Duration,
    /// How often this worker reports itself to the fleet view (expiry: three times this).
    pub heartbeat_interval: Duration,
    pub cache: CacheConfig,
    /// Signs and verifies what the fleet shares through Redis (registry versions, cache
    /// entries). `None`: shared state is validated but its origin cannot be checked.
    pub fleet_key: Option<FleetKey>,
    /// What a registry may declare (key variables, hosts, size); every version is checked
    /// against it before it is installed.
    pub registry_policy: RegistryPolicy,
    /// Connection bounds: count, header and idle timeouts, HTTP/2 streams and buffers.
    pub connections: crate::conn::ConnLimits,
    /// Bytes of request bodies in flight at once (`MANA_LLM_BODY_BUDGET_MB`); past it, 503.
    pub body_budget: usize,
}

#[derive(Clone)]
pub struct RedisConfig {
    /// May carry a user and password (`redis://user:pass@…`): never log it.
    pub url: String,
    pub prefix: String,
    /// Bound on one Redis call on the request path.
    pub timeout: Duration,
    /// PEM file of a private CA to trust for `rediss://` instead of the public roots.
    pub ca_file: Option<std::path::PathBuf>,
}

/// The URL without its password.
impl fmt::Debug for RedisConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisConfig")
            .field("url", &crate::scrub::redact_url(&self.url))
            .field("prefix", &self.prefix)
            .field("timeout", &self.timeout)
            .field("ca_file", &self.ca_file)
            .finish()
    }
}

impl GatewayConfig {
    pub fn from_source(src: &Source) -> Result<Self, ConfigError> {
        let body_limit_mb: usize = src.number("MANA_LLM_BODY_LIMIT_MB", 32)?;
        if body_limit_mb == 0 {
            return Err(ConfigError::new(
                "MANA_LLM_BODY_LIMIT_MB",
                "must be at least 1",
            ));
        }
        Ok(Self {
            providers: ProvidersConfig::from_source(src)?,
            auth: AuthConfig::from_source(src)?,
            cors_origins: src.list("CORS_ORIGINS", DEFAULT_CORS_ORIGINS),
            body_limit: body_limit_mb * 1024 * 1024,
            keep_alive: src.seconds("MANA_LLM_SSE_KEEPALIVE", 15.0)?,
            request_timeout: src.seconds("MANA_LLM_REQUEST_TIMEOUT", 300.0)?,
            first_token_timeout: match src
                .get("MANA_LLM_FIRST_TOKEN_TIMEOUT")
                .filter(|v| !v.trim().is_empty())
            {
                None => None,
                Some(_) => Some(src.seconds("MANA_LLM_FIRST_TOKEN_TIMEOUT", 0.0)?),
            },
            breaker: BreakerConfig::new(
                src.number("MANA_LLM_BREAKER_FAILURES", 2)?,
                src.seconds("MANA_LLM_BREAKER_OPEN_SECONDS", 60.0)?,
                src.seconds("MANA_LLM_RATE_LIMIT_OPEN_SECONDS", 15.0)?,
            )
            .map_err(|e| ConfigError::new("MANA_LLM_BREAKER_FAILURES", e))?,
            redis: match src
                .get("REDIS_URL")
                .map(|u| u.trim().to_owned())
                .filter(|u| !u.is_empty())
            {
                None => None,
                Some(url) => Some(RedisConfig {
                    url,
                    prefix: src.string(
                        "MANA_LLM_REDIS_PREFIX",
                        mana_llm_shared::bus::DEFAULT_PREFIX,
                    ),
                    timeout: Duration::from_millis(src.number("MANA_LLM_REDIS_TIMEOUT_MS", 50)?),
                    ca_file: src
                        .get(REDIS_CA_FILE_ENV)
                        .filter(|p| !p.trim().is_empty())
                        .map(std::path::PathBuf::from),
                }),
            },
            worker_id: src
                .get("MANA_LLM_WORKER_ID")
                .map(|w| w.trim().to_owned())
                .filter(|w| !w.is_empty())
                .unwrap_or_else(|| uuid::Uuid::new_v4().to_string()),
            sync_interval: src.seconds("MANA_LLM_SYNC_INTERVAL", 5.0)?,
            heartbeat_interval: src.seconds("MANA_LLM_HEARTBEAT_INTERVAL", 5.0)?,
            cache: CacheConfig::from_source(src)?,
            fleet_key: FleetKey::from_setting(src.get(FLEET_KEY_ENV).as_deref())
                .map_err(|e| ConfigError::new(FLEET_KEY_ENV, e.to_string()))?,
            registry_policy: RegistryPolicy::from_settings(|k| src.get(k))
                .map_err(|e| ConfigError::new(e.key, e.message))?,
            connections: crate::conn::ConnLimits::from_source(src)?,
            body_budget: match src.number("MANA_LLM_BODY_BUDGET_MB", 0usize)? {
                0 => crate::budget::default_budget(body_limit_mb * 1024 * 1024),
                mb => mb.saturating_mul(1024 * 1024),
            },
            probe: if src.flag("MANA_LLM_PROBE", true)? {
                Some(
                    ProbeConfig::new(
                        src.seconds("MANA_LLM_PROBE_INTERVAL", 30.0)?,
                        src.seconds("MANA_LLM_PROBE_TIMEOUT", 3.0)?,
                    )
                    .map_err(|e| ConfigError::new("MANA_LLM_PROBE_INTERVAL", e))?,
                )
            } else {
                None
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn src(pairs: &[(&str, &str)]) -> Source {
        Source::from_map(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    #[test]
    fn defaults() {
        let c = GatewayConfig::from_source(&src(&[])).unwrap();
        assert!(!c.auth.enabled());
        assert_eq!(c.body_limit, 32 * 1024 * 1024);
        assert_eq!(c.cors_origins.len(), 4);
        assert_eq!(c.providers.ollama_url, "http://localhost:11434");
        assert_eq!(c.providers.ollama_timeout, Duration::from_secs(120));
    }

    #[test]
    fn bad_values_name_the_key() {
        let e = GatewayConfig::from_source(&src(&[("OLLAMA_TIMEOUT", "soon")])).unwrap_err();
        assert_eq!(e.key, "OLLAMA_TIMEOUT");
        let e = GatewayConfig::from_source(&src(&[("MANA_LLM_SSE_KEEPALIVE", "-1")])).unwrap_err();
        assert_eq!(e.key, "MANA_LLM_SSE_KEEPALIVE");
    }

    #[test]
    fn auth_keys_from_both_forms() {
        let c = GatewayConfig::from_source(&src(&[
            ("GPU_API_KEY", "a"),
            ("MANA_LLM_API_KEYS", "b, c,"),
        ]))
        .unwrap();
        assert_eq!(c.auth.keys.len(), 3);
        let c = GatewayConfig::from_source(&src(&[
            ("GPU_API_KEY", "a"),
            ("GPU_REQUIRE_AUTH", "false"),
        ]))
        .unwrap();
        assert!(!c.auth.enabled());
        assert!(GatewayConfig::from_source(&src(&[("GPU_REQUIRE_AUTH", "true")])).is_err());
    }

    #[test]
    fn debug_prints_no_secret() {
        let secrets = [
            "sk-openai-secret",
            "gpu-client-secret",
            "list-secret-b",
            "admin-token-secret",
            "fleet-key-secret-0123456789",
            "redis-pass-secret",
            "ollama-pass-secret",
            "groq-base-secret",
        ];
        let source = src(&[
            ("OPENAI_API_KEY", secrets[0]),
            ("GPU_API_KEY", secrets[1]),
            ("MANA_LLM_API_KEYS", "list-a, list-secret-b"),
            ("MANA_LLM_ADMIN_TOKEN", secrets[3]),
            ("MANA_LLM_FLEET_KEY", secrets[4]),
            (
                "REDIS_URL",
                "redis://default:redis-pass-secret@127.0.0.1:6379",
            ),
            ("OLLAMA_URL", "http://u:ollama-pass-secret@gpu:11434"),
            (
                "GROQ_BASE_URL",
                "https://me:groq-base-secret@api.groq.com/openai/v1",
            ),
            ("GOOGLE_API_KEY", "AIza-google-secret"),
        ]);
        let config = GatewayConfig::from_source(&source).unwrap();
        let printed = format!("{source:?} {config:?} {:#?}", config.redis);
        for secret in secrets.iter().chain(&["AIza-google-secret"]) {
            assert!(!printed.contains(secret), "{secret} printed: {printed}");
        }
        assert!(
            printed.contains("127.0.0.1:6379"),
            "the rest is still shown"
        );
        assert!(printed.contains("OPENAI_API_KEY"), "names are still shown");
    }

    /// Every timeout and threshold variable lands in its field: a misspelt key would
    /// otherwise fall back to its default without a word.
    #[test]
    fn every_timeout_and_threshold_variable_is_read() {
        let c = GatewayConfig::from_source(&src(&[
            ("MANA_LLM_REQUEST_TIMEOUT", "41"),
            ("MANA_LLM_FIRST_TOKEN_TIMEOUT", "0.25"),
            ("MANA_LLM_SSE_KEEPALIVE", "7"),
            ("MANA_LLM_BODY_LIMIT_MB", "3"),
            ("MANA_LLM_BREAKER_FAILURES", "5"),
            ("MANA_LLM_BREAKER_OPEN_SECONDS", "33"),
            ("MANA_LLM_RATE_LIMIT_OPEN_SECONDS", "9"),
            ("MANA_LLM_SYNC_INTERVAL", "1.5"),
            ("MANA_LLM_PROBE_INTERVAL", "12"),
            ("MANA_LLM_PROBE_TIMEOUT", "2"),
            ("MANA_LLM_UPSTREAM_TIMEOUT", "61"),
            ("MANA_LLM_STREAM_IDLE_TIMEOUT", "62"),
            ("MANA_LLM_CONNECT_TIMEOUT", "4"),
            ("OLLAMA_TIMEOUT", "63"),
            ("MANA_LLM_ECHO_DELAY_MS", "250"),
            ("REDIS_URL", "redis://127.0.0.1:1"),
            ("MANA_LLM_REDIS_TIMEOUT_MS", "75"),
            ("MANA_LLM_REDIS_PREFIX", "fleet-x"),
            ("MANA_LLM_WORKER_ID", " w-7 "),
        ]))
        .unwrap();
        let s = Duration::from_secs_f64;
        assert_eq!(c.request_timeout, s(41.0));
        assert_eq!(c.first_token_timeout, Some(s(0.25)));
        assert_eq!(c.keep_alive, s(7.0));
        assert_eq!(c.body_limit, 3 * 1024 * 1024);
        assert_eq!(c.breaker.failure_threshold, 5);
        assert_eq!(c.breaker.open_for, s(33.0));
        assert_eq!(c.breaker.rate_limited_for, s(9.0));
        assert_eq!(c.sync_interval, s(1.5));
        let probe = c.probe.unwrap();
        assert_eq!((probe.interval, probe.timeout), (s(12.0), s(2.0)));
        assert_eq!(c.providers.upstream_timeout, s(61.0));
        assert_eq!(c.providers.stream_idle_timeout, s(62.0));
        assert_eq!(c.providers.connect_timeout, s(4.0));
        assert_eq!(c.providers.ollama_timeout, s(63.0));
        assert_eq!(c.providers.echo_delay, Duration::from_millis(250));
        let redis = c.redis.unwrap();
        assert_eq!(redis.timeout, Duration::from_millis(75));
        assert_eq!(redis.prefix, "fleet-x");
        assert_eq!(c.worker_id, "w-7");
        // Unset: the documented defaults, and no first-token deadline at all.
        let d = GatewayConfig::from_source(&src(&[("MANA_LLM_FIRST_TOKEN_TIMEOUT", " ")])).unwrap();
        assert_eq!(d.first_token_timeout, None);
        assert_eq!(d.request_timeout, s(300.0));
        assert_eq!(d.sync_interval, s(5.0));
        assert!(d.redis.is_none());
        assert_eq!(d.worker_id.len(), 36, "a generated id");
        let off = GatewayConfig::from_source(&src(&[("MANA_LLM_PROBE", "off")])).unwrap();
        assert!(off.probe.is_none());
    }

    #[test]
    fn thresholds_that_make_no_sense_are_refused_by_name() {
        for (key, value) in [
            ("MANA_LLM_BODY_LIMIT_MB", "0"),
            ("MANA_LLM_PROBE_INTERVAL", "0"),
            ("MANA_LLM_REQUEST_TIMEOUT", "soon"),
            ("MANA_LLM_REDIS_TIMEOUT_MS", "-1"),
        ] {
            let e = GatewayConfig::from_source(&src(&[(key, value), ("REDIS_URL", "redis://h")]))
                .unwrap_err();
            assert_eq!(e.key, key, "{value}");
        }
    }
}
