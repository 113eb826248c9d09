//! Which providers exist, which are configured, and how they are built from the environment.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use mana_llm_shared::registry::ProviderDecl;
use mana_llm_shared::ProviderId;
use mana_llm_shared::RegistryPolicy;

use super::http::Upstream;
use super::scrubbed::Scrubbed;
use super::{
    echo::Echo, google::Google, ollama::Ollama, openai::OpenAiCompatible, Provider, UpstreamError,
};
use crate::scrub::{redact_url, Scrubber};
use crate::settings::{ConfigError, Source};

/// A credential. Its `Debug` never shows the value, so it cannot leak through a log line.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// `None` for an absent or blank value: empty keys count as not set, as in the original.
    pub fn from_env(value: Option<String>) -> Option<Self> {
        value
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
            .map(Self)
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

/// An OpenAI-compatible provider: its id, where it lives, and the env var its key comes from.
#[derive(Clone)]
pub struct OpenAiCompatibleConfig {
    pub id: ProviderId,
    pub base_url: String,
    pub api_key: Option<Secret>,
    pub key_env: &'static str,
}

/// A base URL may carry a password (`https://user:pw@host`); `Debug` leaves it out.
impl fmt::Debug for OpenAiCompatibleConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpenAiCompatibleConfig")
            .field("id", &self.id)
            .field("base_url", &redact_url(&self.base_url))
            .field("api_key", &self.api_key)
            .field("key_env", &self.key_env)
            .finish()
    }
}

/// The built-in OpenAI-compatible providers: id, key env var, base URL env var, default URL.
const OPENAI_COMPATIBLE: [(&str, &str, &str, &str); 4] = [
    (
        "openai",
        "OPENAI_API_KEY",
        "OPENAI_BASE_URL",
        "https://api.openai.com/v1",
    ),
    (
        "openrouter",
        "OPENROUTER_API_KEY",
        "OPENROUTER_BASE_URL",
        "https://openrouter.ai/api/v1",
    ),
    (
        "groq",
        "GROQ_API_KEY",
        "GROQ_BASE_URL",
        "https://api.groq.com/openai/v1",
    ),
    (
        "together",
        "TOGETHER_API_KEY",
        "TOGETHER_BASE_URL",
        "https://api.together.xyz/v1",
    ),
];

#[derive(Clone)]
pub struct ProvidersConfig {
    pub ollama_url: String,
    pub ollama_timeout: Duration,
    pub upstream_timeout: Duration,
    pub stream_idle_timeout: Duration,
    pub connect_timeout: Duration,
    pub openai_compatible: Vec<OpenAiCompatibleConfig>,
    pub google_base_url: String,
    pub google_api_key: Option<Secret>,
    pub echo_delay: Duration,
    /// Every secret of the process, not only provider keys: an upstream may quote any
    /// credential it was sent, and each provider's errors are scrubbed of all of them.
    pub scrubber: Arc<Scrubber>,
}

/// URLs without their passwords; keys show as `Secret([redacted])`.
impl fmt::Debug for ProvidersConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProvidersConfig")
            .field("ollama_url", &redact_url(&self.ollama_url))
            .field("ollama_timeout", &self.ollama_timeout)
            .field("upstream_timeout", &self.upstream_timeout)
            .field("stream_idle_timeout", &self.stream_idle_timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("openai_compatible", &self.openai_compatible)
            .field("google_base_url", &redact_url(&self.google_base_url))
            .field("google_api_key", &self.google_api_key)
            .field("echo_delay", &self.echo_delay)
            .field("scrubber", &self.scrubber)
            .finish_non_exhaustive()
    }
}

impl ProvidersConfig {
    pub fn from_source(src: &Source) -> Result<Self, ConfigError> {
        let openai_compatible = OPENAI_COMPATIBLE
            .iter()
            .map(
                |(id, key_env, url_env, default_url)| OpenAiCompatibleConfig {
                    id: ProviderId::new(id),
                    base_url: src.string(url_env, default_url),
                    api_key: Secret::from_env(src.get(key_env)),
                    key_env,
                },
            )
            .collect();
        Ok(Self {
            ollama_url: src.string("OLLAMA_URL", "http://localhost:11434"),
            ollama_timeout: src.seconds("OLLAMA_TIMEOUT", 120.0)?,
            upstream_timeout: src.seconds("MANA_LLM_UPSTREAM_TIMEOUT", 120.0)?,
            stream_idle_timeout: src.seconds("MANA_LLM_STREAM_IDLE_TIMEOUT", 120.0)?,
            connect_timeout: src.seconds("MANA_LLM_CONNECT_TIMEOUT", 5.0)?,
            openai_compatible,
            google_base_url: src.string(
                "GOOGLE_BASE_URL",
                "https://generativelanguage.googleapis.com/v1beta",
            ),
            google_api_key: Secret::from_env(src.get("GOOGLE_API_KEY")),
            echo_delay: Duration::from_millis(src.number("MANA_LLM_ECHO_DELAY_MS", 0)?),
            scrubber: Arc::new(Scrubber::from_source(src)),
        })
    }
}

