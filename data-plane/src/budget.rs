//! The process-wide memory budget for request bodies in flight (DESIGN §14): how much, and
//! the permits that count it. The middleware that charges each request is `api::budget`.

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The budget is counted in KiB so a large one still fits the semaphore's u32 permits.
const UNIT: usize = 1024;

pub struct BodyBudget {
    permits: Arc<Semaphore>,
    units: usize,
}

impl BodyBudget {
    pub fn new(bytes: usize) -> Self {
        let units = (bytes / UNIT).clamp(1, Semaphore::MAX_PERMITS.min(u32::MAX as usize));
        Self {
            permits: Arc::new(Semaphore::new(units)),
            units,
        }
    }

    /// Reserves `bytes` of the budget, or `None` at once when they are not free.
    pub fn try_charge(&self, bytes: usize) -> Option<OwnedSemaphorePermit> {
        let units = bytes.div_ceil(UNIT).clamp(1, self.units);
        let units = u32::try_from(units).ok()?;
        self.permits.clone().try_acquire_many_owned(units).ok()
    }

    /// Bytes charged right now.
    pub fn in_flight(&self) -> usize {
        (self.units - self.permits.available_permits()) * UNIT
    }

    pub fn total(&self) -> usize {
        self.units * UNIT
    }
}

/// Without `MANA_LLM_BODY_BUDGET_MB`: an eighth of the memory limit of this process's cgroup
/// (a 31 MB chat request peaks at ~5.4× its body in RSS, see BENCHMARKS.md, plus the idle
/// worker), else 128 MiB; never less than one body of the largest size allowed.
pub fn default_budget(body_limit: usize) -> usize {
    let budget = memory_limit().map_or(128 * 1024 * 1024, |limit| limit / 8);
    budget.max(body_limit)
}

/// The memory limit of this process's cgroup (v2 `memory.max`, else v1's
/// `memory.limit_in_bytes`), if it has one.
fn memory_limit() -> Option<usize> {
    let groups = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    let files = groups.lines().filter_map(|line| {
        let mut parts = line.splitn(3, ':');
        let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
        let path = path.trim_start_matches('/');
        if controllers.is_empty() {
            Some(format!("/sys/fs/cgroup/{path}/memory.max"))
        } else if controllers.split(',').any(|c| c == "memory") {
            Some(format!(
                "/sys/fs/cgroup/memory/{path}/memory.limit_in_bytes"
            ))
        } else {
            None
        }
    });
    // "max" (v2) or a huge number (v1, unlimited) mean no limit.
    files
        .filter_map(|f| std::fs::read_to_string(f).ok())
        .filter_map(|raw| raw.trim().parse::<usize>().ok())
        .find(|limit| *limit < 1usize << 50)
}
