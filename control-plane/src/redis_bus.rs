//! Publishing versions to Redis: the `current` key and the versions channel, changed in one
//! atomic script so the key never moves backwards and every announcement matches the key.
//!
//! The connection is made lazily and dropped on any error, so a control plane that starts
//! while Redis is down (or loses it later) keeps running; the outbox retries.

use std::time::Duration;

use async_trait::async_trait;
use mana_llm_shared::bus::{BusError, BusNames, Publish, PublishedVersion};
use mana_llm_shared::redis_client::describe_failure;
use redis::aio::MultiplexedConnection;
use tokio::sync::Mutex;

/// Sets `current` and announces the version, unless `current` already holds a newer one.
const PUBLISH_SCRIPT: &str = r"
local current = redis.call('GET', KEYS[1])
if current then
  local ok, decoded = pcall(cjson.decode, current)
  if ok and type(decoded) == 'table' and tonumber(decoded.version) and tonumber(decoded.version) >= tonumber(ARGV[1]) then
    return 0
  end
end
redis.call('SET', KEYS[1], ARGV[2])
redis.call('PUBLISH', ARGV[3], ARGV[4])
return 1
";

pub struct RedisBus {
    client: redis::Client,
    names: BusNames,
    timeout: Duration,
    connection: Mutex<Option<MultiplexedConnection>>,
    script: redis::Script,
}

impl RedisBus {
    /// Takes a client from [`mana_llm_shared::redis_client::open`]; the connection is made on
    /// first use.
    pub fn new(client: redis::Client, names: BusNames, timeout: Duration) -> Self {
        Self {
            client,
            names,
            timeout,
            connection: Mutex::new(None),
            script: redis::Script::new(PUBLISH_SCRIPT),
        }
    }

    async fn connection(
        &self,
        slot: &mut Option<MultiplexedConnection>,
    ) -> Result<MultiplexedConnection, BusError> {
        if let Some(c) = slot {
            return Ok(c.clone());
        }
        let c = tokio::time::timeout(self.timeout, self.client.get_multiplexed_async_connection())
            .await
            .map_err(|_| BusError("timed out connecting to Redis".to_owned()))?
            .map_err(|e| match describe_failure(&e) {
                Some(reason) => BusError(reason.to_owned()),
                None => BusError(format!("cannot connect to Redis: {e}")),
            })?;
        *slot = Some(c.clone());
        Ok(c)
    }
}

#[async_trait]
impl Publish for RedisBus {
    async fn publish(&self, version: &PublishedVersion) -> Result<(), BusError> {
        let document = serde_json::to_string(version).map_err(|e| BusError(e.to_string()))?;
        let announcement =
            serde_json::to_string(&version.announcement()).map_err(|e| BusError(e.to_string()))?;
        let mut slot = self.connection.lock().await;
        let mut conn = self.connection(&mut slot).await?;
        let mut call = self.script.key(self.names.current_key());
        call.arg(version.version)
            .arg(document)
            .arg(self.names.versions_channel())
            .arg(announcement);
        let result: Result<i64, BusError> =
            match tokio::time::timeout(self.timeout, call.invoke_async(&mut conn)).await {
                Ok(Ok(n)) => Ok(n),
                Ok(Err(e)) => Err(BusError(format!("Redis refused the publish: {e}"))),
                Err(_) => Err(BusError("timed out publishing to Redis".to_owned())),
            };
        if result.is_err() {
            // Reconnect next time: the connection may be dead.
            *slot = None;
        }
        result.map(|applied| {
            if applied == 0 {
                tracing::debug!(
                    version = version.version,
                    "Redis already holds a newer version"
                );
            }
        })
    }
}
