//! What the control plane tells the workers, and where in Redis it goes.
//!
//! The control plane writes the latest version document to the `current` key and publishes a
//! small [`VersionAnnouncement`] on the `versions` channel. Workers subscribe, and also compare
//! the `current` key with their own version on (re)connect and on a slow timer, so a missed
//! message is caught up by version number.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::fleet_key::FleetKey;
use crate::registry::{ContentHash, Registry, RegistryDocument, RegistryVersion};

/// Announced on the versions channel after a version commits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionAnnouncement {
    pub version: RegistryVersion,
    pub hash: ContentHash,
}

/// The value of the `current` key: a whole version, enough to serve it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublishedVersion {
    pub version: RegistryVersion,
    pub hash: ContentHash,
    pub document: RegistryDocument,
    /// The fleet key's HMAC over version, hash and canonical document (see [`FleetKey`]);
    /// absent when the control plane has no fleet key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
}

/// What a registry signature is computed over, so it can never be mistaken for another MAC.
const REGISTRY_DOMAIN: &str = "mana-llm registry v1";

/// Why a worker did not take a published version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureCheck {
    Valid,
    Missing,
    Wrong,
}

impl PublishedVersion {
    /// An unsigned version of `document`.
    pub fn new(version: RegistryVersion, hash: ContentHash, document: RegistryDocument) -> Self {
        Self {
            version,
            hash,
            document,
            signature: None,
        }
    }

    /// An unsigned version of `registry`: its number, hash and document.
    pub fn of(registry: &Registry) -> Self {
        Self::new(
            registry.version(),
            registry.hash().to_owned().into(),
            registry.document().clone(),
        )
    }

    fn signed_parts(&self) -> (String, Vec<u8>) {
        let canonical = serde_json::to_vec(&self.document).unwrap_or_default();
        (self.version.to_string(), canonical)
    }

    /// This version signed with `key`.
    pub fn signed(mut self, key: &FleetKey) -> Self {
        let (version, canonical) = self.signed_parts();
        self.signature = Some(key.sign(
            REGISTRY_DOMAIN,
            &[
                version.as_bytes(),
                self.hash.as_str().as_bytes(),
                &canonical,
            ],
        ));
        self
    }

    /// Whether this version carries `key`'s signature over exactly its content.
    pub fn check_signature(&self, key: &FleetKey) -> SignatureCheck {
        let Some(signature) = &self.signature else {
            return SignatureCheck::Missing;
        };
        let (version, canonical) = self.signed_parts();
        if key.verify(
            REGISTRY_DOMAIN,
            &[
                version.as_bytes(),
                self.hash.as_str().as_bytes(),
                &canonical,
            ],
            signature,
        ) {
            SignatureCheck::Valid
        } else {
            SignatureCheck::Wrong
        }
    }

    pub fn announcement(&self) -> VersionAnnouncement {
        VersionAnnouncement {
            version: self.version,
            hash: self.hash.clone(),
        }
    }
}

/// What a staged rollout asks of the fleet: workers whose cohort point falls below
/// `threshold` (see [`crate::rollout`]) serve `candidate`; the others, and every worker once
/// the assignment is gone, serve the stable version in the `current` key. Only taken while
/// `stable_version` is the stable version the worker holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CanaryAssignment {
    pub stable_version: RegistryVersion,
    pub threshold: u64,
    /// Signed like any published version.
    pub candidate: PublishedVersion,
    /// The fleet key's HMAC over stable version, threshold, candidate version and hash.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
}

/// What a canary assignment's signature is computed over.
const CANARY_DOMAIN: &str = "mana-llm canary v1";

impl CanaryAssignment {
    pub fn new(
        stable_version: RegistryVersion,
        threshold: u64,
        candidate: PublishedVersion,
    ) -> Self {
        Self {
            stable_version,
            threshold,
            candidate,
            signature: None,
        }
    }

