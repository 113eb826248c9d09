//! The background health probe: every `interval`, ask each configured provider whether it is
//! reachable (Ollama `/api/tags`, OpenAI-compatible `/models`, …), all at once, each bounded by
//! `timeout`, and feed the answers to the breakers.
//!
//! "Reachable" means the server answered: a 401 or 404 from `/models` still proves the host is
//! up, so only transport errors, timeouts and 5xx count as failures.

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::join_all;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::{Health, Report};
use crate::providers::{Provider, UpstreamError};

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProbeConfig {
    pub interval: Duration,
    pub timeout: Duration,
}

impl ProbeConfig {
    pub fn new(interval: Duration, timeout: Duration) -> Result<Self, String> {
        if interval.is_zero() {
            return Err("interval must be > 0".to_owned());
        }
        if timeout.is_zero() {
            return Err("timeout must be > 0".to_owned());
        }
        Ok(Self { interval, timeout })
    }
}

impl Default for ProbeConfig {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(30),
            timeout: Duration::from_secs(3),
        }
    }
}

/// Probes every provider once, concurrently; one failing probe never affects another.
pub async fn tick_once(health: &Health, providers: &[Arc<dyn Provider>], timeout: Duration) {
    let probes = providers.iter().map(|provider| async move {
        let result = match tokio::time::timeout(timeout, provider.probe()).await {
            Err(_) => Err(format!("probe-timeout (>{}s)", timeout.as_secs_f64())),
            Ok(Ok(())) => Ok(()),
            Ok(Err(UpstreamError::Status { status, .. })) if status < 500 => Ok(()),
            Ok(Err(e)) => Err(format!("probe-failed: {e}")),
        };
        health
            .report(
                provider.id(),
                Report::Probe(result.as_ref().map(|_| ()).map_err(String::as_str)),
            )
            .await;
    });
    join_all(probes).await;
}

