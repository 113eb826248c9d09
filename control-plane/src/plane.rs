//! The control plane as one library with one lifecycle. `mana-llm serve` runs it beside a
//! worker in one process; `mana-llm control-plane` runs it alone. Both go through here, so the
//! admin token, the loopback rule and the reload path are written once.
//!
//! Phases: [`ControlPlane::build`] (read the settings, open the event log, seeding it from the
//! aliases file when empty) → [`ControlPlane::start`] (the publisher, the rollout judge and the
//! SIGHUP reloader, all on one task tracker) → the caller serves [`ControlPlane::admin_router`]
//! → [`ControlPlane::stop`] (cancel the tasks) → [`ControlPlane::close`] (wait for them until
//! the deadline, then close the event store's pool).

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use mana_llm_shared::bus::{BusNames, Publish};
use mana_llm_shared::fleet::Beats;
use mana_llm_shared::fleet_key::FleetKey;
use mana_llm_shared::rollout::JudgeSettings;
use mana_llm_shared::{redis_client, Registry, RegistryPolicy};
use prometheus::IntCounterVec;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::api::{self, is_loopback, AdminState};
use crate::publisher;
use crate::redis_bus::RedisBus;
use crate::registry_log::{self, LogError};
use crate::rollout::{self, Watch};
use crate::service::RegistryService;

/// The bearer token of the admin API.
pub const ADMIN_TOKEN_ENV: &str = "MANA_LLM_ADMIN_TOKEN";

/// How long one Redis call of the bus may take before it counts as failed.
const REDIS_TIMEOUT: Duration = Duration::from_secs(2);

/// Why a control plane could not be built or wired.
#[derive(Debug, thiserror::Error)]
pub enum PlaneError {
    #[error(transparent)]
    Log(#[from] LogError),
    /// An operator setting that does not parse (the message names the key).
    #[error(transparent)]
    Setting(#[from] rollout::SettingError),
    #[error("{0}")]
    Redis(String),
}

/// The admin token from `lookup`: a blank value counts as none.
pub fn admin_token(lookup: impl Fn(&str) -> Option<String>) -> Option<String> {
    lookup(ADMIN_TOKEN_ENV).filter(|t| !t.trim().is_empty())
}

/// Who the admin API may answer on a listener, the one rule both roles follow: with a token,
/// whoever presents it; without one, loopback peers only, which means nothing on an address
/// other machines can reach, so there it is off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exposure {
    Token,
    LoopbackOnly,
    Off,
}

impl Exposure {
    pub fn of(token: Option<&str>, listen: IpAddr) -> Self {
        match token {
            Some(_) => Self::Token,
            None if is_loopback(listen) => Self::LoopbackOnly,
            None => Self::Off,
        }
    }
}

/// What a control plane is built from.
pub struct Settings {
    /// The SQLite file of the event log.
    pub db: PathBuf,
    /// The aliases file: seeds an empty log, re-read on SIGHUP and `aliases reload`.
    pub aliases: PathBuf,
    /// The rules every new document must follow.
    pub policy: RegistryPolicy,
    /// `None`: loopback peers only.
    pub token: Option<String>,
    /// The rollout judge's defaults.
    pub judge: JudgeSettings,
}

impl Settings {
    /// The settings read from `lookup` (the process environment, or a map in tests): the admin
    /// token and the judge's defaults.
    pub fn from_lookup(
        db: PathBuf,
        aliases: PathBuf,
        policy: RegistryPolicy,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, PlaneError> {
        Ok(Self {
            token: admin_token(&lookup),
            judge: rollout::defaults_from(&lookup)?,
            db,
            aliases,
            policy,
        })
    }
}

/// What the process around the control plane hands it when it starts.
pub struct Wiring {
    /// Where committed versions are published; `None`: stored only.
    pub publish: Option<Arc<dyn Publish>>,
    /// The workers' heartbeats (the fleet view and the judge's figures).
    pub fleet: Option<Arc<dyn Beats>>,
    /// Where file reloads are counted by `result`: the worker's metrics when embedded, the
    /// control plane's own when alone.
    pub reloads: IntCounterVec,
}

pub struct ControlPlane {
    service: RegistryService,
    aliases: PathBuf,
    token: Option<String>,
    judge: JudgeSettings,
    tasks: TaskTracker,
    cancel: CancellationToken,
}

impl ControlPlane {
    /// Opens (or creates) the event log; an empty one is seeded from the aliases file.
    pub async fn build(settings: Settings) -> Result<Self, PlaneError> {
        let service = registry_log::open(&settings.db, &settings.aliases, settings.policy).await?;
        Ok(Self {
            service,
            aliases: settings.aliases,
            token: settings.token,
            judge: settings.judge,
            tasks: TaskTracker::new(),
            cancel: CancellationToken::new(),
        })
    }