    fn signed_parts(&self) -> [String; 3] {
        [
            self.stable_version.to_string(),
            self.threshold.to_string(),
            self.candidate.version.to_string(),
        ]
    }

    /// This assignment and its candidate signed with `key`.
    pub fn signed(mut self, key: &FleetKey) -> Self {
        self.candidate = self.candidate.signed(key);
        let [stable, threshold, version] = self.signed_parts();
        self.signature = Some(key.sign(
            CANARY_DOMAIN,
            &[
                stable.as_bytes(),
                threshold.as_bytes(),
                version.as_bytes(),
                self.candidate.hash.as_str().as_bytes(),
            ],
        ));
        self
    }

    /// Whether the assignment and its candidate both carry `key`'s signature.
    pub fn check_signature(&self, key: &FleetKey) -> SignatureCheck {
        let Some(signature) = &self.signature else {
            return SignatureCheck::Missing;
        };
        let [stable, threshold, version] = self.signed_parts();
        let own = key.verify(
            CANARY_DOMAIN,
            &[
                stable.as_bytes(),
                threshold.as_bytes(),
                version.as_bytes(),
                self.candidate.hash.as_str().as_bytes(),
            ],
            signature,
        );
        match (own, self.candidate.check_signature(key)) {
            (true, SignatureCheck::Valid) => SignatureCheck::Valid,
            (_, SignatureCheck::Missing) => SignatureCheck::Missing,
            _ => SignatureCheck::Wrong,
        }
    }

    /// Whether the worker with fleet id `worker_id` serves the candidate.
    pub fn includes(&self, worker_id: &str) -> bool {
        crate::rollout::in_candidate_cohort(self.candidate.version.0, self.threshold, worker_id)
    }
}

/// Announced on the versions channel when a canary assignment is written or removed
/// (`candidate` 0: none), so workers re-read both keys at once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CanaryAnnouncement {
    pub canary: u64,
}

/// Redis key and channel names, under a prefix so several deployments can share one Redis.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BusNames {
    prefix: String,
}

/// The prefix when none is configured.
pub const DEFAULT_PREFIX: &str = "mana-llm";

impl BusNames {
    pub fn new(prefix: &str) -> Self {
        let prefix = prefix.trim().trim_end_matches(':');
        Self {
            prefix: if prefix.is_empty() {
                DEFAULT_PREFIX
            } else {
                prefix
            }
            .to_owned(),
        }
    }

    /// The key holding the latest [`PublishedVersion`] as JSON.
    pub fn current_key(&self) -> String {
        format!("{}:registry:current", self.prefix)
    }

    /// The key holding the running rollout's [`CanaryAssignment`] as JSON (absent: none).
    pub fn canary_key(&self) -> String {
        format!("{}:registry:canary", self.prefix)
    }

    /// The channel carrying [`VersionAnnouncement`]s as JSON.
    pub fn versions_channel(&self) -> String {
        format!("{}:registry:versions", self.prefix)
    }

    /// The hash holding one provider's shared circuit breaker.
    pub fn breaker_key(&self, provider: &str) -> String {
        format!("{}:breaker:{provider}", self.prefix)
    }

    /// The set of providers that have a shared breaker (for a full re-sync).
    pub fn breakers_index(&self) -> String {
        format!("{}:breakers", self.prefix)
    }

    /// The channel announcing breaker changes, so every worker's mirror follows in milliseconds.
    pub fn breaker_channel(&self) -> String {
        format!("{}:breaker:events", self.prefix)
    }

    /// The lock a worker holds while it runs a provider's half-open trial.
    pub fn trial_lock(&self, provider: &str) -> String {
        format!("{}:breaker:{provider}:trial", self.prefix)
    }

    /// The lock the worker that runs the current probe tick holds.
    pub fn probe_lock(&self) -> String {
        format!("{}:probe:lock", self.prefix)
    }