/// Runs a tick at once, then one every `interval` after the previous one ended, until
/// `cancel` fires.
///
/// `providers` is asked before every tick, so providers added by a registry reload get probed.
pub fn spawn<P>(
    health: Arc<Health>,
    providers: P,
    config: ProbeConfig,
    cancel: CancellationToken,
) -> JoinHandle<()>
where
    P: Fn() -> Vec<Arc<dyn Provider>> + Send + 'static,
{
    tokio::spawn(async move {
        loop {
            // With shared health one worker probes for the fleet each tick.
            if health.try_lead("probe", config.interval).await {
                tick_once(&health, &providers(), config.timeout).await;
            }
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tokio::time::sleep(config.interval) => {}
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::testing::ManualClock;
    use crate::health::{BreakerConfig, MemoryStore, Status};
    use crate::openai::{ChatCompletion, ChatRequest, Embeddings, EmbeddingsRequest, ModelInfo};
    use crate::providers::ChunkStream;
    use async_trait::async_trait;
    use mana_llm_shared::ProviderId;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Mutex;

    /// A provider whose probe answers are scripted.
    struct Scripted {
        id: ProviderId,
        answer: Mutex<Result<(), UpstreamError>>,
        delay: Duration,
        calls: AtomicUsize,
    }

    fn scripted(id: &str, answer: Result<(), UpstreamError>, delay: Duration) -> Arc<Scripted> {
        Arc::new(Scripted {
            id: ProviderId::new(id),
            answer: Mutex::new(answer),
            delay,
            calls: AtomicUsize::new(0),
        })
    }

    #[async_trait]
    impl Provider for Scripted {
        fn id(&self) -> &ProviderId {
            &self.id
        }
        async fn chat(&self, _: &ChatRequest, _: &str) -> Result<ChatCompletion, UpstreamError> {
            unreachable!()
        }
        async fn chat_stream(
            &self,
            _: &ChatRequest,
            _: &str,
        ) -> Result<ChunkStream, UpstreamError> {
            unreachable!()
        }
        async fn embeddings(
            &self,
            _: &EmbeddingsRequest,
            _: &str,
        ) -> Result<Embeddings, UpstreamError> {
            unreachable!()
        }
        async fn list_models(&self) -> Result<Vec<ModelInfo>, UpstreamError> {
            unreachable!()
        }
        async fn probe(&self) -> Result<(), UpstreamError> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(self.delay).await;
            self.answer.lock().unwrap().clone()
        }
    }

    fn health() -> (Arc<Health>, Arc<ManualClock>) {
        let clock = Arc::new(ManualClock::at(1000.0));
        (
            Arc::new(Health::new(
                Arc::new(MemoryStore::new(BreakerConfig::default())),
                clock.clone(),
            )),
            clock,
        )
    }

    fn status(h: &Health, id: &str) -> Status {
        let id = ProviderId::new(id);
        h.status(&h.snapshot([&id])[&id])
    }

    #[test]
    fn construction_limits() {
        assert!(ProbeConfig::new(Duration::ZERO, Duration::from_secs(1))
            .unwrap_err()
            .contains("interval"));
        assert!(ProbeConfig::new(Duration::from_secs(1), Duration::ZERO)
            .unwrap_err()
            .contains("timeout"));
    }

    #[tokio::test(start_paused = true)]
    async fn failing_probes_mark_down_and_a_401_counts_as_reachable() {
        let (h, _) = health();
        let down = scripted(
            "ollama",
            Err(UpstreamError::Connect("refused".into())),
            Duration::ZERO,
        );
        let auth = scripted(
            "groq",
            Err(UpstreamError::Status {
                status: 401,
                message: "no".into(),
                retry_after: None,
            }),
            Duration::ZERO,
        );
        let providers: Vec<Arc<dyn Provider>> = vec![down.clone(), auth.clone()];
        tick_once(&h, &providers, Duration::from_secs(3)).await;
        tick_once(&h, &providers, Duration::from_secs(3)).await;
        assert_eq!(status(&h, "ollama"), Status::Open);
        assert_eq!(status(&h, "groq"), Status::Healthy);
        let snap = h.snapshot([]);
        assert!(snap[&ProviderId::new("ollama")]
            .last_error
            .as_deref()
            .unwrap()
            .contains("refused"));
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_probe_times_out_without_holding_up_the_others() {
        let (h, _) = health();
        let slow = scripted("slow", Ok(()), Duration::from_secs(10));
        let fast = scripted(
            "fast",
            Err(UpstreamError::Connect("x".into())),
            Duration::ZERO,
        );
        let providers: Vec<Arc<dyn Provider>> = vec![slow, fast];
        let started = tokio::time::Instant::now();
        tick_once(&h, &providers, Duration::from_secs(3)).await;
        assert_eq!(
            started.elapsed(),
            Duration::from_secs(3),
            "probes run concurrently, bounded by the timeout"
        );
        let snap = h.snapshot([]);
        assert!(snap[&ProviderId::new("slow")]
            .last_error
            .as_deref()
            .unwrap()
            .contains("probe-timeout"));
        assert_eq!(snap[&ProviderId::new("fast")].consecutive_failures, 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_probe_success_does_not_close_a_breaker_real_calls_opened() {
        let (h, _) = health();
        let p = ProviderId::new("ollama");
        h.report(&p, crate::health::Report::Failure("chat 500"))
            .await;
        h.report(&p, crate::health::Report::Failure("chat 500"))
            .await;
        let ok = scripted("ollama", Ok(()), Duration::ZERO);
        tick_once(&h, &[ok as Arc<dyn Provider>], Duration::from_secs(3)).await;
        assert_eq!(status(&h, "ollama"), Status::Open);
    }

    #[tokio::test(start_paused = true)]
    async fn the_loop_ticks_at_once_then_every_interval_until_cancelled() {
        let (h, _) = health();
        let p = scripted("ollama", Ok(()), Duration::ZERO);
        let cancel = CancellationToken::new();
        let config = ProbeConfig::new(Duration::from_secs(30), Duration::from_secs(3)).unwrap();
        let probed = p.clone();
        let task = spawn(
            h,
            move || vec![probed.clone() as Arc<dyn Provider>],
            config,
            cancel.clone(),
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
        assert_eq!(
            p.calls.load(Ordering::SeqCst),
            1,
            "first tick runs immediately"
        );
        tokio::time::sleep(Duration::from_secs(61)).await;
        assert_eq!(p.calls.load(Ordering::SeqCst), 3);
        cancel.cancel();
        task.await.unwrap();
        tokio::time::sleep(Duration::from_secs(60)).await;
        assert_eq!(p.calls.load(Ordering::SeqCst), 3, "no ticks after cancel");
    }
}
