//! The classic group protocol's coordinator state machine, sans I/O: requests and `now` in,
//! answers and completions out.
//!
//! Owns the groups' membership: member ids, generations, the rebalance and session timers,
//! static membership (`group.instance.id`) and the assignment the leader hands over, which is
//! kept and passed on untouched (so eager and cooperative assignors both work). It follows the
//! Kafka broker's classic coordinator (`group-coordinator/…/classic/ClassicGroup.java`,
//! `GroupMetadataManager.java`):
//!
//! ```text
//!             join (first member)           all known members rejoined,
//!   Empty ──────────────────────▶ Preparing ───────────────────────────▶ Completing
//!     ▲        (initial delay)    Rebalance   or rebalance timeout        Rebalance
//!     │                              ▲  ▲                                    │ leader's SyncGroup
//!     │ last member leaves/expires   │  └────── member joins/leaves/ ◀──┐     ▼
//!     └──────────────────────────────┘          expires, leader rejoins  └── Stable
//! ```
//!
//! A JoinGroup or SyncGroup that has to wait for other members is answered later: the caller
//! passes a [`Waiter`] and collects [`Completion`]s with [`Coordinator::take_completions`].
//! Timers are checked by [`Coordinator::tick`]; the caller decides how often (the server does it
//! every `TICK_INTERVAL`). Membership is not persisted: after a restart members get
//! UNKNOWN_MEMBER_ID and rejoin, and resume from their committed offsets (the store's job).

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::error_code as ec;

/// Identifies a request waiting for the coordinator: the connection slot and a serial number
/// unique to the request, so a completion never reaches a later request on a reused slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Waiter {
    pub conn: usize,
    pub serial: u64,
}

/// Coordinator limits and timeouts, each with its unit last.
#[derive(Clone, Debug)]
pub struct GroupConfig {
    pub groups_max: usize,
    pub members_per_group_max: usize,
    pub session_timeout_ms_min: i32,
    pub session_timeout_ms_max: i32,
    /// Kafka's `group.initial.rebalance.delay.ms`: how long a new group waits for more members.
    pub initial_rebalance_delay_ms: u64,
    /// Kafka's `group.consumer.session.timeout.ms` (KIP-848 groups).
    pub consumer_session_timeout_ms: u64,
    /// Kafka's `group.consumer.heartbeat.interval.ms` (KIP-848 groups).
    pub consumer_heartbeat_interval_ms: u64,
}