    /// One worker's heartbeat (expires on its own).
    pub fn worker_key(&self, worker_id: &str) -> String {
        format!("{}:fleet:worker:{worker_id}", self.prefix)
    }

    /// The pattern matching every worker's heartbeat key.
    pub fn worker_pattern(&self) -> String {
        format!("{}:fleet:worker:*", self.prefix)
    }

    /// A cached response, by the hash of its canonical request and resolved chain. v2: the
    /// value is a MAC'd envelope and the hash covers the tenant; v1 entries simply miss.
    pub fn cache_key(&self, hash: &str) -> String {
        format!("{}:cache:v2:{hash}", self.prefix)
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }
}

impl Default for BusNames {
    fn default() -> Self {
        Self::new(DEFAULT_PREFIX)
    }
}

/// Why a version could not be published (the outbox retries it later).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("publishing failed: {0}")]
pub struct BusError(pub String);

/// What [`Publish::reconcile`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reconciled {
    /// The bus already held exactly the control plane's current version.
    InSync,
    /// It held something else (nothing, an older version, a version the control plane never
    /// wrote, another document or signature): the current version was written over it.
    Repaired,
}

/// Where the control plane publishes committed versions.
#[async_trait]
pub trait Publish: Send + Sync {
    /// Publishes `version`; `head` is the event log's current version, the newest any
    /// legitimate publish can have made (a bus holding a newer one holds a forgery).
    async fn publish(&self, version: &PublishedVersion, head: u64) -> Result<(), BusError>;

    /// Makes the bus hold exactly `head`, the control plane's current version, whatever it
    /// holds now: the control plane is the source of truth, and a bus that lost its state
    /// (a restarted Redis) or holds state it did not write (a planted version) is repaired.
    async fn reconcile(&self, head: &PublishedVersion) -> Result<Reconciled, BusError> {
        self.publish(head, head.version.0)
            .await
            .map(|()| Reconciled::InSync)
    }

    /// Makes the bus hold exactly `canary`: the running rollout's assignment, or none. Called
    /// after every reconcile (so after the promoted version is `current`, never before).
    /// Returns whether it had to write (the bus held something else).
    async fn assign_canary(&self, canary: Option<&CanaryAssignment>) -> Result<bool, BusError>;
}

/// The in-process bus of the embedded default: the latest version in a watch channel.
#[derive(Debug, Clone)]
pub struct LocalBus {
    tx: watch::Sender<Option<PublishedVersion>>,
    canary: watch::Sender<Option<CanaryAssignment>>,
}

impl Default for LocalBus {
    fn default() -> Self {
        Self {
            tx: watch::channel(None).0,
            canary: watch::channel(None).0,
        }
    }
}

impl LocalBus {
    pub fn subscribe(&self) -> watch::Receiver<Option<PublishedVersion>> {
        self.tx.subscribe()
    }

    /// The running rollout's assignment, as the in-process worker follows it.
    pub fn subscribe_canary(&self) -> watch::Receiver<Option<CanaryAssignment>> {
        self.canary.subscribe()
    }
}

#[async_trait]
impl Publish for LocalBus {
    async fn publish(&self, version: &PublishedVersion, _head: u64) -> Result<(), BusError> {
        // Versions only move forward, as on the Redis bus.
        self.tx.send_if_modified(|current| {
            if current
                .as_ref()
                .is_some_and(|c| c.version >= version.version)
            {
                return false;
            }
            *current = Some(version.clone());
            true
        });
        Ok(())
    }

    async fn assign_canary(&self, canary: Option<&CanaryAssignment>) -> Result<bool, BusError> {
        Ok(self.canary.send_if_modified(|held| {
            if held.as_ref() == canary {
                return false;
            }
            *held = canary.cloned();
            true
        }))
    }
}

/// Publishes to several buses; succeeds only when all did (a retry re-publishes to all, which
/// is harmless: versions only move forward).
pub struct FanOut(pub Vec<std::sync::Arc<dyn Publish>>);

