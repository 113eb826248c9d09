//! Publishing versions to Redis: the `current` key and the versions channel, changed in one
//! atomic script so every announcement matches the key.
//!
//! The control plane is the source of truth, not Redis: anyone who can reach Redis can write
//! `current`, so the scripts compare what is there with what the event log says. A version
//! above the log's current one, or the same version with other content, was not written by
//! us: it is overwritten, logged and counted. [`Publish::reconcile`] goes further and makes
//! `current` exactly the control plane's current version (run after every outbox drain and
//! on a slow timer), which also restores it after Redis restarts empty. With a fleet key,
//! every version written is signed, and workers take nothing else.
//!
//! The connection is the holder every process uses ([`SharedRedis`]): made lazily, in the
//! background, dropped on any error, so a control plane that starts while Redis is down (or
//! loses it later) keeps running; the outbox retries.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use mana_llm_shared::bus::{
    BusError, BusNames, CanaryAnnouncement, CanaryAssignment, Publish, PublishedVersion, Reconciled,
};
use mana_llm_shared::fleet_key::FleetKey;
use mana_llm_shared::redis_conn::{SharedRedis, Unobserved};
use prometheus::IntCounter;

/// Sets `current` and announces the version unless `current` already holds a version we
/// wrote that is at least as new. ARGV: version, document, channel, announcement, the log's
/// current version. Returns 0 (left alone), 1 (written), 2 (written over a foreign version).
const PUBLISH_SCRIPT: &str = r"
local current = redis.call('GET', KEYS[1])
local foreign = 0
if current then
  local ok, decoded = pcall(cjson.decode, current)
  local held = ok and type(decoded) == 'table' and tonumber(decoded.version)
  local ours = tonumber(ARGV[1])
  if held and held <= tonumber(ARGV[5]) then
    if held > ours or (held == ours and current == ARGV[2]) then
      return 0
    end
    if held == ours then
      foreign = 1
    end
  else
    foreign = 1
  end
end
redis.call('SET', KEYS[1], ARGV[2])
redis.call('PUBLISH', ARGV[3], ARGV[4])
return 1 + foreign
";

/// Makes `current` exactly ARGV[1] (and announces it) unless it already is. Returns 0 (in
/// sync) or 1 (written).
const RECONCILE_SCRIPT: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return 0
end
redis.call('SET', KEYS[1], ARGV[1])
redis.call('PUBLISH', ARGV[2], ARGV[3])
return 1
";

/// Makes the canary key hold exactly ARGV[1] (an empty string: no key) and announces a
/// change. Returns 0 (in sync) or 1 (written).
const CANARY_SCRIPT: &str = r"
local held = redis.call('GET', KEYS[1])
if ARGV[1] == '' then
  if not held then
    return 0
  end
  redis.call('DEL', KEYS[1])
else
  if held == ARGV[1] then
    return 0
  end
  redis.call('SET', KEYS[1], ARGV[1])
end
redis.call('PUBLISH', ARGV[2], ARGV[3])
return 1
";

pub struct RedisBus {
    redis: Arc<SharedRedis>,
    names: BusNames,
    publish: redis::Script,
    reconcile: redis::Script,
    canary: redis::Script,
    fleet_key: Option<FleetKey>,
    /// Counts every time Redis held a version the control plane did not write.
    repairs: IntCounter,
}

impl RedisBus {
    /// Takes a client from [`mana_llm_shared::redis_client::open`]; the connection is made on
    /// first use, by the same holder workers use. `timeout` bounds each publish.
    pub fn new(
        client: redis::Client,
        names: BusNames,
        timeout: Duration,
    ) -> Result<Self, BusError> {
        let repairs = IntCounter::new(
            "mana_llm_registry_repairs_total",
            "Times the control plane overwrote a registry version in Redis that it did not write (or that Redis had lost)",
        )
        .map_err(|e| BusError(e.to_string()))?;
        Ok(Self {
            redis: SharedRedis::new(client, names.clone(), timeout, Arc::new(Unobserved)),
            names,
            publish: redis::Script::new(PUBLISH_SCRIPT),
            reconcile: redis::Script::new(RECONCILE_SCRIPT),
            canary: redis::Script::new(CANARY_SCRIPT),
            fleet_key: None,
            repairs,
        })
    }