/// Why a provider id cannot be used.
#[derive(Debug)]
pub enum Lookup {
    Unknown,
    NotConfigured(UpstreamError),
}

/// Every provider this gateway knows, built once at start.
#[derive(Clone)]
pub struct Providers {
    configured: BTreeMap<ProviderId, Arc<dyn Provider>>,
    /// Known providers without credentials, with the env var that would enable them.
    unconfigured: BTreeMap<ProviderId, String>,
    /// What providers declared later (by a registry) are built with.
    http: Option<HttpDefaults>,
    /// What every provider's errors are scrubbed of (see [`Providers::insert`]).
    scrubber: Arc<Scrubber>,
}

#[derive(Clone)]
struct HttpDefaults {
    client: reqwest::Client,
    timeout: Duration,
    idle: Duration,
}

impl Providers {
    pub fn build(config: &ProvidersConfig) -> Result<Self, ConfigError> {
        let client = reqwest::Client::builder()
            .tcp_nodelay(true)
            .connect_timeout(config.connect_timeout)
            .pool_idle_timeout(Duration::from_secs(90))
            .build()
            .map_err(|e| ConfigError::new("http client", e.to_string()))?;
        let idle = config.stream_idle_timeout;
        let mut providers = Self::empty();
        providers.scrubber = config.scrubber.clone();
        providers.http = Some(HttpDefaults {
            client: client.clone(),
            timeout: config.upstream_timeout,
            idle,
        });
        providers.insert(Arc::new(Echo::new(config.echo_delay)));
        providers.insert(Arc::new(Ollama::new(Upstream::new(
            client.clone(),
            &config.ollama_url,
            config.ollama_timeout,
            idle,
        ))));
        for p in &config.openai_compatible {
            match &p.api_key {
                Some(key) => providers.insert(Arc::new(OpenAiCompatible::new(
                    p.id.clone(),
                    Upstream::new(client.clone(), &p.base_url, config.upstream_timeout, idle),
                    Some(key.clone()),
                ))),
                None => {
                    providers
                        .unconfigured
                        .insert(p.id.clone(), p.key_env.to_owned());
                }
            }
        }
        match &config.google_api_key {
            Some(key) => providers.insert(Arc::new(Google::new(
                Upstream::new(
                    client,
                    &config.google_base_url,
                    config.upstream_timeout,
                    idle,
                ),
                key.clone(),
            ))),
            None => {
                providers
                    .unconfigured
                    .insert(ProviderId::new("google"), "GOOGLE_API_KEY".to_owned());
            }
        }
        Ok(providers)
    }

    pub fn empty() -> Self {
        Self {
            configured: BTreeMap::new(),
            unconfigured: BTreeMap::new(),
            http: None,
            scrubber: Arc::default(),
        }
    }

    /// Adds `provider`, wrapped so that no error it reports carries a secret: this is the one
    /// place every provider passes through, whoever built it.
    pub fn insert(&mut self, provider: Arc<dyn Provider>) {
        self.insert_scrubbed(provider, self.scrubber.clone());
    }

    fn insert_scrubbed(&mut self, provider: Arc<dyn Provider>, scrubber: Arc<Scrubber>) {
        let provider: Arc<dyn Provider> = Arc::new(Scrubbed::new(provider, scrubber));
        self.unconfigured.remove(provider.id());
        self.configured.insert(provider.id().clone(), provider);
    }

    pub fn get(&self, id: &ProviderId) -> Result<&Arc<dyn Provider>, Lookup> {
        if let Some(p) = self.configured.get(id) {
            return Ok(p);
        }
        match self.unconfigured.get(id) {
            Some(env_var) => Err(Lookup::NotConfigured(UpstreamError::NotConfigured {
                provider: id.to_string(),
                env_var: env_var.clone(),
            })),
            None => Err(Lookup::Unknown),
        }
    }