#[async_trait]
impl Publish for FanOut {
    async fn publish(&self, version: &PublishedVersion, head: u64) -> Result<(), BusError> {
        for bus in &self.0 {
            bus.publish(version, head).await?;
        }
        Ok(())
    }

    async fn reconcile(&self, head: &PublishedVersion) -> Result<Reconciled, BusError> {
        let mut result = Reconciled::InSync;
        for bus in &self.0 {
            if bus.reconcile(head).await? == Reconciled::Repaired {
                result = Reconciled::Repaired;
            }
        }
        Ok(result)
    }

    async fn assign_canary(&self, canary: Option<&CanaryAssignment>) -> Result<bool, BusError> {
        let mut written = false;
        for bus in &self.0 {
            written |= bus.assign_canary(canary).await?;
        }
        Ok(written)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_live_under_the_prefix() {
        let names = BusNames::new("staging:");
        assert_eq!(names.current_key(), "staging:registry:current");
        assert_eq!(names.versions_channel(), "staging:registry:versions");
        assert_eq!(
            BusNames::new(" ").current_key(),
            "mana-llm:registry:current"
        );
    }

    /// Every name is part of the wire contract between processes (and the Lua scripts and
    /// dashboards that name keys): pinned, not computed.
    #[test]
    fn every_name_is_pinned() {
        let names = BusNames::new("fleet-a");
        assert_eq!(names.prefix(), "fleet-a");
        assert_eq!(names.breaker_key("groq"), "fleet-a:breaker:groq");
        assert_eq!(names.breakers_index(), "fleet-a:breakers");
        assert_eq!(names.breaker_channel(), "fleet-a:breaker:events");
        assert_eq!(names.trial_lock("groq"), "fleet-a:breaker:groq:trial");
        assert_eq!(names.probe_lock(), "fleet-a:probe:lock");
        assert_eq!(names.cache_key("ab12"), "fleet-a:cache:v2:ab12");
        assert_eq!(names.worker_key("w1"), "fleet-a:fleet:worker:w1");
        assert_eq!(names.worker_pattern(), "fleet-a:fleet:worker:*");
        assert_eq!(names.canary_key(), "fleet-a:registry:canary");
    }

    /// A bus that counts publishes, answers a fixed reconcile, or fails.
    struct Counting {
        published: std::sync::atomic::AtomicUsize,
        reconciled: Reconciled,
        fail: bool,
    }

    impl Counting {
        fn new(reconciled: Reconciled, fail: bool) -> std::sync::Arc<Self> {
            std::sync::Arc::new(Self {
                published: std::sync::atomic::AtomicUsize::new(0),
                reconciled,
                fail,
            })
        }
    }

    #[async_trait]
    impl Publish for Counting {
        async fn publish(&self, _: &PublishedVersion, _: u64) -> Result<(), BusError> {
            if self.fail {
                return Err(BusError("down".to_owned()));
            }
            self.published
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Ok(())
        }

        async fn reconcile(&self, _: &PublishedVersion) -> Result<Reconciled, BusError> {
            Ok(self.reconciled)
        }

        async fn assign_canary(&self, _: Option<&CanaryAssignment>) -> Result<bool, BusError> {
            Ok(self.fail)
        }
    }

    #[tokio::test]
    async fn fan_out_publishes_to_all_and_fails_if_one_fails() {
        let version = PublishedVersion::new(
            RegistryVersion(1),
            "h".to_owned().into(),
            RegistryDocument::default(),
        );
        let (a, b) = (
            Counting::new(Reconciled::InSync, false),
            Counting::new(Reconciled::InSync, false),
        );
        let both = FanOut(vec![a.clone(), b.clone()]);
        both.publish(&version, 1).await.unwrap();
        assert_eq!(a.published.load(std::sync::atomic::Ordering::SeqCst), 1);
        assert_eq!(b.published.load(std::sync::atomic::Ordering::SeqCst), 1);
        let failing = FanOut(vec![a.clone(), Counting::new(Reconciled::InSync, true)]);
        assert!(failing.publish(&version, 1).await.is_err());
    }

    #[tokio::test]
    async fn fan_out_reconcile_reports_a_repair_by_any_bus() {
        let version = PublishedVersion::new(
            RegistryVersion(1),
            "h".to_owned().into(),
            RegistryDocument::default(),
        );
        let in_sync = || Counting::new(Reconciled::InSync, false);
        let repaired = || Counting::new(Reconciled::Repaired, false);
        let fan = |buses: Vec<std::sync::Arc<Counting>>| {
            FanOut(
                buses
                    .into_iter()
                    .map(|b| b as std::sync::Arc<dyn Publish>)
                    .collect(),
            )
        };
        assert_eq!(
            fan(vec![in_sync(), in_sync()])
                .reconcile(&version)
                .await
                .unwrap(),
            Reconciled::InSync
        );
        assert_eq!(
            fan(vec![in_sync(), repaired()])
                .reconcile(&version)
                .await
                .unwrap(),
            Reconciled::Repaired
        );
        assert_eq!(
            fan(vec![repaired(), in_sync()])
                .reconcile(&version)
                .await
                .unwrap(),
            Reconciled::Repaired
        );
    }
}

#[cfg(test)]
mod local_bus_tests {
    use super::*;