    /// Signs every version written with `key` (workers with the same key take nothing else).
    pub fn with_fleet_key(mut self, key: Option<FleetKey>) -> Self {
        self.fleet_key = key;
        self
    }

    /// The connection, for the fleet view's reads.
    pub fn redis(&self) -> Arc<SharedRedis> {
        self.redis.clone()
    }

    /// The repair counter, to register in whichever metrics registry serves this process.
    pub fn repairs(&self) -> IntCounter {
        self.repairs.clone()
    }

    /// The JSON of `version` as written to `current` (signed when there is a key) and its
    /// announcement.
    fn encode(&self, version: &PublishedVersion) -> Result<(String, String), BusError> {
        let version = match &self.fleet_key {
            Some(key) => version.clone().signed(key),
            None => version.clone(),
        };
        let document = serde_json::to_string(&version).map_err(|e| BusError(e.to_string()))?;
        let announcement =
            serde_json::to_string(&version.announcement()).map_err(|e| BusError(e.to_string()))?;
        Ok((document, announcement))
    }

    /// Runs one script invocation (waiting for a connection, off the request path).
    async fn run(&self, call: redis::ScriptInvocation<'_>) -> Result<i64, BusError> {
        self.redis
            .call_patient("publish", |mut conn| async move {
                call.invoke_async::<i64>(&mut conn).await
            })
            .await
            .ok_or_else(|| {
                BusError(
                    "Redis did not take the publish (unreachable, refused or timed out)".to_owned(),
                )
            })
    }

    async fn publish_under(&self, version: &PublishedVersion, head: u64) -> Result<(), BusError> {
        let (document, announcement) = self.encode(version)?;
        let mut call = self.publish.key(self.names.current_key());
        call.arg(version.version.0)
            .arg(document)
            .arg(self.names.versions_channel())
            .arg(announcement)
            .arg(head);
        match self.run(call).await? {
            0 => tracing::debug!(
                version = version.version.0,
                "Redis already holds a newer version"
            ),
            2 => {
                self.repairs.inc();
                tracing::error!(
                    version = version.version.0,
                    "Redis held a registry version the control plane never wrote; overwritten"
                );
            }
            _ => {}
        }
        Ok(())
    }
}

#[async_trait]
impl Publish for RedisBus {
    async fn publish(&self, version: &PublishedVersion, head: u64) -> Result<(), BusError> {
        self.publish_under(version, head.max(version.version.0))
            .await
    }

    async fn reconcile(&self, head: &PublishedVersion) -> Result<Reconciled, BusError> {
        let (document, announcement) = self.encode(head)?;
        let mut call = self.reconcile.key(self.names.current_key());
        call.arg(document)
            .arg(self.names.versions_channel())
            .arg(announcement);
        if self.run(call).await? == 0 {
            return Ok(Reconciled::InSync);
        }
        self.repairs.inc();
        tracing::warn!(
            version = head.version.0,
            "Redis did not hold the control plane's current registry version (lost, older or foreign); written again"
        );
        Ok(Reconciled::Repaired)
    }

    async fn assign_canary(&self, canary: Option<&CanaryAssignment>) -> Result<bool, BusError> {
        let value = match canary {
            None => String::new(),
            Some(c) => {
                let c = match &self.fleet_key {
                    Some(key) => c.clone().signed(key),
                    None => c.clone(),
                };
                serde_json::to_string(&c).map_err(|e| BusError(e.to_string()))?
            }
        };
        let announcement = serde_json::to_string(&CanaryAnnouncement {
            canary: canary.map_or(0, |c| c.candidate.version.0),
        })
        .map_err(|e| BusError(e.to_string()))?;
        let mut call = self.canary.key(self.names.canary_key());
        call.arg(value)
            .arg(self.names.versions_channel())
            .arg(announcement);
        Ok(self.run(call).await? == 1)
    }
}

#[cfg(test)]
mod tests {
    //! The two scripts' branches against a real `redis-server`.

    use std::time::Duration;

    use mana_llm_shared::testing::RedisServer;

    use mana_llm_shared::{Registry, RegistryVersion};

    use super::*;

    struct Server(RedisServer);

