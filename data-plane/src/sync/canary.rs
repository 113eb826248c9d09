//! Following a staged rollout: while the control plane's canary assignment names this
//! worker's cohort (see [`mana_llm_shared::rollout`]), serve its candidate; otherwise, and as
//! soon as the assignment is gone, serve the stable version.
//!
//! An assignment is taken only for the stable version this worker holds, never for a
//! candidate older than one it already took, and, read from Redis with a fleet key, only
//! signed. The candidate is checked like any version before it is served. An assignment the
//! control plane did not write (an old one written back, or one deleted) lasts until its next
//! reconcile, at most a few seconds, and only ever moves a worker between two versions the
//! control plane signed for this stable version.

use mana_llm_shared::bus::CanaryAssignment;
use mana_llm_shared::{Registry, RegistryVersion};

use crate::fleet::fleet_id;
use crate::server::{App, Origin, Rejected};

/// What a follower remembers between reads of the assignment.
#[derive(Debug, Default)]
pub struct Memory {
    /// The newest candidate of an assignment taken.
    assigned: u64,
}

/// Applies the assignment read now (`None`: no rollout runs). Returns whether what this
/// worker serves changed, or why the assignment was refused (the worker then serves stable).
pub fn follow(
    app: &App,
    canary: Option<CanaryAssignment>,
    origin: Origin,
    memory: &mut Memory,
) -> Result<bool, Rejected> {
    let snapshots = &app.state().snapshots;
    let stable = snapshots.stable_version().0;
    let Some(canary) = canary else {
        return Ok(back_to_stable(app));
    };
    let candidate = canary.candidate.version.0;
    // A promoted candidate is the stable version by now; one older than an assignment already
    // taken is left over.
    if candidate <= stable || candidate < memory.assigned {
        return Ok(back_to_stable(app));
    }
    // Written for another stable version: this worker has not caught up with it yet (or it
    // is left over); the next read after `current` moves settles it.
    if canary.stable_version.0 != stable {
        return Ok(back_to_stable(app));
    }
    if origin == Origin::Redis {
        if let Some(key) = &app.state().config.fleet_key {
            let check = canary.check_signature(key);
            if let Some(refused) = Rejected::for_signature(check, "the rollout assignment") {
                back_to_stable(app);
                return Err(app.reject(candidate, refused));
            }
        }
    }
    memory.assigned = candidate;
    if !canary.includes(&fleet_id(&app.state().config.worker_id)) {
        return Ok(back_to_stable(app));
    }
    if snapshots.version().0 == candidate {
        return Ok(false);
    }
    let registry = Registry::verified(
        canary.candidate.document,
        RegistryVersion(candidate),
        canary.candidate.hash.as_str(),
        &app.state().config.registry_policy,
    )
    .map_err(|e| {
        back_to_stable(app);
        app.reject(candidate, Rejected::new("invalid", e.to_string()))
    })?;
    let changed = snapshots.serve_candidate(registry);
    if changed {
        tracing::info!(candidate, stable, "serving a rollout's candidate version");
        app.observe_snapshot();
    }
    Ok(changed)
}

/// Serves the stable version (the assignment is absent, unreadable or not for this worker).
pub fn back_to_stable(app: &App) -> bool {
    let changed = app.state().snapshots.serve_stable();
    if changed {
        tracing::info!(
            version = app.state().snapshots.version().0,
            "serving the stable version again"
        );
        app.observe_snapshot();
    }
    changed
}
