//! Consumer groups: logferry as the group coordinator of the classic protocol and of KIP-848's
//! consumer protocol, with committed offsets kept crash-safely in its own state directory.
//!
//! Owns the pairing of the halves: [`coordinator`] (classic membership and rebalances, pure
//! state), [`consumer`] (KIP-848 member epochs and server-side assignors, pure state) and [`store`] (the durable offsets file), plus the rules that need both — the group and
//! metadata limits of OffsetCommit and the expiry of offsets of groups nobody uses any more
//! (Kafka's `offsets.retention.minutes`, 7 days by default, counted from the last commit).
//! The Kafka API handlers (`protocol::{find_coordinator, join_group, …}`) only translate between
//! wire messages and these calls.

pub mod consumer;
pub mod coordinator;
pub mod store;

use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

pub use crate::protocol::error_code;
pub use consumer::{ConsumerCoordinator, ConsumerGroupConfig};
pub use coordinator::{Coordinator, GroupConfig, GroupState, Waiter};
pub use store::{Committed, OffsetStore, Recovery, StoreError};

/// How often the coordinator's timers are checked.
pub const TICK_INTERVAL: Duration = Duration::from_millis(100);
/// How often expired offsets are looked for (Kafka's `offsets.retention.check.interval.ms`).
pub const RETENTION_CHECK_INTERVAL: Duration = Duration::from_secs(600);

/// Limits of the offsets side, each with its unit last.
#[derive(Clone, Debug)]
pub struct OffsetLimits {
    /// Kafka's `offset.metadata.max.bytes`.
    pub metadata_bytes_max: usize,
    /// Kafka's `offsets.retention.minutes`, in milliseconds.
    pub retention_ms: u64,
    /// Groups with committed offsets (a commit for a new group beyond it is refused).
    pub groups_max: usize,
}

impl Default for OffsetLimits {
    fn default() -> Self {
        OffsetLimits { metadata_bytes_max: 4096, retention_ms: 7 * 24 * 3600 * 1000, groups_max: 10_000 }
    }
}

pub struct Groups {
    pub coordinator: Coordinator,
    /// KIP-848 (`group.protocol=consumer`) groups; their offsets share the store.
    pub consumer: ConsumerCoordinator,
    pub store: OffsetStore,
    pub limits: OffsetLimits,
    last_tick: Instant,
    last_retention_check: Instant,
}

/// Wall-clock milliseconds (commit timestamps are wall time, as in Kafka).
pub fn wall_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

impl Groups {
    /// Opens the offsets store in `state_dir` and logs what recovery found.
    pub fn open(state_dir: &Path, config: GroupConfig, limits: OffsetLimits, now: Instant) -> Result<Self, StoreError> {
        let (store, rec) = OffsetStore::open(state_dir)?;
        if rec.tail_bytes_dropped > 0 || rec.records_skipped > 0 {
            log::warn!(
                "{}: recovered {} records; dropped a torn tail of {} bytes and skipped {} corrupt records",
                store.path().display(),
                rec.records,
                rec.tail_bytes_dropped,
                rec.records_skipped
            );
        }
        let consumer = ConsumerCoordinator::new(ConsumerGroupConfig {
            session_timeout_ms: config.consumer_session_timeout_ms,
            heartbeat_interval_ms: config.consumer_heartbeat_interval_ms,
            groups_max: config.groups_max,
            members_per_group_max: config.members_per_group_max,
        });
        Ok(Groups {
            coordinator: Coordinator::new(config),
            consumer,
            store,
            limits,
            last_tick: now,
            last_retention_check: now,
        })
    }

    /// Runs the coordinator's timers when due and, less often, offset retention.
    pub fn tick(&mut self, now: Instant) {
        if now.duration_since(self.last_tick) >= TICK_INTERVAL {
            self.last_tick = now;
            self.coordinator.tick(now);
            self.consumer.tick(now);
        }
        if now.duration_since(self.last_retention_check) >= RETENTION_CHECK_INTERVAL {
            self.last_retention_check = now;
            self.expire_offsets(wall_ms());
        }
    }

    /// When the next tick is due.
    pub fn next_deadline(&self) -> Option<Instant> {
        (self.coordinator.group_count() + self.consumer.group_count() > 0).then_some(self.last_tick + TICK_INTERVAL)
    }

    /// Deletes offsets older than the retention of groups that have no live members.
    pub fn expire_offsets(&mut self, now_ms: i64) -> usize {
        let retention = self.limits.retention_ms as i64;
        let mut doomed = Vec::new();
        for (g, offs) in self.store.groups() {
            let live =
                matches!(self.coordinator.state(g), Some(s) if s != GroupState::Empty) || self.consumer.has_members(g);
            if live {
                continue;
            }
            for ((t, p), c) in offs {
                if c.commit_ms.saturating_add(retention) < now_ms {
                    doomed.push((g.clone(), t.clone(), *p));
                }
            }
        }
        for (g, t, p) in &doomed {
            self.store.delete(g, t, *p);
        }
        if !doomed.is_empty() {
            log::info!("expired {} committed offsets older than the retention", doomed.len());
        }
        doomed.len()
    }
}