    impl Server {
        fn start() -> Self {
            Self(RedisServer::start())
        }

        fn client(&self) -> redis::Client {
            redis::Client::open(self.0.url()).unwrap()
        }
    }

    fn version(n: u64) -> PublishedVersion {
        let yaml = format!("aliases:\n  mana/a: {{chain: [echo/v{n}]}}\n");
        PublishedVersion::of(&Registry::parse(&yaml, "test", RegistryVersion(n)).unwrap())
    }

    async fn current(server: &Server, names: &BusNames) -> Option<PublishedVersion> {
        let mut conn = server
            .client()
            .get_multiplexed_async_connection()
            .await
            .unwrap();
        let raw: Option<String> = redis::cmd("GET")
            .arg(names.current_key())
            .query_async(&mut conn)
            .await
            .unwrap();
        raw.map(|r| serde_json::from_str(&r).unwrap())
    }

    async fn set(server: &Server, names: &BusNames, raw: &str) {
        let mut conn = server
            .client()
            .get_multiplexed_async_connection()
            .await
            .unwrap();
        let _: () = redis::cmd("SET")
            .arg(names.current_key())
            .arg(raw)
            .query_async(&mut conn)
            .await
            .unwrap();
    }

    fn bus(server: &Server, names: &BusNames) -> RedisBus {
        RedisBus::new(server.client(), names.clone(), Duration::from_secs(10)).unwrap()
    }

    #[tokio::test]
    async fn an_older_row_leaves_a_newer_version_of_ours_alone() {
        let server = Server::start();
        let names = BusNames::new("bus-test");
        let bus = bus(&server, &names);
        bus.publish(&version(3), 3).await.unwrap();
        // A late outbox row (another control plane on the same log published 3 first).
        bus.publish(&version(2), 3).await.unwrap();
        assert_eq!(
            current(&server, &names).await.unwrap().version,
            RegistryVersion(3)
        );
        assert_eq!(bus.repairs().get(), 0, "nothing foreign was there");
        // The same version again is left alone too.
        bus.publish(&version(3), 3).await.unwrap();
        assert_eq!(bus.repairs().get(), 0);
    }

    #[tokio::test]
    async fn a_version_the_log_never_made_is_overwritten_and_counted() {
        let server = Server::start();
        let names = BusNames::new("bus-test");
        let bus = bus(&server, &names);
        // Above the log's head: planted.
        set(
            &server,
            &names,
            &serde_json::to_string(&version(9)).unwrap(),
        )
        .await;
        bus.publish(&version(2), 2).await.unwrap();
        assert_eq!(
            current(&server, &names).await.unwrap().version,
            RegistryVersion(2)
        );
        assert_eq!(bus.repairs().get(), 1);
        // Our version number with other content: planted too.
        let mut forged = version(2);
        forged.document = version(7).document;
        set(&server, &names, &serde_json::to_string(&forged).unwrap()).await;
        bus.publish(&version(2), 2).await.unwrap();
        assert_eq!(current(&server, &names).await.unwrap(), version(2));
        assert_eq!(bus.repairs().get(), 2);
        // Not even a version.
        set(&server, &names, "garbage").await;
        bus.publish(&version(2), 2).await.unwrap();
        assert_eq!(
            current(&server, &names).await.unwrap().version,
            RegistryVersion(2)
        );
        assert_eq!(bus.repairs().get(), 3);
    }

    #[tokio::test]
    async fn reconcile_restores_an_empty_redis_and_leaves_a_matching_one() {
        let server = Server::start();
        let names = BusNames::new("bus-test");
        let bus = bus(&server, &names).with_fleet_key(
            mana_llm_shared::fleet_key::FleetKey::from_setting(Some("bus-test-fleet-key-0123"))
                .unwrap(),
        );
        assert_eq!(
            bus.reconcile(&version(4)).await.unwrap(),
            Reconciled::Repaired
        );
        let written = current(&server, &names).await.unwrap();
        assert_eq!(written.version, RegistryVersion(4));
        assert!(written.signature.is_some(), "written signed");
        assert_eq!(
            bus.reconcile(&version(4)).await.unwrap(),
            Reconciled::InSync
        );
        assert_eq!(bus.repairs().get(), 1);
    }
}