impl Default for GroupConfig {
    fn default() -> Self {
        // The broker's defaults, except the number of groups and members, which Kafka leaves
        // unbounded.
        GroupConfig {
            groups_max: 10_000,
            members_per_group_max: 1_000,
            session_timeout_ms_min: 6_000,
            session_timeout_ms_max: 1_800_000,
            initial_rebalance_delay_ms: 3_000,
            consumer_session_timeout_ms: 45_000,
            consumer_heartbeat_interval_ms: 5_000,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum GroupState {
    Empty,
    PreparingRebalance,
    CompletingRebalance,
    Stable,
}

impl GroupState {
    /// The name ListGroups and DescribeGroups use.
    pub fn name(self) -> &'static str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::PreparingRebalance => "PreparingRebalance",
            GroupState::CompletingRebalance => "CompletingRebalance",
            GroupState::Stable => "Stable",
        }
    }
}

#[derive(Clone, Debug)]
pub struct JoinRequest {
    pub group_id: String,
    pub session_timeout_ms: i32,
    pub rebalance_timeout_ms: i32,
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub protocol_type: String,
    pub protocols: Vec<(String, Bytes)>,
    pub client_id: String,
    pub client_host: String,
    /// JoinGroup v4+: an unknown member first gets MEMBER_ID_REQUIRED and its id.
    pub require_known_member_id: bool,
    /// JoinGroup v9+: a static leader rejoining a stable group gets `skip_assignment`.
    pub supports_skip_assignment: bool,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct JoinMember {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub metadata: Bytes,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct JoinResult {
    pub error: i16,
    pub generation_id: i32,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub leader: String,
    pub skip_assignment: bool,
    pub member_id: String,
    pub members: Vec<JoinMember>,
}

impl JoinResult {
    fn error(error: i16, member_id: &str) -> Self {
        JoinResult { error, generation_id: -1, member_id: member_id.to_string(), ..Default::default() }
    }
}

#[derive(Clone, Debug)]
pub struct SyncRequest {
    pub group_id: String,
    pub generation_id: i32,
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub assignments: Vec<(String, Bytes)>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SyncResult {
    pub error: i16,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub assignment: Bytes,
}

impl SyncResult {
    fn error(error: i16) -> Self {
        SyncResult { error, ..Default::default() }
    }
}

/// An answer now, or later through a [`Completion`].
#[derive(Debug, PartialEq, Eq)]
pub enum Reply<T> {
    Now(T),
    Later,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Completion {
    Join(JoinResult),
    Sync(SyncResult),
}

/// One member as DescribeGroups shows it.
#[derive(Clone, Debug)]
pub struct DescribedMember {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub metadata: Bytes,
    pub assignment: Bytes,
}

#[derive(Clone, Debug)]
pub struct Described {
    pub state: GroupState,
    pub protocol_type: String,
    pub protocol_name: String,
    pub members: Vec<DescribedMember>,
}

#[derive(Debug)]
struct Member {
    id: String,
    instance_id: Option<String>,
    client_id: String,
    client_host: String,
    session_timeout_ms: i32,
    rebalance_timeout_ms: i32,
    protocols: Vec<(String, Bytes)>,
    assignment: Bytes,
    awaiting_join: Option<Waiter>,
    awaiting_sync: Option<Waiter>,
    /// The session expires at this instant unless a heartbeat (or join/sync) moves it.
    session_deadline: Instant,
    /// Order of joining, for picking a new leader the way Kafka does (the oldest member).
    joined_seq: u64,
}

impl Member {
    fn metadata(&self, protocol: &str) -> Bytes {
        self.protocols.iter().find(|(n, _)| n == protocol).map(|(_, m)| m.clone()).unwrap_or_default()
    }
    fn same_protocols(&self, protocols: &[(String, Bytes)]) -> bool {
        self.protocols == protocols
    }
}

/// The initial rebalance delay of a new group (Kafka's `InitialDelayedJoin`).
#[derive(Debug)]
struct InitialDelay {
    next: Instant,
    remaining: Duration,
}

#[derive(Debug)]
struct Group {
    state: GroupState,
    generation: i32,
    protocol_type: Option<String>,
    protocol_name: Option<String>,
    leader: Option<String>,
    members: BTreeMap<String, Member>,
    /// group.instance.id → member id of the static members.
    statics: HashMap<String, String>,
    /// Ids handed out with MEMBER_ID_REQUIRED that have not joined yet, with their deadline.
    pending: HashMap<String, Instant>,
    /// Members of the current generation that have not sent SyncGroup yet.
    pending_sync: Vec<String>,
    join_deadline: Option<Instant>,
    initial_delay: Option<InitialDelay>,
    sync_deadline: Option<Instant>,
    new_member_added: bool,
    /// Kafka's `group.initial.rebalance.delay.ms`, fixed when the group is created.
    initial_delay_config: Duration,
}

impl Group {
    fn new(initial_delay: Duration) -> Self {
        Group {
            initial_delay_config: initial_delay,
            state: GroupState::Empty,
            generation: 0,
            protocol_type: None,
            protocol_name: None,
            leader: None,
            members: BTreeMap::new(),
            statics: HashMap::new(),
            pending: HashMap::new(),
            pending_sync: Vec::new(),
            join_deadline: None,
            initial_delay: None,
            sync_deadline: None,
            new_member_added: false,
        }
    }

    fn rebalance_timeout(&self) -> Duration {
        let ms = self.members.values().map(|m| m.rebalance_timeout_ms).max().unwrap_or(0).max(0);
        Duration::from_millis(ms as u64)
    }

    /// A member's protocols can be served: the group is empty, or the type matches and one of
    /// the names is supported by every member.
    fn supports(&self, protocol_type: &str, protocols: &[(String, Bytes)]) -> bool {
        if self.members.is_empty() {
            return !protocol_type.is_empty() && !protocols.is_empty();
        }
        self.protocol_type.as_deref() == Some(protocol_type)
            && protocols
                .iter()
                .any(|(name, _)| self.members.values().all(|m| m.protocols.iter().any(|(n, _)| n == name)))
    }

    /// Kafka's `selectProtocol`: among the protocols every member supports, each member votes
    /// for its first preference; most votes wins (ties: the first candidate in the leader's order).
    fn select_protocol(&self) -> Option<String> {
        let candidates: Vec<&String> = self
            .leader
            .as_ref()
            .and_then(|l| self.members.get(l))
            .or_else(|| self.members.values().next())?
            .protocols
            .iter()
            .map(|(n, _)| n)
            .filter(|n| self.members.values().all(|m| m.protocols.iter().any(|(x, _)| x == *n)))
            .collect();
        let mut votes: Vec<(&String, usize)> = candidates.iter().map(|c| (*c, 0)).collect();
        for m in self.members.values() {
            if let Some((name, _)) = m.protocols.iter().find(|(n, _)| candidates.contains(&n)) {
                if let Some(v) = votes.iter_mut().find(|(c, _)| *c == name) {
                    v.1 += 1;
                }
            }
        }
        let best = votes.iter().map(|(_, n)| *n).max()?;
        votes.iter().find(|(_, n)| *n == best).map(|(c, _)| (*c).clone())
    }

    fn all_joined(&self) -> bool {
        self.pending.is_empty() && self.members.values().all(|m| m.awaiting_join.is_some())
    }

    fn leader_is(&self, id: &str) -> bool {
        self.leader.as_deref() == Some(id)
    }

    fn generation_members(&self) -> Vec<JoinMember> {
        let proto = self.protocol_name.clone().unwrap_or_default();
        self.members
            .values()
            .map(|m| JoinMember {
                member_id: m.id.clone(),
                group_instance_id: m.instance_id.clone(),
                metadata: m.metadata(&proto),
            })
            .collect()
    }

    /// The JoinGroup answer for `member_id` in the current generation.
    fn join_result(&self, member_id: &str, with_members: bool) -> JoinResult {
        JoinResult {
            error: ec::NONE,
            generation_id: self.generation,
            protocol_type: self.protocol_type.clone(),
            protocol_name: self.protocol_name.clone(),
            leader: self.leader.clone().unwrap_or_default(),
            skip_assignment: false,
            member_id: member_id.to_string(),
            members: if with_members { self.generation_members() } else { Vec::new() },
        }
    }
}

pub struct Coordinator {
    groups: HashMap<String, Group>,
    pub config: GroupConfig,
    completions: Vec<(Waiter, Completion)>,
    next_seq: u64,
    /// Source of member ids (a random prefix per process plus a counter, like a UUID).
    id_prefix: String,
}

/// Kafka's `validateMember`: the static instance (if any) maps to this member id, and the
/// member is in the group.
fn check_member(g: &Group, member_id: &str, instance_id: Option<&str>) -> Result<(), i16> {
    if let Some(inst) = instance_id {
        match g.statics.get(inst) {
            None => return Err(ec::UNKNOWN_MEMBER_ID),
            Some(existing) if existing != member_id => return Err(ec::FENCED_INSTANCE_ID),
            Some(_) => {}
        }
    }
    if g.members.contains_key(member_id) {
        Ok(())
    } else {
        Err(ec::UNKNOWN_MEMBER_ID)
    }
}

impl Coordinator {
    pub fn new(config: GroupConfig) -> Self {
        Coordinator {
            groups: HashMap::new(),
            config,
            completions: Vec::new(),
            next_seq: 0,
            id_prefix: uuid::Uuid::new_v4().simple().to_string()[..12].to_string(),
        }
    }

    fn new_member_id(&mut self, client_id: &str, instance_id: Option<&str>) -> String {
        self.next_seq += 1;
        let base = instance_id.unwrap_or(client_id);
        format!("{base}-{}-{:08x}", self.id_prefix, self.next_seq)
    }

    pub fn group_count(&self) -> usize {
        self.groups.len()
    }

    pub fn member_count(&self) -> usize {
        self.groups.values().map(|g| g.members.len()).sum()
    }

    pub fn take_completions(&mut self) -> Vec<(Waiter, Completion)> {
        std::mem::take(&mut self.completions)
    }

    pub fn has_completions(&self) -> bool {
        !self.completions.is_empty()
    }

    pub fn state(&self, group_id: &str) -> Option<GroupState> {
        self.groups.get(group_id).map(|g| g.state)
    }

    pub fn generation(&self, group_id: &str) -> Option<i32> {
        self.groups.get(group_id).map(|g| g.generation)
    }

    /// JoinGroup.
    pub fn join(&mut self, req: JoinRequest, waiter: Waiter, now: Instant) -> Reply<JoinResult> {
        if req.group_id.is_empty() {
            return Reply::Now(JoinResult::error(ec::INVALID_GROUP_ID, &req.member_id));
        }
        if req.session_timeout_ms < self.config.session_timeout_ms_min
            || req.session_timeout_ms > self.config.session_timeout_ms_max
        {
            return Reply::Now(JoinResult::error(ec::INVALID_SESSION_TIMEOUT, &req.member_id));
        }
        if !self.groups.contains_key(&req.group_id) {
            if !req.member_id.is_empty() {
                return Reply::Now(JoinResult::error(ec::UNKNOWN_MEMBER_ID, &req.member_id));
            }
            if self.groups.len() >= self.config.groups_max {
                log::warn!(
                    "JoinGroup for new group {:?} refused: groups_max ({}) reached",
                    req.group_id,
                    self.config.groups_max
                );
                return Reply::Now(JoinResult::error(ec::COORDINATOR_NOT_AVAILABLE, &req.member_id));
            }
            let delay = Duration::from_millis(self.config.initial_rebalance_delay_ms);
            self.groups.insert(req.group_id.clone(), Group::new(delay));
        }
        let reply = if req.member_id.is_empty() {
            self.join_new_member(req, waiter, now)
        } else {
            self.join_known_member(req, waiter, now)
        };
        // A group created for a join that failed is dropped by the next tick.
        reply
    }

    fn join_new_member(&mut self, req: JoinRequest, waiter: Waiter, now: Instant) -> Reply<JoinResult> {
        let max = self.config.members_per_group_max;
        let Some(g) = self.groups.get(&req.group_id) else {
            return Reply::Now(JoinResult::error(ec::UNKNOWN_MEMBER_ID, ""));
        };
        if !g.supports(&req.protocol_type, &req.protocols) {
            return Reply::Now(JoinResult::error(ec::INCONSISTENT_GROUP_PROTOCOL, ""));
        }
        let existing_static = req.group_instance_id.as_ref().and_then(|i| g.statics.get(i)).cloned();
        if existing_static.is_none() && g.members.len() + g.pending.len() >= max {
            return Reply::Now(JoinResult::error(ec::GROUP_MAX_SIZE_REACHED, ""));
        }
        let new_id = self.new_member_id(&req.client_id, req.group_instance_id.as_deref());
        if let Some(old_id) = existing_static {
            return self.replace_static_member(req, old_id, new_id, waiter, now);
        }
        let g = self.groups.get_mut(&req.group_id).expect("checked above");
        if req.require_known_member_id && req.group_instance_id.is_none() {
            let deadline = now + Duration::from_millis(req.session_timeout_ms.max(0) as u64);
            g.pending.insert(new_id.clone(), deadline);
            return Reply::Now(JoinResult::error(ec::MEMBER_ID_REQUIRED, &new_id));
        }
        self.add_member(req, new_id, waiter, now);
        Reply::Later
    }

    fn add_member(&mut self, req: JoinRequest, id: String, waiter: Waiter, now: Instant) {
        self.next_seq += 1;
        let seq = self.next_seq;
        let Some(g) = self.groups.get_mut(&req.group_id) else { return };
        if g.members.is_empty() {
            g.protocol_type = Some(req.protocol_type.clone());
        }
        if g.leader.is_none() {
            g.leader = Some(id.clone());
        }
        if let Some(inst) = &req.group_instance_id {
            g.statics.insert(inst.clone(), id.clone());
        }
        g.members.insert(
            id.clone(),
            Member {
                id,
                instance_id: req.group_instance_id,
                client_id: req.client_id,
                client_host: req.client_host,
                session_timeout_ms: req.session_timeout_ms,
                rebalance_timeout_ms: req.rebalance_timeout_ms,
                protocols: req.protocols,
                assignment: Bytes::new(),
                awaiting_join: Some(waiter),
                awaiting_sync: None,
                session_deadline: now + Duration::from_millis(req.session_timeout_ms.max(0) as u64),
                joined_seq: seq,
            },
        );
        if g.initial_delay.is_some() {
            g.new_member_added = true;
        }
        Self::rebalance_or_complete(g, &mut self.completions, now);
    }

    /// After a member joined: start a rebalance, or finish the one in progress if everyone is in.
    fn rebalance_or_complete(g: &mut Group, out: &mut Vec<(Waiter, Completion)>, now: Instant) {
        match g.state {
            GroupState::PreparingRebalance => Self::try_complete_join(g, out, now),
            _ => Self::prepare_rebalance(g, out, now),
        }
    }

    fn replace_static_member(
        &mut self,
        req: JoinRequest,
        old_id: String,
        new_id: String,
        waiter: Waiter,
        now: Instant,
    ) -> Reply<JoinResult> {
        let out = &mut self.completions;
        let Some(g) = self.groups.get_mut(&req.group_id) else {
            return Reply::Now(JoinResult::error(ec::UNKNOWN_MEMBER_ID, ""));
        };
        let Some(mut m) = g.members.remove(&old_id) else {
            return Reply::Now(JoinResult::error(ec::UNKNOWN_MEMBER_ID, ""));
        };
        // The old incarnation is fenced: anything it was waiting for fails.
        if let Some(w) = m.awaiting_join.take() {
            out.push((w, Completion::Join(JoinResult::error(ec::FENCED_INSTANCE_ID, &old_id))));
        }
        if let Some(w) = m.awaiting_sync.take() {
            out.push((w, Completion::Sync(SyncResult::error(ec::FENCED_INSTANCE_ID))));
        }
        let protocols_changed = !m.same_protocols(&req.protocols);
        m.id = new_id.clone();
        m.client_id = req.client_id.clone();
        m.client_host = req.client_host.clone();
        m.session_timeout_ms = req.session_timeout_ms;
        m.rebalance_timeout_ms = req.rebalance_timeout_ms;
        m.protocols = req.protocols.clone();
        m.session_deadline = now + Duration::from_millis(req.session_timeout_ms.max(0) as u64);
        if let Some(inst) = &req.group_instance_id {
            g.statics.insert(inst.clone(), new_id.clone());
        }
        if g.leader.as_deref() == Some(old_id.as_str()) {
            g.leader = Some(new_id.clone());
        }
        if let Some(p) = g.pending_sync.iter_mut().find(|p| **p == old_id) {
            *p = new_id.clone();
        }
        let was_leader = g.leader_is(&new_id);
        match g.state {
            GroupState::Stable if !protocols_changed => {
                // KIP-345: a static member coming back with the same subscription gets the
                // current generation and its old assignment, no rebalance.
                let mut r = g.join_result(&new_id, was_leader && req.supports_skip_assignment);
                r.skip_assignment = was_leader && req.supports_skip_assignment;
                g.members.insert(new_id, m);
                Reply::Now(r)
            }
            GroupState::CompletingRebalance if !protocols_changed => {
                let r = g.join_result(&new_id, was_leader);
                g.members.insert(new_id, m);
                Reply::Now(r)
            }
            _ => {
                m.awaiting_join = Some(waiter);
                g.members.insert(new_id, m);
                Self::rebalance_or_complete(g, out, now);
                Reply::Later
            }
        }
    }

    fn join_known_member(&mut self, req: JoinRequest, waiter: Waiter, now: Instant) -> Reply<JoinResult> {
        let Some(g) = self.groups.get_mut(&req.group_id) else {
            return Reply::Now(JoinResult::error(ec::UNKNOWN_MEMBER_ID, &req.member_id));
        };
        if g.pending.remove(&req.member_id).is_some() {
            if !g.supports(&req.protocol_type, &req.protocols) {
                return Reply::Now(JoinResult::error(ec::INCONSISTENT_GROUP_PROTOCOL, &req.member_id));
            }
            let id = req.member_id.clone();
            self.add_member(req, id, waiter, now);
            return Reply::Later;
        }
        if let Err(e) = check_member(g, &req.member_id, req.group_instance_id.as_deref()) {
            return Reply::Now(JoinResult::error(e, &req.member_id));
        }
        // A member already in the group may change protocols only to ones the group can take.
        let others_support = {
            let others: Vec<&Member> = g.members.values().filter(|m| m.id != req.member_id).collect();
            others.is_empty()
                || (g.protocol_type.as_deref() == Some(req.protocol_type.as_str())
                    && req
                        .protocols
                        .iter()
                        .any(|(n, _)| others.iter().all(|m| m.protocols.iter().any(|(x, _)| x == n))))
        };
        if !others_support {
            return Reply::Now(JoinResult::error(ec::INCONSISTENT_GROUP_PROTOCOL, &req.member_id));
        }
        let out = &mut self.completions;
        let id = req.member_id.clone();
        let is_leader = g.leader_is(&id);
        let Some(m) = g.members.get(&id) else { return Reply::Now(JoinResult::error(ec::UNKNOWN_MEMBER_ID, &id)) };
        let protocols_changed = !m.same_protocols(&req.protocols);
        let update = |m: &mut Member, waiter: Option<Waiter>, out: &mut Vec<(Waiter, Completion)>| {
            m.protocols = req.protocols.clone();
            m.session_timeout_ms = req.session_timeout_ms;
            m.rebalance_timeout_ms = req.rebalance_timeout_ms;
            m.client_id = req.client_id.clone();
            m.client_host = req.client_host.clone();
            if let Some(old) = m.awaiting_join.take() {
                // A second JoinGroup from the same member replaces the first (Kafka answers the
                // old one with UNKNOWN_MEMBER_ID... the client has stopped waiting for it anyway).
                out.push((old, Completion::Join(JoinResult::error(ec::UNKNOWN_MEMBER_ID, &m.id))));
            }
            m.awaiting_join = waiter;
        };
        match g.state {
            GroupState::PreparingRebalance => {
                if let Some(m) = g.members.get_mut(&id) {
                    update(m, Some(waiter), out);
                }
                Self::try_complete_join(g, out, now);
                Reply::Later
            }
            GroupState::CompletingRebalance if !protocols_changed => {
                // The JoinGroup answer was lost: send it again.
                Reply::Now(g.join_result(&id, is_leader))
            }
            GroupState::Stable if !protocols_changed && !is_leader => Reply::Now(g.join_result(&id, false)),
            GroupState::CompletingRebalance | GroupState::Stable => {
                if let Some(m) = g.members.get_mut(&id) {
                    update(m, Some(waiter), out);
                }
                Self::prepare_rebalance(g, out, now);
                Reply::Later
            }
            GroupState::Empty => Reply::Now(JoinResult::error(ec::UNKNOWN_MEMBER_ID, &id)),
        }
    }

    fn prepare_rebalance(g: &mut Group, out: &mut Vec<(Waiter, Completion)>, now: Instant) {
        if g.state == GroupState::CompletingRebalance {
            // Members waiting for an assignment of a generation that will not happen.
            for m in g.members.values_mut() {
                m.assignment = Bytes::new();
                if let Some(w) = m.awaiting_sync.take() {
                    out.push((w, Completion::Sync(SyncResult::error(ec::REBALANCE_IN_PROGRESS))));
                }
            }
        }
        g.pending_sync.clear();
        g.sync_deadline = None;
        let initial = g.state == GroupState::Empty;
        g.state = GroupState::PreparingRebalance;
        let timeout = g.rebalance_timeout();
        g.join_deadline = Some(now + timeout);
        if initial && !g.initial_delay_config.is_zero() {
            // Kafka's InitialDelayedJoin: wait for more members before the first generation.
            g.new_member_added = false;
            let delay = g.initial_delay_config;
            g.initial_delay = Some(InitialDelay { next: now + delay, remaining: timeout.saturating_sub(delay) });
        }
        Self::try_complete_join(g, out, now);
    }

    fn try_complete_join(g: &mut Group, out: &mut Vec<(Waiter, Completion)>, now: Instant) {
        if g.state == GroupState::PreparingRebalance && g.initial_delay.is_none() && g.all_joined() {
            Self::complete_join(g, out, now);
        }
    }

    /// Ends the join phase: members that did not rejoin are removed, the generation advances and
    /// everyone waiting gets its JoinGroup answer (the leader with the member list).
    fn complete_join(g: &mut Group, out: &mut Vec<(Waiter, Completion)>, now: Instant) {
        let gone: Vec<String> =
            g.members.values().filter(|m| m.awaiting_join.is_none()).map(|m| m.id.clone()).collect();
        for id in gone {
            Self::remove_member_quietly(g, &id, out);
        }
        g.join_deadline = None;
        g.initial_delay = None;
        g.generation += 1;
        if g.members.is_empty() {
            g.state = GroupState::Empty;
            g.protocol_name = None;
            g.protocol_type = None;
            g.leader = None;
            return;
        }
        if g.leader.as_ref().is_none_or(|l| !g.members.contains_key(l)) {
            g.leader = g.members.values().min_by_key(|m| m.joined_seq).map(|m| m.id.clone());
        }
        g.protocol_name = g.select_protocol();
        g.state = GroupState::CompletingRebalance;
        g.pending_sync = g.members.keys().cloned().collect();
        g.sync_deadline = Some(now + g.rebalance_timeout());
        let leader = g.leader.clone().unwrap_or_default();
        let everyone = g.generation_members();
        let ids: Vec<String> = g.members.keys().cloned().collect();
        for id in ids {
            let base = g.join_result(&id, false);
            let Some(m) = g.members.get_mut(&id) else { continue };
            m.session_deadline = now + Duration::from_millis(m.session_timeout_ms.max(0) as u64);
            if let Some(w) = m.awaiting_join.take() {
                let mut r = base;
                if id == leader {
                    r.members = everyone.clone();
                }
                out.push((w, Completion::Join(r)));
            }
        }
        g.new_member_added = false;
    }

    /// Removes a member without changing the group's state (the caller does that).
    fn remove_member_quietly(g: &mut Group, id: &str, out: &mut Vec<(Waiter, Completion)>) {
        let Some(mut m) = g.members.remove(id) else { return };
        if let Some(w) = m.awaiting_join.take() {
            out.push((w, Completion::Join(JoinResult::error(ec::UNKNOWN_MEMBER_ID, id))));
        }
        if let Some(w) = m.awaiting_sync.take() {
            out.push((w, Completion::Sync(SyncResult::error(ec::UNKNOWN_MEMBER_ID))));
        }
        if let Some(inst) = &m.instance_id {
            if g.statics.get(inst).map(String::as_str) == Some(id) {
                g.statics.remove(inst);
            }
        }
        g.pending_sync.retain(|p| p != id);
        if g.leader_is(id) {
            g.leader = g.members.values().min_by_key(|m| m.joined_seq).map(|m| m.id.clone());
        }
    }

    /// Removes a member and moves the group on (Kafka's `removeMemberAndUpdateGroup`).
    fn remove_member(g: &mut Group, id: &str, out: &mut Vec<(Waiter, Completion)>, now: Instant) {
        Self::remove_member_quietly(g, id, out);
        match g.state {
            GroupState::Stable | GroupState::CompletingRebalance => Self::prepare_rebalance(g, out, now),
            GroupState::PreparingRebalance => Self::try_complete_join(g, out, now),
            GroupState::Empty => {}
        }
    }

    /// SyncGroup.
    pub fn sync(&mut self, req: SyncRequest, waiter: Waiter, now: Instant) -> Reply<SyncResult> {
        let Some(g) = self.groups.get_mut(&req.group_id) else {
            return Reply::Now(SyncResult::error(ec::UNKNOWN_MEMBER_ID));
        };
        if let Err(e) = check_member(g, &req.member_id, req.group_instance_id.as_deref()) {
            return Reply::Now(SyncResult::error(e));
        }
        if req.generation_id != g.generation {
            return Reply::Now(SyncResult::error(ec::ILLEGAL_GENERATION));
        }
        if req.protocol_type.as_ref().is_some_and(|t| Some(t) != g.protocol_type.as_ref())
            || req.protocol_name.as_ref().is_some_and(|n| Some(n) != g.protocol_name.as_ref())
        {
            return Reply::Now(SyncResult::error(ec::INCONSISTENT_GROUP_PROTOCOL));
        }
        let ok = |g: &Group, assignment: Bytes| SyncResult {
            error: ec::NONE,
            protocol_type: g.protocol_type.clone(),
            protocol_name: g.protocol_name.clone(),
            assignment,
        };
        match g.state {
            GroupState::Empty => Reply::Now(SyncResult::error(ec::UNKNOWN_MEMBER_ID)),
            GroupState::PreparingRebalance => Reply::Now(SyncResult::error(ec::REBALANCE_IN_PROGRESS)),
            GroupState::Stable => {
                g.pending_sync.retain(|p| *p != req.member_id);
                if g.pending_sync.is_empty() {
                    g.sync_deadline = None;
                }
                let Some(m) = g.members.get_mut(&req.member_id) else {
                    return Reply::Now(SyncResult::error(ec::UNKNOWN_MEMBER_ID));
                };
                m.session_deadline = now + Duration::from_millis(m.session_timeout_ms.max(0) as u64);
                let a = m.assignment.clone();
                Reply::Now(ok(g, a))
            }
            GroupState::CompletingRebalance => {
                g.pending_sync.retain(|p| *p != req.member_id);
                if g.pending_sync.is_empty() {
                    g.sync_deadline = None;
                }
                if let Some(m) = g.members.get_mut(&req.member_id) {
                    m.session_deadline = now + Duration::from_millis(m.session_timeout_ms.max(0) as u64);
                    if let Some(old) = m.awaiting_sync.replace(waiter) {
                        self.completions.push((old, Completion::Sync(SyncResult::error(ec::REBALANCE_IN_PROGRESS))));
                    }
                }
                if g.leader_is(&req.member_id) {
                    let mut by_member: HashMap<String, Bytes> = req.assignments.into_iter().collect();
                    for m in g.members.values_mut() {
                        m.assignment = by_member.remove(&m.id).unwrap_or_default();
                    }
                    g.state = GroupState::Stable;
                    let ids: Vec<String> = g.members.keys().cloned().collect();
                    for id in ids {
                        let r = {
                            let m = &g.members[&id];
                            ok(g, m.assignment.clone())
                        };
                        if let Some(m) = g.members.get_mut(&id) {
                            if let Some(w) = m.awaiting_sync.take() {
                                self.completions.push((w, Completion::Sync(r)));
                            }
                        }
                    }
                }
                Reply::Later
            }
        }
    }

    /// Heartbeat; returns the error code.
    pub fn heartbeat(
        &mut self,
        group_id: &str,
        generation: i32,
        member_id: &str,
        instance_id: Option<&str>,
        now: Instant,
    ) -> i16 {
        let Some(g) = self.groups.get_mut(group_id) else { return ec::UNKNOWN_MEMBER_ID };
        if let Err(e) = check_member(g, member_id, instance_id) {
            return e;
        }
        if generation != g.generation {
            return ec::ILLEGAL_GENERATION;
        }
        let state = g.state;
        let Some(m) = g.members.get_mut(member_id) else { return ec::UNKNOWN_MEMBER_ID };
        match state {
            GroupState::Empty => ec::UNKNOWN_MEMBER_ID,
            GroupState::PreparingRebalance => {
                m.session_deadline = now + Duration::from_millis(m.session_timeout_ms.max(0) as u64);
                ec::REBALANCE_IN_PROGRESS
            }
            GroupState::CompletingRebalance | GroupState::Stable => {
                m.session_deadline = now + Duration::from_millis(m.session_timeout_ms.max(0) as u64);
                ec::NONE
            }
        }
    }

    /// LeaveGroup for each `(member_id, group_instance_id)`; a per-member error code each, or a
    /// group-level error.
    pub fn leave(
        &mut self,
        group_id: &str,
        members: &[(String, Option<String>)],
        now: Instant,
    ) -> Result<Vec<i16>, i16> {
        let Some(g) = self.groups.get_mut(group_id) else { return Err(ec::UNKNOWN_MEMBER_ID) };
        let out = &mut self.completions;
        let mut errors = Vec::with_capacity(members.len());
        for (member_id, instance_id) in members {
            let target = match instance_id {
                Some(inst) => match g.statics.get(inst) {
                    None => Err(ec::UNKNOWN_MEMBER_ID),
                    Some(existing) if !member_id.is_empty() && existing != member_id => Err(ec::FENCED_INSTANCE_ID),
                    Some(existing) => Ok(existing.clone()),
                },
                None => Ok(member_id.clone()),
            };
            let code = match target {
                Err(e) => e,
                Ok(id) if g.pending.remove(&id).is_some() => {
                    Self::try_complete_join(g, out, now);
                    ec::NONE
                }
                Ok(id) if g.members.contains_key(&id) => {
                    Self::remove_member(g, &id, out, now);
                    ec::NONE
                }
                Ok(_) => ec::UNKNOWN_MEMBER_ID,
            };
            errors.push(code);
        }
        Ok(errors)
    }

    /// Checks an OffsetCommit against the group (Kafka's `validateOffsetCommit`); a member's
    /// commit also counts as a heartbeat. `Ok` when the offsets may be stored.
    pub fn validate_commit(
        &mut self,
        group_id: &str,
        generation: i32,
        member_id: &str,
        instance_id: Option<&str>,
        api_version: i16,
        now: Instant,
    ) -> Result<(), i16> {
        let Some(g) = self.groups.get_mut(group_id) else {
            // No live group: a "simple" consumer (generation −1) may commit; a member of a group
            // logferry does not know (e.g. after a restart) must rejoin.
            return if generation < 0 {
                Ok(())
            } else if api_version >= 9 {
                Err(ec::GROUP_ID_NOT_FOUND)
            } else {
                Err(ec::ILLEGAL_GENERATION)
            };
        };
        if generation < 0 && g.state == GroupState::Empty {
            return Ok(());
        }
        if generation >= 0 || !member_id.is_empty() || instance_id.is_some() {
            check_member(g, member_id, instance_id)?;
            if generation != g.generation {
                return Err(ec::ILLEGAL_GENERATION);
            }
        } else if g.state != GroupState::Empty {
            return Err(ec::UNKNOWN_MEMBER_ID);
        }
        if g.state == GroupState::CompletingRebalance {
            return Err(ec::REBALANCE_IN_PROGRESS);
        }
        if let Some(m) = g.members.get_mut(member_id) {
            m.session_deadline = now + Duration::from_millis(m.session_timeout_ms.max(0) as u64);
        }
        Ok(())
    }

    /// Groups with their protocol type and state, for ListGroups.
    pub fn list(&self) -> Vec<(String, String, GroupState)> {
        let mut v: Vec<_> = self
            .groups
            .iter()
            .map(|(id, g)| (id.clone(), g.protocol_type.clone().unwrap_or_default(), g.state))
            .collect();
        v.sort();
        v
    }

    /// DescribeGroups for one group; `None` when the coordinator does not know it.
    pub fn describe(&self, group_id: &str) -> Option<Described> {
        let g = self.groups.get(group_id)?;
        let stable = g.state == GroupState::Stable;
        let proto = g.protocol_name.clone().unwrap_or_default();
        Some(Described {
            state: g.state,
            protocol_type: g.protocol_type.clone().unwrap_or_default(),
            protocol_name: if stable { proto.clone() } else { String::new() },
            members: g
                .members
                .values()
                .map(|m| DescribedMember {
                    member_id: m.id.clone(),
                    group_instance_id: m.instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    metadata: if stable { m.metadata(&proto) } else { Bytes::new() },
                    assignment: if stable { m.assignment.clone() } else { Bytes::new() },
                })
                .collect(),
        })
    }

    /// Runs every timer that is due: initial rebalance delays, join (rebalance) timeouts,
    /// SyncGroup timeouts, expired sessions and expired pending member ids. Empty groups with
    /// no members are dropped (their offsets live in the store).
    pub fn tick(&mut self, now: Instant) {
        let out = &mut self.completions;
        for g in self.groups.values_mut() {
            // Pending member ids that never came back.
            let before = g.pending.len();
            g.pending.retain(|_, d| *d > now);
            if g.pending.len() != before {
                Self::try_complete_join(g, out, now);
            }
            // Sessions.
            let expired: Vec<String> = g
                .members
                .values()
                .filter(|m| m.awaiting_join.is_none() && m.awaiting_sync.is_none() && m.session_deadline <= now)
                .map(|m| m.id.clone())
                .collect();
            for id in expired {
                log::info!("group member {id} expired (no heartbeat within its session timeout)");
                Self::remove_member(g, &id, out, now);
            }
            // The initial delay of a new group: wait `delay` more while members keep arriving.
            if let Some(d) = &mut g.initial_delay {
                if now >= d.next {
                    if g.new_member_added && !d.remaining.is_zero() {
                        g.new_member_added = false;
                        let step = g.initial_delay_config.min(d.remaining);
                        d.remaining -= step;
                        d.next = now + step;
                    } else {
                        g.initial_delay = None;
                        Self::complete_join(g, out, now);
                    }
                }
            }
            if g.state == GroupState::PreparingRebalance
                && g.initial_delay.is_none()
                && g.join_deadline.is_some_and(|d| now >= d)
            {
                Self::complete_join(g, out, now);
            }
            if let Some(d) = g.sync_deadline {
                if now >= d && matches!(g.state, GroupState::CompletingRebalance | GroupState::Stable) {
                    g.sync_deadline = None;
                    let late = std::mem::take(&mut g.pending_sync);
                    if !late.is_empty() {
                        for id in &late {
                            log::info!("group member {id} removed: no SyncGroup within the rebalance timeout");
                            Self::remove_member_quietly(g, id, out);
                        }
                        Self::prepare_rebalance(g, out, now);
                    }
                }
            }
        }
        self.groups.retain(|_, g| !(g.state == GroupState::Empty && g.members.is_empty() && g.pending.is_empty()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SESSION_MS: i32 = 10_000;
    const REBALANCE_MS: i32 = 30_000;
    const INITIAL_MS: u64 = 100;

    fn coord(delay_ms: u64) -> Coordinator {
        Coordinator::new(GroupConfig { initial_rebalance_delay_ms: delay_ms, ..GroupConfig::default() })
    }

    fn jreq(member: &str, instance: Option<&str>, proto: &[(&str, &[u8])]) -> JoinRequest {
        JoinRequest {
            group_id: "g".into(),
            session_timeout_ms: SESSION_MS,
            rebalance_timeout_ms: REBALANCE_MS,
            member_id: member.into(),
            group_instance_id: instance.map(str::to_string),
            protocol_type: "consumer".into(),
            protocols: proto.iter().map(|(n, m)| (n.to_string(), Bytes::copy_from_slice(m))).collect(),
            client_id: "client".into(),
            client_host: "/127.0.0.1".into(),
            require_known_member_id: true,
            supports_skip_assignment: true,
        }
    }

    fn w(serial: u64) -> Waiter {
        Waiter { conn: serial as usize, serial }
    }

    const RANGE: &[(&str, &[u8])] = &[("range", b"sub-a")];

    /// A member id through the MEMBER_ID_REQUIRED round trip, then its join (answered later).
    fn join_dynamic(c: &mut Coordinator, serial: u64, now: Instant) -> String {
        let Reply::Now(r) = c.join(jreq("", None, RANGE), w(serial), now) else { panic!("first join answers at once") };
        assert_eq!(r.error, ec::MEMBER_ID_REQUIRED);
        assert!(!r.member_id.is_empty());
        assert_eq!(c.join(jreq(&r.member_id, None, RANGE), w(serial), now), Reply::Later);
        r.member_id
    }

    fn joins(c: &mut Coordinator) -> Vec<(Waiter, JoinResult)> {
        c.take_completions()
            .into_iter()
            .filter_map(|(w, x)| match x {
                Completion::Join(r) => Some((w, r)),
                Completion::Sync(_) => None,
            })
            .collect()
    }

    fn syncs(c: &mut Coordinator) -> Vec<(Waiter, SyncResult)> {
        c.take_completions()
            .into_iter()
            .filter_map(|(w, x)| match x {
                Completion::Sync(r) => Some((w, r)),
                Completion::Join(_) => None,
            })
            .collect()
    }

    fn sreq(member: &str, generation: i32, assignments: &[(&str, &[u8])]) -> SyncRequest {
        SyncRequest {
            group_id: "g".into(),
            generation_id: generation,
            member_id: member.into(),
            group_instance_id: None,
            protocol_type: Some("consumer".into()),
            protocol_name: Some("range".into()),
            assignments: assignments.iter().map(|(m, a)| (m.to_string(), Bytes::copy_from_slice(a))).collect(),
        }
    }

    /// Two dynamic members through join and sync; returns (leader, follower) at generation 1.
    fn stable_pair(c: &mut Coordinator, t0: Instant) -> (String, String) {
        let a = join_dynamic(c, 1, t0);
        let b = join_dynamic(c, 2, t0);
        // The initial delay (INITIAL_MS) runs twice: b arrived during the first.
        c.tick(t0 + Duration::from_millis(INITIAL_MS));
        assert!(joins(c).is_empty());
        c.tick(t0 + Duration::from_millis(2 * INITIAL_MS));
        let j = joins(c);
        assert_eq!(j.len(), 2);
        let leader = j[0].1.leader.clone();
        assert_eq!(leader, a, "the first member leads");
        for (_, r) in &j {
            assert_eq!((r.error, r.generation_id, r.protocol_name.as_deref()), (ec::NONE, 1, Some("range")));
            assert_eq!(r.members.len(), if r.member_id == leader { 2 } else { 0 });
        }
        assert_eq!(c.sync(sreq(&b, 1, &[]), w(4), t0), Reply::Later);
        assert_eq!(c.state("g"), Some(GroupState::CompletingRebalance));
        assert_eq!(c.sync(sreq(&a, 1, &[(&a, b"for-a"), (&b, b"for-b")]), w(3), t0), Reply::Later);
        let s = syncs(c);
        assert_eq!(s.len(), 2);
        for (wt, r) in s {
            assert_eq!(r.error, ec::NONE);
            let want: &[u8] = if wt == w(3) { b"for-a" } else { b"for-b" };
            assert_eq!(&r.assignment[..], want, "the leader's assignment is passed through untouched");
        }
        assert_eq!(c.state("g"), Some(GroupState::Stable));
        (a, b)
    }

    #[test]
    fn join_sync_and_the_initial_delay() {
        let t0 = Instant::now();
        let mut c = coord(3_000);
        let a = join_dynamic(&mut c, 1, t0);
        c.tick(t0 + Duration::from_millis(2_900));
        assert!(joins(&mut c).is_empty(), "a new group waits the initial delay");
        let b = join_dynamic(&mut c, 2, t0 + Duration::from_millis(2_950));
        c.tick(t0 + Duration::from_millis(3_000));
        assert!(joins(&mut c).is_empty(), "a member arriving during the delay extends it");
        c.tick(t0 + Duration::from_millis(6_000));
        let j = joins(&mut c);
        assert_eq!(j.len(), 2);
        assert!(j.iter().all(|(_, r)| r.generation_id == 1 && r.leader == a));
        assert!(j.iter().any(|(_, r)| r.member_id == b));
    }

    #[test]
    fn heartbeat_errors_and_session_expiry() {
        let t0 = Instant::now();
        let mut c = coord(INITIAL_MS);
        let (a, b) = stable_pair(&mut c, t0);
        assert_eq!(c.heartbeat("g", 1, &a, None, t0), ec::NONE);
        assert_eq!(c.heartbeat("g", 0, &a, None, t0), ec::ILLEGAL_GENERATION);
        assert_eq!(c.heartbeat("g", 1, "nobody", None, t0), ec::UNKNOWN_MEMBER_ID);
        assert_eq!(c.heartbeat("other", 1, &a, None, t0), ec::UNKNOWN_MEMBER_ID);
        // b stops heartbeating; a keeps going. b's session ends; a is told to rejoin.
        let step = Duration::from_millis(3_000);
        let mut now = t0;
        for _ in 0..3 {
            now += step;
            assert_eq!(c.heartbeat("g", 1, &a, None, now), ec::NONE);
            c.tick(now);
        }
        now += step;
        c.tick(now);
        assert_eq!(c.state("g"), Some(GroupState::PreparingRebalance));
        assert_eq!(c.heartbeat("g", 1, &a, None, now), ec::REBALANCE_IN_PROGRESS);
        assert_eq!(c.heartbeat("g", 1, &b, None, now), ec::UNKNOWN_MEMBER_ID);
        assert_eq!(c.join(jreq(&a, None, RANGE), w(9), now), Reply::Later);
        let j = joins(&mut c);
        assert_eq!(j.len(), 1);
        assert_eq!((j[0].1.generation_id, j[0].1.members.len()), (2, 1));
    }

    #[test]
    fn rebalance_timeout_drops_members_that_do_not_rejoin() {
        let t0 = Instant::now();
        let mut c = coord(INITIAL_MS);
        let (a, b) = stable_pair(&mut c, t0);
        // A third member joins: a rebalance starts; only the newcomer and a rejoin.
        let n = join_dynamic(&mut c, 7, t0 + Duration::from_millis(10));
        assert_eq!(c.state("g"), Some(GroupState::PreparingRebalance));
        assert_eq!(c.join(jreq(&a, None, RANGE), w(8), t0 + Duration::from_millis(20)), Reply::Later);
        // b keeps heartbeating (REBALANCE_IN_PROGRESS) but never rejoins.
        let mut now = t0;
        while now < t0 + Duration::from_millis(REBALANCE_MS as u64 - 100) {
            now += Duration::from_millis(1_000);
            assert_eq!(c.heartbeat("g", 1, &b, None, now), ec::REBALANCE_IN_PROGRESS);
            c.tick(now);
            assert!(joins(&mut c).is_empty());
        }
        c.tick(t0 + Duration::from_millis(REBALANCE_MS as u64 + 100));
        let j = joins(&mut c);
        assert_eq!(j.len(), 2);
        let leader = j.iter().find(|(_, r)| !r.members.is_empty()).expect("a leader").1.clone();
        let ids: Vec<&str> = leader.members.iter().map(|m| m.member_id.as_str()).collect();
        assert!(ids.contains(&a.as_str()) && ids.contains(&n.as_str()) && !ids.contains(&b.as_str()));
        assert_eq!(leader.generation_id, 2);
        assert_eq!(c.heartbeat("g", 2, &b, None, now), ec::UNKNOWN_MEMBER_ID);
    }

    #[test]
    fn commits_are_checked_against_the_generation_and_state() {
        let t0 = Instant::now();
        let mut c = coord(INITIAL_MS);
        // A group logferry does not know: simple consumers may commit, members may not.
        assert_eq!(c.validate_commit("simple", -1, "", None, 9, t0), Ok(()));
        assert_eq!(c.validate_commit("lost", 5, "m", None, 9, t0), Err(ec::GROUP_ID_NOT_FOUND));
        assert_eq!(c.validate_commit("lost", 5, "m", None, 8, t0), Err(ec::ILLEGAL_GENERATION));
        let (a, b) = stable_pair(&mut c, t0);
        assert_eq!(c.validate_commit("g", 1, &a, None, 9, t0), Ok(()));
        assert_eq!(c.validate_commit("g", 0, &a, None, 9, t0), Err(ec::ILLEGAL_GENERATION));
        assert_eq!(c.validate_commit("g", 1, "stranger", None, 9, t0), Err(ec::UNKNOWN_MEMBER_ID));
        assert_eq!(c.validate_commit("g", -1, "", None, 9, t0), Err(ec::UNKNOWN_MEMBER_ID));
        // A rebalance in its join phase still takes commits of the current generation (the
        // eager protocol commits before rejoining) ...
        assert_eq!(c.join(jreq(&a, None, &[("range", b"new-subscription")]), w(5), t0), Reply::Later);
        assert_eq!(c.state("g"), Some(GroupState::PreparingRebalance));
        assert_eq!(c.validate_commit("g", 1, &b, None, 9, t0), Ok(()));
        // ... but not while the assignment is being handed out.
        assert_eq!(c.join(jreq(&b, None, RANGE), w(6), t0), Reply::Later);
        assert_eq!(c.state("g"), Some(GroupState::CompletingRebalance));
        assert_eq!(c.validate_commit("g", 2, &b, None, 9, t0), Err(ec::REBALANCE_IN_PROGRESS));
        assert_eq!(c.sync(sreq(&b, 1, &[]), w(7), t0), Reply::Now(SyncResult::error(ec::ILLEGAL_GENERATION)));
    }

    #[test]
    fn static_member_rejoins_without_a_rebalance_and_fences_its_old_id() {
        let t0 = Instant::now();
        let mut c = coord(0);
        let Reply::Later = c.join(jreq("", Some("inst-1"), RANGE), w(1), t0) else { panic!("static joins wait") };
        let j = joins(&mut c);
        let old = j[0].1.member_id.clone();
        assert_eq!(c.sync(sreq(&old, 1, &[(&old, b"mine")]), w(2), t0), Reply::Later);
        assert_eq!(syncs(&mut c)[0].1.assignment, Bytes::from_static(b"mine"));
        // The process restarts and comes back with the same instance id and no member id.
        let Reply::Now(r) = c.join(jreq("", Some("inst-1"), RANGE), w(3), t0) else { panic!("answered at once") };
        assert_eq!((r.error, r.generation_id), (ec::NONE, 1), "same generation: no rebalance");
        assert_ne!(r.member_id, old);
        assert!(r.skip_assignment, "the static leader is told to skip the assignment (v9)");
        assert_eq!(c.state("g"), Some(GroupState::Stable));
        let mut s = sreq(&r.member_id, 1, &[]);
        s.group_instance_id = Some("inst-1".into());
        assert_eq!(
            c.sync(s, w(4), t0),
            Reply::Now(SyncResult { assignment: Bytes::from_static(b"mine"), ..ok_sync() })
        );
        assert_eq!(c.heartbeat("g", 1, &old, Some("inst-1"), t0), ec::FENCED_INSTANCE_ID);
        assert_eq!(c.heartbeat("g", 1, &r.member_id, Some("inst-1"), t0), ec::NONE);
    }

    fn ok_sync() -> SyncResult {
        SyncResult {
            error: ec::NONE,
            protocol_type: Some("consumer".into()),
            protocol_name: Some("range".into()),
            assignment: Bytes::new(),
        }
    }

    #[test]
    fn leave_rebalances_and_the_last_leave_empties_the_group() {
        let t0 = Instant::now();
        let mut c = coord(INITIAL_MS);
        let (a, b) = stable_pair(&mut c, t0);
        assert_eq!(c.leave("g", &[(b.clone(), None)], t0), Ok(vec![ec::NONE]));
        assert_eq!(c.leave("g", &[("nobody".into(), None)], t0), Ok(vec![ec::UNKNOWN_MEMBER_ID]));
        assert_eq!(c.leave("none", &[(a.clone(), None)], t0), Err(ec::UNKNOWN_MEMBER_ID));
        assert_eq!(c.state("g"), Some(GroupState::PreparingRebalance));
        assert_eq!(c.join(jreq(&a, None, RANGE), w(5), t0), Reply::Later);
        let j = joins(&mut c);
        assert_eq!((j[0].1.generation_id, j[0].1.leader.as_str(), j[0].1.members.len()), (2, a.as_str(), 1));
        assert_eq!(c.leave("g", &[(a.clone(), None)], t0), Ok(vec![ec::NONE]));
        assert_eq!(c.state("g"), Some(GroupState::Empty));
        assert_eq!(c.generation("g"), Some(3));
        c.tick(t0);
        assert_eq!(c.state("g"), None, "an empty group without members is forgotten");
    }

    #[test]
    fn a_member_that_never_syncs_is_removed() {
        let t0 = Instant::now();
        let mut c = coord(INITIAL_MS);
        let a = join_dynamic(&mut c, 1, t0);
        let b = join_dynamic(&mut c, 2, t0);
        c.tick(t0 + Duration::from_millis(INITIAL_MS));
        c.tick(t0 + Duration::from_millis(2 * INITIAL_MS));
        assert_eq!(joins(&mut c).len(), 2, "{b} joined too");
        // The follower syncs and waits; the leader never sends its assignment.
        assert_eq!(c.sync(sreq(&b, 1, &[]), w(3), t0), Reply::Later);
        assert!(syncs(&mut c).is_empty());
        c.tick(t0 + Duration::from_millis(SESSION_MS as u64 / 2));
        assert!(c.take_completions().is_empty());
        c.tick(t0 + Duration::from_millis(2 * INITIAL_MS + REBALANCE_MS as u64 + 1));
        // The leader is removed, the waiting follower is told to rejoin, and the group rebalances.
        let out = c.take_completions();
        assert!(
            out.iter()
                .any(|(w0, x)| *w0 == w(3) && matches!(x, Completion::Sync(r) if r.error == ec::REBALANCE_IN_PROGRESS)),
            "{out:?}"
        );
        assert_eq!(c.state("g"), Some(GroupState::PreparingRebalance));
        assert_eq!(c.heartbeat("g", 1, &a, None, t0), ec::UNKNOWN_MEMBER_ID);
        assert_eq!(c.heartbeat("g", 1, &b, None, t0), ec::REBALANCE_IN_PROGRESS);
    }

    #[test]
    fn limits_and_protocol_checks() {
        let t0 = Instant::now();
        let mut c = Coordinator::new(GroupConfig {
            members_per_group_max: 1,
            groups_max: 1,
            initial_rebalance_delay_ms: 0,
            ..GroupConfig::default()
        });
        let _a = join_dynamic(&mut c, 1, t0);
        let Reply::Now(r) = c.join(jreq("", None, RANGE), w(2), t0) else { panic!() };
        assert_eq!(r.error, ec::GROUP_MAX_SIZE_REACHED);
        let mut other = jreq("", None, RANGE);
        other.group_id = "second".into();
        let Reply::Now(r) = c.join(other, w(3), t0) else { panic!() };
        assert_eq!(r.error, ec::COORDINATOR_NOT_AVAILABLE);
        let mut bad = jreq("", None, RANGE);
        bad.session_timeout_ms = 10;
        let Reply::Now(r) = c.join(bad, w(4), t0) else { panic!() };
        assert_eq!(r.error, ec::INVALID_SESSION_TIMEOUT);
        let mut c = coord(0);
        let _a = join_dynamic(&mut c, 1, t0);
        let Reply::Now(r) = c.join(jreq("", None, &[("roundrobin", b"")]), w(5), t0) else { panic!() };
        assert_eq!(r.error, ec::INCONSISTENT_GROUP_PROTOCOL);
    }

    #[test]
    fn protocol_vote_prefers_what_most_members_rank_first() {
        let t0 = Instant::now();
        let mut c = coord(0);
        let both_rr: &[(&str, &[u8])] = &[("roundrobin", b"1"), ("range", b"2")];
        let both_range: &[(&str, &[u8])] = &[("range", b"3"), ("roundrobin", b"4")];
        let Reply::Now(r) = c.join(jreq("", None, both_range), w(1), t0) else { panic!() };
        let a = r.member_id;
        // Both are in the group before the join phase can end: b joins before a's rejoin.
        let Reply::Now(r) = c.join(jreq("", None, both_rr), w(2), t0) else { panic!() };
        let b = r.member_id;
        let Reply::Now(r) = c.join(jreq("", None, both_rr), w(3), t0) else { panic!() };
        let d = r.member_id;
        assert_eq!(c.join(jreq(&b, None, both_rr), w(2), t0), Reply::Later);
        assert_eq!(c.join(jreq(&d, None, both_rr), w(3), t0), Reply::Later);
        let _ = joins(&mut c);
        assert_eq!(c.join(jreq(&a, None, both_range), w(1), t0), Reply::Later);
        let j = joins(&mut c);
        assert!(j.iter().all(|(_, r)| r.protocol_name.as_deref() == Some("roundrobin")), "{j:?}");
    }
}