    pub fn service(&self) -> &RegistryService {
        &self.service
    }

    pub fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    /// The current registry, checked against the policy as a worker would check it.
    pub async fn current_registry(&self) -> Result<Registry, PlaneError> {
        Ok(registry_log::current(&self.service, self.service.policy()).await?)
    }

    /// Spawns the background tasks (the outbox publisher when there is a bus, the rollout
    /// judge, the SIGHUP reloader) and returns what the admin API serves from.
    pub fn start(&self, wiring: Wiring) -> Arc<AdminState> {
        if let Some(publish) = wiring.publish {
            self.tasks.spawn(publisher::run(
                self.service.clone(),
                publish,
                self.cancel.clone(),
            ));
        }
        let rollouts = Watch::new(self.judge);
        self.tasks.spawn(rollout::judge_loop(
            self.service.clone(),
            wiring.fleet.clone(),
            rollouts.clone(),
            self.cancel.clone(),
        ));
        self.reload_on_hangup(wiring.reloads);
        Arc::new(AdminState {
            service: self.service.clone(),
            token: self.token.clone(),
            aliases_path: Some(self.aliases.clone()),
            fleet: wiring.fleet,
            rollouts,
        })
    }

    /// The admin API and console as `exposure` allows: off, every admin path answers 403.
    pub fn admin_router(admin: Arc<AdminState>, exposure: Exposure) -> Router {
        match exposure {
            Exposure::Off => api::disabled_router(),
            Exposure::Token | Exposure::LoopbackOnly => api::router(admin),
        }
    }

    /// Installs the SIGHUP handler now (a signal before it exists would kill the process),
    /// then re-reads the aliases file for every SIGHUP, one at a time, until stopped.
    fn reload_on_hangup(&self, reloads: IntCounterVec) {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            let Ok(mut hangups) = signal(SignalKind::hangup()) else {
                tracing::warn!("cannot listen for SIGHUP; reloads by signal are off");
                return;
            };
            let (service, path, cancel) = (
                self.service.clone(),
                self.aliases.clone(),
                self.cancel.clone(),
            );
            self.tasks.spawn(async move {
                loop {
                    tokio::select! {
                        _ = cancel.cancelled() => return,
                        hangup = hangups.recv() => {
                            if hangup.is_none() {
                                return;
                            }
                        }
                    }
                    let result = registry_log::reload(&service, &path).await;
                    reloads.with_label_values(&[result]).inc();
                }
            });
        }
        #[cfg(not(unix))]
        let _ = reloads;
    }

    /// Stops the background tasks (they finish their current step).
    pub fn stop(&self) {
        self.cancel.cancel();
    }

    /// Waits for the stopped tasks until `deadline`, then closes the event store's pool.
    pub async fn close(&self, deadline: Instant) {
        self.cancel.cancel();
        self.tasks.close();
        if tokio::time::timeout_at(deadline, self.tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!("control plane tasks still running at the drain deadline");
        }
        self.service.store().pool().close().await;
    }
}

/// The Redis bus of a deployment: keys and channels under `prefix`, versions signed with
/// `fleet_key` when there is one.
pub fn redis_bus(
    url: &str,
    ca_file: Option<&Path>,
    prefix: &str,
    fleet_key: Option<FleetKey>,
) -> Result<RedisBus, PlaneError> {
    let client = redis_client::open(url, ca_file).map_err(|e| PlaneError::Redis(e.to_string()))?;
    let bus = RedisBus::new(client, BusNames::new(prefix), REDIS_TIMEOUT)
        .map_err(|e| PlaneError::Redis(e.to_string()))?;
    Ok(bus.with_fleet_key(fleet_key))
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

    use super::*;

    #[test]
    fn a_blank_admin_token_is_no_token() {
        assert_eq!(admin_token(|_| Some("  ".to_owned())), None);
        assert_eq!(admin_token(|_| None), None);
        assert_eq!(
            admin_token(|k| (k == ADMIN_TOKEN_ENV).then(|| "s3cret".to_owned())),
            Some("s3cret".to_owned())
        );
    }

    #[test]
    fn without_a_token_the_admin_api_answers_loopback_only_and_is_off_beyond() {
        let anywhere = IpAddr::V4(Ipv4Addr::UNSPECIFIED);
        let mapped = IpAddr::V6(Ipv4Addr::LOCALHOST.to_ipv6_mapped());
        assert_eq!(Exposure::of(Some("t"), anywhere), Exposure::Token);
        assert_eq!(
            Exposure::of(None, IpAddr::V6(Ipv6Addr::LOCALHOST)),
            Exposure::LoopbackOnly
        );
        assert_eq!(Exposure::of(None, mapped), Exposure::LoopbackOnly);
        assert_eq!(Exposure::of(None, anywhere), Exposure::Off);
    }
}