    fn version(v: u64) -> PublishedVersion {
        PublishedVersion::new(
            RegistryVersion(v),
            format!("h{v}").into(),
            RegistryDocument::default(),
        )
    }

    #[test]
    fn signatures_cover_version_hash_and_document() {
        let key = FleetKey::from_setting(Some("0123456789abcdef"))
            .unwrap()
            .unwrap();
        let other = FleetKey::from_setting(Some("fedcba9876543210"))
            .unwrap()
            .unwrap();
        let signed = version(3).signed(&key);
        assert_eq!(signed.check_signature(&key), SignatureCheck::Valid);
        assert_eq!(signed.check_signature(&other), SignatureCheck::Wrong);
        assert_eq!(version(3).check_signature(&key), SignatureCheck::Missing);
        let mut higher = signed.clone();
        higher.version = RegistryVersion(u64::MAX);
        assert_eq!(higher.check_signature(&key), SignatureCheck::Wrong);
        let mut rehashed = signed.clone();
        rehashed.hash = "h4".to_owned().into();
        assert_eq!(rehashed.check_signature(&key), SignatureCheck::Wrong);
        let mut edited = signed;
        edited.document.default = Some(serde_json::from_str("\"mana/x\"").unwrap());
        assert_eq!(edited.check_signature(&key), SignatureCheck::Wrong);
    }

    #[test]
    fn the_signature_is_a_known_answer() {
        // Computed outside this code (Python hmac over the length-prefixed parts
        // "mana-llm registry v1", "3", "h3", and the canonical document
        // {"aliases":{},"default":null}): a change in framing would split a running fleet.
        let key = FleetKey::from_setting(Some("0123456789abcdef"))
            .unwrap()
            .unwrap();
        assert_eq!(
            version(3).signed(&key).signature.as_deref(),
            Some("93b7a4104c8373ccc845576a789d081ce6039aa03353f6e276ca9a24c42b7118")
        );
    }

    #[tokio::test]
    async fn subscribers_see_versions_move_forward_only() {
        let bus = LocalBus::default();
        let mut rx = bus.subscribe();
        bus.publish(&version(2), 2).await.unwrap();
        assert!(rx.has_changed().unwrap());
        assert_eq!(
            rx.borrow_and_update().as_ref().map(|v| v.version.0),
            Some(2)
        );
        bus.publish(&version(1), 2).await.unwrap();
        assert!(!rx.has_changed().unwrap(), "an older version is ignored");
    }
}