    /// These providers plus the OpenAI-compatible ones a registry declares. Built-in ids are
    /// never replaced; a declared key comes from its env var, read from `src`.
    pub fn with_declared<'a>(
        &self,
        declared: impl IntoIterator<Item = &'a ProviderDecl>,
        src: &Source,
        policy: &RegistryPolicy,
    ) -> Self {
        let mut out = self.clone();
        let Some(http) = &self.http else {
            return out;
        };
        // Installed registries were validated under this policy already; checking again here
        // keeps the one line that reads a key variable from ever reading a forbidden one.
        for decl in declared {
            if self.configured.contains_key(&decl.id) || self.unconfigured.contains_key(&decl.id) {
                tracing::warn!(provider = %decl.id, "the registry declares a built-in provider; ignored");
                continue;
            }
            if let Some(env) = decl
                .api_key_env
                .as_deref()
                .filter(|e| !policy.allows_key_env(e))
            {
                tracing::error!(provider = %decl.id, env, "the registry names a key variable the policy does not allow; provider ignored");
                continue;
            }
            let key = decl
                .api_key_env
                .as_ref()
                .map(|env| (env, Secret::from_env(src.get(env))));
            if let Some((env, None)) = &key {
                out.unconfigured.insert(decl.id.clone(), (*env).clone());
                continue;
            }
            let upstream =
                Upstream::new(http.client.clone(), &decl.base_url, http.timeout, http.idle);
            let key = key.and_then(|(_, k)| k);
            // The declared variable may be named like no secret (`LMSTUDIO_KEY_VALUE`): its
            // value is scrubbed from this provider's errors all the same.
            let scrubber = match &key {
                Some(k) => Arc::new((*self.scrubber).clone().with(k.expose())),
                None => self.scrubber.clone(),
            };
            out.insert_scrubbed(
                Arc::new(OpenAiCompatible::new(decl.id.clone(), upstream, key)),
                scrubber,
            );
        }
        out
    }

    /// Configured providers in id order.
    pub fn configured(&self) -> impl Iterator<Item = &Arc<dyn Provider>> {
        self.configured.values()
    }

    /// Every known provider id, configured or not, sorted.
    /// Whether `id` is a provider this gateway knows, configured or not (no allocation: the
    /// metric labels ask on every request).
    pub fn is_known(&self, id: &ProviderId) -> bool {
        self.configured.contains_key(id) || self.unconfigured.contains_key(id)
    }

    pub fn known_ids(&self) -> Vec<&str> {
        let mut ids: Vec<&str> = self
            .configured
            .keys()
            .chain(self.unconfigured.keys())
            .map(ProviderId::as_str)
            .collect();
        ids.sort_unstable();
        ids
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn providers(env: &[(&str, &str)]) -> Providers {
        let map: HashMap<String, String> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Providers::build(&ProvidersConfig::from_source(&Source::from_map(map)).unwrap()).unwrap()
    }

    #[test]
    fn ollama_and_echo_are_always_configured() {
        let p = providers(&[]);
        assert!(p.get(&ProviderId::new("ollama")).is_ok());
        assert!(p.get(&ProviderId::new("echo")).is_ok());
        assert!(matches!(
            p.get(&ProviderId::new("nope")),
            Err(Lookup::Unknown)
        ));
    }

    #[test]
    fn a_provider_without_key_names_its_env_var() {
        let p = providers(&[("GROQ_API_KEY", "  ")]);
        match p.get(&ProviderId::new("groq")) {
            Err(Lookup::NotConfigured(e)) => assert!(e.to_string().contains("GROQ_API_KEY"), "{e}"),
            _ => panic!("groq should be unconfigured"),
        }
        let p = providers(&[("GROQ_API_KEY", "k")]);
        assert!(p.get(&ProviderId::new("groq")).is_ok());
    }

    /// Every provider built here reaches its callers wrapped: an upstream quoting the key it
    /// was sent (built-in or registry-declared, whatever its variable is called) is scrubbed.
    #[tokio::test]
    async fn providers_report_errors_without_their_keys() {
        use mana_llm_mock::{MockProvider, Reply, Route};
        let mock = MockProvider::start().await;
        let (builtin, declared) = ("sk-builtin-key-1", "declared-cred-2");
        let src = Source::from_map(HashMap::from([
            ("OPENAI_API_KEY".to_owned(), builtin.to_owned()),
            ("OPENAI_BASE_URL".to_owned(), mock.openai_base()),
            ("LMSTUDIO_API_KEY".to_owned(), declared.to_owned()),
        ]));
        let base = Providers::build(&ProvidersConfig::from_source(&src).unwrap()).unwrap();
        let yaml = format!(
            "aliases:\n  mana/a: {{chain: [lmstudio/m]}}\nproviders:\n  lmstudio: {{base_url: '{}', api_key_env: LMSTUDIO_API_KEY}}\n",
            mock.openai_base()
        );
        let registry =
            mana_llm_shared::Registry::parse(&yaml, "test", mana_llm_shared::RegistryVersion(1))
                .unwrap();
        let providers = base.with_declared(registry.providers(), &src, &RegistryPolicy::default());
        let request: crate::openai::ChatRequest = serde_json::from_value(
            serde_json::json!({"model": "m", "messages": [{"role": "user", "content": "x"}]}),
        )
        .unwrap();
        for (id, key) in [("openai", builtin), ("lmstudio", declared)] {
            mock.push(Route::OpenAiChat, Reply::status(401).echo_key());
            let provider = providers.get(&ProviderId::new(id)).ok().unwrap();
            let e = provider.chat(&request, "m").await.unwrap_err();
            let sent = mock.last_request(Route::OpenAiChat).unwrap();
            assert_eq!(sent.headers["authorization"], format!("Bearer {key}"));
            let text = e.to_string();
            assert!(!text.contains(key), "{id}: {text}");
            assert!(
                text.contains("Incorrect API key provided: [redacted]"),
                "{id}: {text}"
            );
        }
    }

    #[test]
    fn secrets_do_not_debug_print() {
        let s = Secret::from_env(Some("sk-very-secret".into())).unwrap();
        assert!(!format!("{s:?}").contains("very-secret"));
    }
}
