//! The KIP-848 consumer group protocol's coordinator, sans I/O: heartbeats and `now` in, member
//! epochs and assignments out.
//!
//! Owns the groups of `group.protocol=consumer` members: the group epoch, the target assignment
//! the server-side assignor computes for it, and per member its epoch, its current assignment,
//! the partitions it must still revoke and its session and revocation timers. It follows the
//! broker's `GroupMetadataManager.consumerGroupHeartbeat` and `CurrentAssignmentBuilder`
//! (`group-coordinator/…/modern/consumer/`):
//!
//! ```text
//!   member heartbeat ──▶ validate (request, epoch) ──▶ update subscription / timers
//!        │                                                    │ changed membership, subscription
//!        │                                                    ▼ or topic metadata
//!        │                                          group epoch + 1, assignor → target
//!        ▼
//!   reconcile the member toward the target:
//!       STABLE ──(target moved)──▶ UNREVOKED_PARTITIONS ──(client no longer owns them)──┐
//!         ▲                          keeps its epoch,                                   │
//!         │                          gives partitions up first                          ▼
//!         └──────(all released)──── UNRELEASED_PARTITIONS ◀──(new ones still owned by others)
//!                                    at the target epoch, holds what is free
//! ```
//!
//! A partition is handed to a member only once no other member holds it (assigned or pending
//! revocation), so two members never own one partition. Sessions expire after
//! `session_timeout_ms` without a heartbeat; a member that does not revoke within its rebalance
//! timeout is fenced (removed). Membership is not persisted, as in the classic coordinator:
//! after a restart members get UNKNOWN_MEMBER_ID, rejoin with epoch 0 and resume from their
//! committed offsets. Assignors (`uniform`, the default, and `range`) are in [`assign`].
//!
//! Departures from the broker, each because logferry keeps no group state of its own beyond
//! offsets: a heartbeat for a group this coordinator does not know (after a restart) is
//! UNKNOWN_MEMBER_ID rather than GROUP_ID_NOT_FOUND, so clients rejoin instead of failing; empty
//! groups are dropped (their offsets stay in the store and list as Empty); classic members may
//! not join a live consumer-protocol group (INCONSISTENT_GROUP_PROTOCOL; the broker's online
//! migration between the protocols is not built); `range` is not sticky across rebalances;
//! OffsetCommit needs the member's current epoch exactly (the broker also accepts an older epoch
//! for partitions assigned before it).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

use uuid::Uuid;

use super::error_code as ec;

/// Partitions by topic id.
pub type Partitions = BTreeMap<Uuid, BTreeSet<i32>>;

/// The assignors this coordinator runs, the first the default (the broker's
/// `group.consumer.assignors` default `uniform,range`).
pub const ASSIGNORS: [&str; 2] = ["uniform", "range"];

/// How often regex subscriptions are matched again against the topic names (the broker
/// refreshes them asynchronously, too).
pub const REGEX_REFRESH_MS: u64 = 1_000;

/// What the coordinator needs to know of the topics members subscribe to.
pub trait TopicSource {
    /// Topic id and partition count of a topic, `None` if it does not exist.
    fn topic(&self, name: &str) -> Option<(Uuid, i32)>;
    /// Every topic name (for regular-expression subscriptions); internal topics excluded.
    fn names(&self) -> Vec<String>;
}

/// Timeouts of the consumer protocol, each with its unit last (the broker's
/// `group.consumer.*` configs).
#[derive(Clone, Debug)]
pub struct ConsumerGroupConfig {
    pub session_timeout_ms: u64,
    pub heartbeat_interval_ms: u64,
    pub groups_max: usize,
    pub members_per_group_max: usize,
}

impl Default for ConsumerGroupConfig {
    fn default() -> Self {
        ConsumerGroupConfig {
            session_timeout_ms: 45_000,
            heartbeat_interval_ms: 5_000,
            groups_max: 10_000,
            members_per_group_max: 1_000,
        }
    }
}

/// One ConsumerGroupHeartbeat, already decoded. `None` fields mean "unchanged".
#[derive(Clone, Debug, Default)]
pub struct Heartbeat {
    pub group_id: String,
    /// Empty only for a v0 join (the coordinator then makes one up).
    pub member_id: String,
    pub member_epoch: i32,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    /// −1: unchanged.
    pub rebalance_timeout_ms: i32,
    pub subscribed_topic_names: Option<Vec<String>>,
    pub subscribed_topic_regex: Option<String>,
    pub server_assignor: Option<String>,
    /// The partitions the client owns, `None` when unchanged since its last heartbeat.
    pub owned: Option<Partitions>,
    pub client_id: String,
    pub client_host: String,
}

/// The answer to a heartbeat.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct HeartbeatAnswer {
    pub error_code: i16,
    pub error_message: Option<String>,
    /// Empty in an error answer.
    pub member_id: String,
    pub member_epoch: i32,
    pub heartbeat_interval_ms: i32,
    /// The member's whole assignment, `None` when unchanged since the last answer.
    pub assignment: Option<Partitions>,
}

impl HeartbeatAnswer {
    /// An error answer carries no member id, epoch or interval, as the broker's.
    fn error(code: i16, message: impl Into<String>, _member_id: &str) -> Self {
        HeartbeatAnswer { error_code: code, error_message: Some(message.into()), ..HeartbeatAnswer::default() }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemberState {
    Stable,
    UnrevokedPartitions,
    UnreleasedPartitions,
}

/// The states ListGroups and ConsumerGroupDescribe show (`ConsumerGroup.ConsumerGroupState`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConsumerGroupState {
    Empty,
    Assigning,
    Reconciling,
    Stable,
}

impl ConsumerGroupState {
    pub fn name(self) -> &'static str {
        match self {
            ConsumerGroupState::Empty => "Empty",
            ConsumerGroupState::Assigning => "Assigning",
            ConsumerGroupState::Reconciling => "Reconciling",
            ConsumerGroupState::Stable => "Stable",
        }
    }
}

#[derive(Clone, Debug)]
struct Member {
    id: String,
    instance_id: Option<String>,
    rack_id: Option<String>,
    client_id: String,
    client_host: String,
    epoch: i32,
    previous_epoch: i32,
    state: MemberState,
    assigned: Partitions,
    pending_revocation: Partitions,
    names: Vec<String>,
    regex: Option<String>,
    server_assignor: Option<String>,
    rebalance_timeout_ms: i32,
    session_deadline: Instant,
    /// Set while partitions wait to be revoked: the member is fenced when it passes.
    revocation_deadline: Option<Instant>,
}

/// A member as ConsumerGroupDescribe shows it.
#[derive(Clone, Debug, PartialEq)]
pub struct DescribedMember {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub member_epoch: i32,
    pub client_id: String,
    pub client_host: String,
    pub subscribed_topic_names: Vec<String>,
    pub subscribed_topic_regex: Option<String>,
    pub assignment: Partitions,
    pub target_assignment: Partitions,
}

#[derive(Clone, Debug, PartialEq)]
pub struct DescribedGroup {
    pub state: ConsumerGroupState,
    pub group_epoch: i32,
    pub assignment_epoch: i32,
    pub assignor_name: String,
    pub members: Vec<DescribedMember>,
    /// Topic names by id, for the assignments.
    pub topic_names: BTreeMap<Uuid, String>,
}

#[derive(Debug, Default)]
struct Group {
    epoch: i32,
    assignment_epoch: i32,
    target: BTreeMap<String, Partitions>,
    members: BTreeMap<String, Member>,
    /// The subscribed topics' (id, partition count) when the group epoch last moved.
    subscribed: BTreeMap<String, (Uuid, i32)>,
    /// Who holds each partition (assigned or pending revocation).
    owners: HashMap<(Uuid, i32), String>,
    /// The topic names each member regex matched when last checked, and when that was.
    regex_matches: BTreeMap<String, BTreeSet<String>>,
    regex_checked: Option<Instant>,
}

impl Group {
    fn state(&self) -> ConsumerGroupState {
        if self.members.is_empty() {
            ConsumerGroupState::Empty
        } else if self.epoch > self.assignment_epoch {
            ConsumerGroupState::Assigning
        } else if self.members.values().any(|m| m.state != MemberState::Stable || m.epoch != self.assignment_epoch) {
            ConsumerGroupState::Reconciling
        } else {
            ConsumerGroupState::Stable
        }
    }

    /// The assignor the members ask for: the most common preference, else the default.
    fn assignor(&self) -> &'static str {
        let mut votes: BTreeMap<&str, usize> = BTreeMap::new();
        for m in self.members.values() {
            if let Some(a) = m.server_assignor.as_deref() {
                *votes.entry(a).or_default() += 1;
            }
        }
        let best = votes.iter().max_by_key(|(_, n)| **n).map(|(a, _)| *a);
        ASSIGNORS.iter().copied().find(|a| Some(*a) == best).unwrap_or(ASSIGNORS[0])
    }

    /// The topics each member subscribes to, resolved against what exists now. Names are looked
    /// up on every call; each distinct regex is compiled and matched against every topic name
    /// only when the set of regexes changed or [`REGEX_REFRESH_MS`] has passed, so a heartbeat
    /// does not cost a walk of every topic per member.
    fn resolve(
        &mut self,
        topics: &dyn TopicSource,
        regexes_cache: &mut Regexes,
        now: Instant,
    ) -> BTreeMap<String, (Uuid, i32)> {
        let regexes: BTreeSet<&String> = self.members.values().filter_map(|m| m.regex.as_ref()).collect();
        let stale = self.regex_checked.is_none_or(|t| now.duration_since(t) >= Duration::from_millis(REGEX_REFRESH_MS));
        if stale || !regexes.iter().copied().eq(self.regex_matches.keys()) {
            let names = if regexes.is_empty() { Vec::new() } else { topics.names() };
            self.regex_matches = regexes
                .into_iter()
                .map(|r| {
                    let matched = match regexes_cache.get(r) {
                        Some(re) => names.iter().filter(|n| re.is_match(n)).cloned().collect(),
                        None => BTreeSet::new(),
                    };
                    (r.clone(), matched)
                })
                .collect();
            self.regex_checked = Some(now);
        }
        let mut out = BTreeMap::new();
        for m in self.members.values() {
            let by_regex = m.regex.as_ref().and_then(|r| self.regex_matches.get(r)).into_iter().flatten();
            for n in m.names.iter().chain(by_regex) {
                if let Some(t) = topics.topic(n) {
                    out.insert(n.clone(), t);
                }
            }
        }
        out
    }

    fn member_topics(&self, m: &Member) -> BTreeSet<Uuid> {
        let by_regex = m.regex.as_ref().and_then(|r| self.regex_matches.get(r));
        self.subscribed
            .iter()
            .filter(|(n, _)| m.names.contains(n) || by_regex.is_some_and(|set| set.contains(*n)))
            .map(|(_, (id, _))| *id)
            .collect()
    }

    fn compute_target(&mut self) {
        let subs: BTreeMap<String, BTreeSet<Uuid>> =
            self.members.values().map(|m| (m.id.clone(), self.member_topics(m))).collect();
        let counts: BTreeMap<Uuid, i32> = self.subscribed.values().copied().collect();
        self.target = match self.assignor() {
            "range" => assign::range(&subs, &counts),
            _ => assign::uniform(&subs, &counts, &self.target),
        };
        self.assignment_epoch = self.epoch;
    }

    fn release(&mut self, member_id: &str) {
        self.owners.retain(|_, owner| owner != member_id);
    }

    fn take_ownership(&mut self, m: &Member) {
        for (t, ps) in m.assigned.iter().chain(m.pending_revocation.iter()) {
            for p in ps {
                self.owners.insert((*t, *p), m.id.clone());
            }
        }
    }

    /// Moves `m` toward its target (`CurrentAssignmentBuilder.build`).
    fn reconcile(&mut self, m: &mut Member, owned: Option<&Partitions>, now: Instant) {
        let still_owns = |pending: &Partitions| match owned {
            None => true,
            Some(o) => pending.iter().any(|(t, ps)| o.get(t).is_some_and(|os| !os.is_disjoint(ps))),
        };
        match m.state {
            MemberState::Stable if m.epoch == self.assignment_epoch => return,
            MemberState::UnrevokedPartitions if still_owns(&m.pending_revocation) => return,
            _ => {}
        }
        let target = self.target.get(&m.id).cloned().unwrap_or_default();
        let mut kept = Partitions::new();
        let mut revoke = Partitions::new();
        let mut free = Partitions::new();
        let mut unreleased = false;
        let topics: BTreeSet<Uuid> = target.keys().chain(m.assigned.keys()).copied().collect();
        for t in topics {
            let want = target.get(&t).cloned().unwrap_or_default();
            let have = m.assigned.get(&t).cloned().unwrap_or_default();
            let k: BTreeSet<i32> = have.intersection(&want).copied().collect();
            let r: BTreeSet<i32> = have.difference(&want).copied().collect();
            let mut f = BTreeSet::new();
            for p in want.difference(&have) {
                match self.owners.get(&(t, *p)) {
                    Some(o) if *o != m.id => unreleased = true,
                    _ => {
                        f.insert(*p);
                    }
                }
            }
            if !k.is_empty() {
                kept.insert(t, k);
            }
            if !r.is_empty() {
                revoke.insert(t, r);
            }
            if !f.is_empty() {
                free.insert(t, f);
            }
        }
        self.release(&m.id);
        if !revoke.is_empty() && still_owns(&revoke) {
            // Revoke first: the member keeps its epoch until the client gives them up.
            m.state = MemberState::UnrevokedPartitions;
            m.assigned = kept;
            m.pending_revocation = revoke;
            let timeout = Duration::from_millis(m.rebalance_timeout_ms.max(0) as u64);
            m.revocation_deadline = Some(now + timeout);
        } else {
            for (t, ps) in free {
                kept.entry(t).or_default().extend(ps);
            }
            m.assigned = kept;
            m.pending_revocation.clear();
            m.revocation_deadline = None;
            m.state = if unreleased { MemberState::UnreleasedPartitions } else { MemberState::Stable };
            if m.epoch != self.assignment_epoch {
                m.previous_epoch = m.epoch;
                m.epoch = self.assignment_epoch;
            }
        }
        self.take_ownership(m);
    }

    fn remove(&mut self, member_id: &str) {
        if self.members.remove(member_id).is_some() {
            self.release(member_id);
            self.target.remove(member_id);
            self.epoch += 1;
        }
    }
}

/// Compiled subscription regexes by their text (`None`: not valid), so members sharing one and
/// heartbeats repeating one compile it once. Bounded: emptied when [`REGEXES_MAX`] is reached.
#[derive(Debug, Default)]
pub struct Regexes {
    compiled: HashMap<String, Option<regex::Regex>>,
}

/// Distinct regexes kept compiled.
pub const REGEXES_MAX: usize = 1_024;

impl Regexes {
    fn get(&mut self, re: &str) -> Option<&regex::Regex> {
        if self.compiled.len() >= REGEXES_MAX && !self.compiled.contains_key(re) {
            self.compiled.clear();
        }
        self.compiled.entry(re.to_string()).or_insert_with(|| regex::Regex::new(&anchored(re)).ok()).as_ref()
    }
}

/// Kafka matches a subscription regex against the whole topic name.
fn anchored(re: &str) -> String {
    format!("^(?:{re})$")
}

pub struct ConsumerCoordinator {
    config: ConsumerGroupConfig,
    groups: BTreeMap<String, Group>,
    regexes: Regexes,
}

impl ConsumerCoordinator {
    pub fn new(config: ConsumerGroupConfig) -> Self {
        ConsumerCoordinator { config, groups: BTreeMap::new(), regexes: Regexes::default() }
    }

    pub fn config(&self) -> &ConsumerGroupConfig {
        &self.config
    }

    pub fn group_count(&self) -> usize {
        self.groups.len()
    }

    pub fn member_count(&self) -> usize {
        self.groups.values().map(|g| g.members.len()).sum()
    }

    /// Whether `group_id` is a consumer-protocol group with members.
    pub fn has_members(&self, group_id: &str) -> bool {
        self.groups.get(group_id).is_some_and(|g| !g.members.is_empty())
    }

    pub fn state(&self, group_id: &str) -> Option<ConsumerGroupState> {
        self.groups.get(group_id).map(Group::state)
    }

    /// Groups and their states, for ListGroups.
    pub fn list(&self) -> Vec<(String, ConsumerGroupState)> {
        self.groups.iter().map(|(id, g)| (id.clone(), g.state())).collect()
    }

    /// The checks of `GroupCoordinatorService.throwIfConsumerGroupHeartbeatRequestIsInvalid`.
    fn check_request(hb: &Heartbeat, api_version: i16) -> Result<(), (i16, &'static str)> {
        let invalid = |m| Err((ec::INVALID_REQUEST, m));
        if hb.group_id.is_empty() {
            return Err((ec::INVALID_GROUP_ID, "GroupId can't be empty."));
        }
        if api_version >= 1 && hb.member_id.is_empty() {
            return invalid("MemberId can't be empty.");
        }
        if hb.instance_id.as_deref() == Some("") {
            return invalid("InstanceId can't be empty.");
        }
        if hb.rack_id.as_deref() == Some("") {
            return invalid("RackId can't be empty.");
        }
        match hb.member_epoch {
            0 => {
                if hb.rebalance_timeout_ms == -1 {
                    return invalid("RebalanceTimeoutMs must be provided in first request.");
                }
                if hb.owned.as_ref().is_none_or(|o| !o.is_empty()) {
                    return invalid("TopicPartitions must be empty when (re-)joining.");
                }
                if hb.subscribed_topic_names.is_none() && hb.subscribed_topic_regex.is_none() {
                    return invalid("SubscribedTopicNames or SubscribedTopicRegex must be set in first request.");
                }
            }
            -2 if hb.instance_id.is_none() => return invalid("InstanceId can't be null."),
            -1 | -2 => {}
            e if e < -2 => return invalid("MemberEpoch is invalid."),
            _ if hb.member_id.is_empty() => return invalid("MemberId can't be empty."),
            _ => {}
        }
        if let Some(a) = hb.server_assignor.as_deref() {
            if !ASSIGNORS.contains(&a) {
                return Err((ec::UNSUPPORTED_ASSIGNOR, "ServerAssignor is not supported."));
            }
        }
        if hb.subscribed_topic_regex.as_deref() == Some("") {
            return Err((ec::INVALID_REGULAR_EXPRESSION, "SubscribedTopicRegex must not be empty."));
        }
        Ok(())
    }

    /// One ConsumerGroupHeartbeat. `classic_live`: a classic group with this id has members
    /// (a consumer-protocol member may not join it).
    pub fn heartbeat(
        &mut self,
        hb: Heartbeat,
        api_version: i16,
        classic_live: bool,
        topics: &dyn TopicSource,
        now: Instant,
    ) -> HeartbeatAnswer {
        if let Err((code, msg)) = Self::check_request(&hb, api_version) {
            return HeartbeatAnswer::error(code, msg, &hb.member_id);
        }
        if hb.member_epoch < 0 {
            return self.leave(&hb);
        }
        if classic_live {
            let msg = format!("Group {} is not a consumer group.", hb.group_id);
            return HeartbeatAnswer::error(ec::GROUP_ID_NOT_FOUND, msg, &hb.member_id);
        }
        if !self.groups.contains_key(&hb.group_id) && self.groups.len() >= self.config.groups_max {
            log::warn!("ConsumerGroupHeartbeat for new group {:?} refused: groups_max reached", hb.group_id);
            return HeartbeatAnswer::error(ec::COORDINATOR_NOT_AVAILABLE, "Too many groups.", &hb.member_id);
        }
        let members_max = self.config.members_per_group_max;
        let session = Duration::from_millis(self.config.session_timeout_ms);
        let interval = self.config.heartbeat_interval_ms.min(i32::MAX as u64) as i32;
        let g = self.groups.entry(hb.group_id.clone()).or_default();
        let mut member_id = hb.member_id.clone();
        if member_id.is_empty() {
            member_id = Uuid::new_v4().to_string();
        }
        // A new regex is compiled once, before anything changes (clients send it again only when
        // it changes, or on a rejoin).
        if let Some(re) = hb.subscribed_topic_regex.as_deref() {
            let known = g.members.get(&member_id).and_then(|m| m.regex.as_deref());
            if known != Some(re) && self.regexes.get(re).is_none() {
                let msg = "SubscribedTopicRegex is not a valid regular expression.";
                return HeartbeatAnswer::error(ec::INVALID_REGULAR_EXPRESSION, msg, &member_id);
            }
        }
        // A static member coming back under a new member id takes the old one's place and
        // keeps its partitions.
        let mut static_return = false;
        if let Some(inst) = hb.instance_id.as_deref() {
            let previous = g.members.values().find(|m| m.instance_id.as_deref() == Some(inst) && m.id != member_id);
            if let Some(prev) = previous {
                if hb.member_epoch != 0 || prev.epoch != -2 {
                    let msg = format!("Static member {inst} is still in use by member {}.", prev.id);
                    let code = if hb.member_epoch == 0 { ec::UNRELEASED_INSTANCE_ID } else { ec::FENCED_INSTANCE_ID };
                    return HeartbeatAnswer::error(code, msg, &member_id);
                }
                let mut m = prev.clone();
                let old = m.id.clone();
                g.members.remove(&old);
                g.release(&old);
                if let Some(t) = g.target.remove(&old) {
                    g.target.insert(member_id.clone(), t);
                }
                m.id = member_id.clone();
                m.epoch = m.previous_epoch.max(0);
                g.take_ownership(&m);
                g.members.insert(member_id.clone(), m);
                static_return = true;
            }
        }
        let mut bump = false;
        let (mut m, known) = match g.members.get(&member_id) {
            Some(m) => (m.clone(), true),
            None if hb.member_epoch != 0 => {
                let msg = format!("Member {member_id} is not a member of group {}.", hb.group_id);
                return HeartbeatAnswer::error(ec::UNKNOWN_MEMBER_ID, msg, &member_id);
            }
            None if g.members.len() >= members_max => {
                let msg = format!("The consumer group has reached its maximum capacity of {members_max} members.");
                return HeartbeatAnswer::error(ec::GROUP_MAX_SIZE_REACHED, msg, &member_id);
            }
            None => {
                bump = true;
                let m = Member {
                    id: member_id.clone(),
                    instance_id: None,
                    rack_id: None,
                    client_id: String::new(),
                    client_host: String::new(),
                    epoch: 0,
                    previous_epoch: -1,
                    state: MemberState::Stable,
                    assigned: Partitions::new(),
                    pending_revocation: Partitions::new(),
                    names: Vec::new(),
                    regex: None,
                    server_assignor: None,
                    rebalance_timeout_ms: hb.rebalance_timeout_ms,
                    session_deadline: now + session,
                    revocation_deadline: None,
                };
                (m, false)
            }
        };
        // Epochs (`throwIfConsumerGroupMemberEpochIsInvalid`); 0 is always a (re)join.
        if known && hb.member_epoch != 0 && hb.member_epoch != m.epoch {
            let lost_answer = hb.member_epoch == m.previous_epoch
                && hb
                    .owned
                    .as_ref()
                    .is_none_or(|o| o.iter().all(|(t, ps)| m.assigned.get(t).is_some_and(|a| ps.is_subset(a))));
            if hb.member_epoch > m.epoch || !lost_answer {
                let msg = format!(
                    "The consumer group member has a greater member epoch ({}) than the one known by the group \
                     coordinator ({}). The member must abandon all its partitions and rejoin.",
                    hb.member_epoch, m.epoch
                );
                let msg = if hb.member_epoch > m.epoch {
                    msg
                } else {
                    format!(
                        "The consumer group member has a smaller member epoch ({}) than the one known by the group \
                         coordinator ({}). The member must abandon all its partitions and rejoin.",
                        hb.member_epoch, m.epoch
                    )
                };
                return HeartbeatAnswer::error(ec::FENCED_MEMBER_EPOCH, msg, &member_id);
            }
        }
        if known
            && !static_return
            && hb.member_epoch == 0
            && (!m.assigned.is_empty() || !m.pending_revocation.is_empty())
        {
            // A member rejoining has dropped everything it held.
            g.release(&member_id);
            m.assigned.clear();
            m.pending_revocation.clear();
            m.state = MemberState::Stable;
            m.epoch = 0;
            m.revocation_deadline = None;
        }
        if let Some(names) = hb.subscribed_topic_names.clone() {
            let mut names = names;
            names.sort();
            names.dedup();
            if names != m.names {
                m.names = names;
                bump = true;
            }
        }
        if hb.subscribed_topic_regex.is_some() && hb.subscribed_topic_regex != m.regex {
            m.regex = hb.subscribed_topic_regex.clone();
            bump = true;
        }
        if hb.server_assignor.is_some() && hb.server_assignor != m.server_assignor {
            m.server_assignor = hb.server_assignor.clone();
            bump = true;
        }
        if hb.instance_id.is_some() {
            m.instance_id = hb.instance_id.clone();
        }
        if hb.rack_id.is_some() {
            m.rack_id = hb.rack_id.clone();
        }
        if hb.rebalance_timeout_ms != -1 {
            m.rebalance_timeout_ms = hb.rebalance_timeout_ms;
        }
        m.client_id = hb.client_id.clone();
        m.client_host = hb.client_host.clone();
        m.session_deadline = now + session;
        let before = m.assigned.clone();
        g.members.insert(member_id.clone(), m.clone());
        let subscribed = g.resolve(topics, &mut self.regexes, now);
        if subscribed != g.subscribed {
            g.subscribed = subscribed;
            bump = true;
        }
        if bump {
            g.epoch += 1;
        }
        if g.epoch > g.assignment_epoch {
            g.compute_target();
        }
        g.reconcile(&mut m, hb.owned.as_ref(), now);
        let full = hb.member_epoch == 0
            || (hb.rebalance_timeout_ms != -1
                && (hb.subscribed_topic_names.is_some() || hb.subscribed_topic_regex.is_some())
                && hb.owned.is_some());
        let assignment = (full || m.assigned != before).then(|| m.assigned.clone());
        let answer = HeartbeatAnswer {
            error_code: ec::NONE,
            error_message: None,
            member_id: member_id.clone(),
            member_epoch: m.epoch,
            heartbeat_interval_ms: interval,
            assignment,
        };
        g.members.insert(member_id, m);
        answer
    }

    fn leave(&mut self, hb: &Heartbeat) -> HeartbeatAnswer {
        let unknown = || {
            let msg = format!("Member {} is not a member of group {}.", hb.member_id, hb.group_id);
            HeartbeatAnswer::error(ec::UNKNOWN_MEMBER_ID, msg, &hb.member_id)
        };
        let Some(g) = self.groups.get_mut(&hb.group_id) else { return unknown() };
        let id = match (g.members.contains_key(&hb.member_id), hb.instance_id.as_deref()) {
            (true, _) => hb.member_id.clone(),
            (false, Some(inst)) => match g.members.values().find(|m| m.instance_id.as_deref() == Some(inst)) {
                Some(m) => m.id.clone(),
                None => return unknown(),
            },
            (false, None) => return unknown(),
        };
        if hb.member_epoch == -2 {
            // A static member leaving for a while keeps its place and partitions until its
            // session times out; it comes back with a new member id and epoch 0.
            if let Some(m) = g.members.get_mut(&id) {
                m.previous_epoch = m.epoch;
                m.epoch = -2;
            }
        } else {
            g.remove(&id);
            log::info!("consumer group {}: member {id} left", hb.group_id);
        }
        HeartbeatAnswer { member_id: hb.member_id.clone(), member_epoch: hb.member_epoch, ..HeartbeatAnswer::default() }
    }

    /// Checks an OffsetCommit against a consumer-protocol group (`ConsumerGroup.validateOffsetCommit`).
    /// `None`: the group is not one of this coordinator's (the classic rules apply).
    pub fn validate_commit(&self, group_id: &str, member_epoch: i32, member_id: &str) -> Option<Result<(), i16>> {
        let g = self.groups.get(group_id)?;
        if member_epoch < 0 && member_id.is_empty() && g.members.is_empty() {
            return Some(Ok(())); // an admin's commit to an empty group
        }
        let Some(m) = g.members.get(member_id) else { return Some(Err(ec::UNKNOWN_MEMBER_ID)) };
        if member_epoch != m.epoch {
            return Some(Err(ec::STALE_MEMBER_EPOCH));
        }
        Some(Ok(()))
    }

    /// Checks an OffsetFetch v9+ that names a member (`ConsumerGroup.validateOffsetFetch`).
    pub fn validate_fetch(&self, group_id: &str, member_id: &str, member_epoch: i32) -> Result<(), i16> {
        if member_epoch < 0 && member_id.is_empty() {
            return Ok(());
        }
        let Some(g) = self.groups.get(group_id) else { return Err(ec::GROUP_ID_NOT_FOUND) };
        let Some(m) = g.members.get(member_id) else { return Err(ec::UNKNOWN_MEMBER_ID) };
        if member_epoch != m.epoch {
            return Err(ec::STALE_MEMBER_EPOCH);
        }
        Ok(())
    }

    /// ConsumerGroupDescribe for one group; `None` when it is not a consumer-protocol group here.
    pub fn describe(&self, group_id: &str) -> Option<DescribedGroup> {
        let g = self.groups.get(group_id)?;
        let members = g
            .members
            .values()
            .map(|m| DescribedMember {
                member_id: m.id.clone(),
                instance_id: m.instance_id.clone(),
                rack_id: m.rack_id.clone(),
                member_epoch: m.epoch,
                client_id: m.client_id.clone(),
                client_host: m.client_host.clone(),
                subscribed_topic_names: m.names.clone(),
                subscribed_topic_regex: m.regex.clone(),
                assignment: m.assigned.clone(),
                target_assignment: g.target.get(&m.id).cloned().unwrap_or_default(),
            })
            .collect();
        Some(DescribedGroup {
            state: g.state(),
            group_epoch: g.epoch,
            assignment_epoch: g.assignment_epoch,
            assignor_name: g.assignor().to_string(),
            members,
            topic_names: g.subscribed.iter().map(|(n, (id, _))| (*id, n.clone())).collect(),
        })
    }

    /// Expires sessions and fences members that did not revoke within their rebalance timeout.
    /// Groups left without members are dropped (their offsets live in the store).
    pub fn tick(&mut self, now: Instant) {
        for (gid, g) in self.groups.iter_mut() {
            let doomed: Vec<(String, &'static str)> = g
                .members
                .values()
                .filter_map(|m| {
                    if m.session_deadline <= now {
                        Some((m.id.clone(), "no heartbeat within the session timeout"))
                    } else if m.revocation_deadline.is_some_and(|d| d <= now) {
                        Some((m.id.clone(), "partitions not revoked within the rebalance timeout"))
                    } else {
                        None
                    }
                })
                .collect();
            for (id, why) in doomed {
                log::info!("consumer group {gid}: member {id} fenced ({why})");
                g.remove(&id);
            }
        }
        self.groups.retain(|_, g| !g.members.is_empty());
    }
}

/// Fuzzing entry (`fuzz/fuzz_targets/consumer_group.rs`, replayed by the tests): `data` is a run
/// of 3-byte steps (member 0–7, action, argument) that eight simulated clients of one group take
/// against the coordinator: join, heartbeat (owning what their last answer gave them, or not
/// saying), heartbeat with a wrong epoch, leave, change subscription or assignor, or let time
/// pass (sessions and revocations expire). After every step: no partition is held by two
/// members, nothing is held that does not exist, no member is ahead of its group, and every
/// live client owns only what the coordinator says it holds. Panics on a broken rule.
pub fn fuzz_heartbeats(data: &[u8]) {
    struct Fixed(Vec<(String, Uuid, i32)>);
    impl TopicSource for Fixed {
        fn topic(&self, name: &str) -> Option<(Uuid, i32)> {
            self.0.iter().find(|t| t.0 == name).map(|t| (t.1, t.2))
        }
        fn names(&self) -> Vec<String> {
            self.0.iter().map(|t| t.0.clone()).collect()
        }
    }
    let mut topics = Fixed(vec![
        ("a".into(), Uuid::from_u128(1), 4),
        ("b".into(), Uuid::from_u128(2), 3),
        ("c".into(), Uuid::from_u128(3), 1),
    ]);
    let config = ConsumerGroupConfig {
        session_timeout_ms: 1_000,
        heartbeat_interval_ms: 100,
        groups_max: 4,
        members_per_group_max: 6,
    };
    thread_local! {
        static REGEXES: std::cell::RefCell<Regexes> = std::cell::RefCell::new(Regexes::default());
    }
    let mut c = ConsumerCoordinator::new(config);
    // The compiled regexes are a pure memo: carried from run to run, they only save time.
    c.regexes = REGEXES.with(|r| std::mem::take(&mut *r.borrow_mut()));
    let start = Instant::now();
    let mut now = start;
    // Per client: (epoch, owned) as its answers told it; epoch < 0: not in the group.
    let mut clients: Vec<(i32, Partitions)> = vec![(-1, Partitions::new()); 8];
    for step in data.chunks_exact(3) {
        let (who, action, arg) = ((step[0] % 8) as usize, step[1] % 10, step[2]);
        let member_id = format!("m{who}");
        let names = |arg: u8| -> Vec<String> {
            ["a", "b", "c", "zz"]
                .iter()
                .enumerate()
                .filter(|(i, _)| arg & (1 << i) != 0)
                .map(|(_, n)| n.to_string())
                .collect()
        };
        let mut hb = Heartbeat {
            group_id: "g".into(),
            member_id: member_id.clone(),
            member_epoch: clients[who].0,
            rebalance_timeout_ms: -1,
            ..Heartbeat::default()
        };
        match action {
            0 | 1 => {
                hb.member_epoch = 0;
                hb.rebalance_timeout_ms = 500 + arg as i32 * 10;
                hb.owned = Some(Partitions::new());
                hb.subscribed_topic_names = Some(names(arg));
                if action == 1 {
                    hb.subscribed_topic_regex = Some(["a|b", "[bc]", ".*", "("][arg as usize % 4].into());
                }
                clients[who].1.clear();
            }
            2 => hb.owned = Some(clients[who].1.clone()),
            3 => hb.owned = None,
            4 => hb.member_epoch = hb.member_epoch.wrapping_add(arg as i32 % 3 - 1),
            5 => hb.member_epoch = -1,
            6 => {
                hb.subscribed_topic_names = Some(names(arg));
                hb.owned = Some(clients[who].1.clone());
            }
            7 => {
                hb.server_assignor = Some(["uniform", "range", "sticky"][arg as usize % 3].into());
                hb.owned = Some(clients[who].1.clone());
            }
            8 => {
                // Time passes; a client that stays silent that long is dead and owns nothing.
                now += Duration::from_millis(arg as u64 * 20);
                c.tick(now);
                for (i, cl) in clients.iter_mut().enumerate() {
                    if !c.groups.get("g").is_some_and(|g| g.members.contains_key(&format!("m{i}"))) {
                        *cl = (-1, Partitions::new());
                    }
                }
                continue;
            }
            _ => {
                // A new topic appears (metadata change).
                let n = topics.0.len() as u128 + 1;
                if n < 8 {
                    topics.0.push((format!("t{n}"), Uuid::from_u128(n), 1 + (arg % 4) as i32));
                }
                continue;
            }
        }
        if hb.member_epoch < -1 {
            hb.member_epoch = -1;
        }
        let leaving = hb.member_epoch == -1;
        let answer = c.heartbeat(hb, 1, false, &topics, now);
        let client = &mut clients[who];
        if answer.error_code != ec::NONE || leaving {
            if matches!(answer.error_code, ec::FENCED_MEMBER_EPOCH | ec::UNKNOWN_MEMBER_ID) || leaving {
                *client = (-1, Partitions::new());
            }
        } else {
            client.0 = answer.member_epoch;
            if let Some(p) = answer.assignment {
                client.1 = p;
            }
        }
        // The rules.
        let Some(g) = c.groups.get("g") else { continue };
        let mut held: BTreeMap<(Uuid, i32), &str> = BTreeMap::new();
        for m in g.members.values() {
            assert!(m.epoch <= g.epoch, "member {} at epoch {} is ahead of its group at {}", m.id, m.epoch, g.epoch);
            for (t, ps) in m.assigned.iter().chain(m.pending_revocation.iter()) {
                let count = topics.0.iter().find(|x| x.1 == *t).map_or(0, |x| x.2);
                for p in ps {
                    assert!(*p < count, "{} holds {t}-{p}, which does not exist", m.id);
                    if let Some(other) = held.insert((*t, *p), &m.id) {
                        panic!("{t}-{p} is held by {other} and {}", m.id);
                    }
                }
            }
        }
        let owners: BTreeMap<(Uuid, i32), &str> = g.owners.iter().map(|(k, v)| (*k, v.as_str())).collect();
        assert_eq!(owners, held, "the ownership index drifted from the members' assignments");
        for (i, (epoch, owned)) in clients.iter().enumerate() {
            if *epoch < 0 {
                continue;
            }
            for (t, ps) in owned {
                for p in ps {
                    let holder = held.get(&(*t, *p)).copied();
                    assert_eq!(holder, Some(format!("m{i}").as_str()), "client m{i} owns {t}-{p}");
                }
            }
        }
    }
    REGEXES.with(|r| *r.borrow_mut() = std::mem::take(&mut c.regexes));
}

/// The server-side assignors: pure functions of the members' subscriptions (topic ids), the
/// topics' partition counts and, for `uniform`, the previous target (to stay sticky).
pub mod assign {
    use super::*;

    /// `uniform`: every member gets its fair share of the partitions it may have (within one of
    /// each other when subscriptions are the same); partitions stay where they were as far as the
    /// balance allows.
    pub fn uniform(
        subs: &BTreeMap<String, BTreeSet<Uuid>>,
        counts: &BTreeMap<Uuid, i32>,
        previous: &BTreeMap<String, Partitions>,
    ) -> BTreeMap<String, Partitions> {
        let mut out: BTreeMap<String, Partitions> = subs.keys().map(|m| (m.clone(), Partitions::new())).collect();
        let mut subscribers: BTreeMap<Uuid, usize> = BTreeMap::new();
        for ts in subs.values() {
            for t in ts {
                *subscribers.entry(*t).or_default() += 1;
            }
        }
        // Each member's fair share, in partitions.
        let share: BTreeMap<&String, f64> = subs
            .iter()
            .map(|(m, ts)| {
                let s =
                    ts.iter().filter_map(|t| Some(*counts.get(t)? as f64 / *subscribers.get(t)? as f64)).sum::<f64>();
                (m, s)
            })
            .collect();
        let homogeneous = subs.values().collect::<BTreeSet<_>>().len() <= 1;
        let total: usize = subscribers.keys().map(|t| counts.get(t).copied().unwrap_or(0).max(0) as usize).sum();
        let n = subs.values().filter(|ts| !ts.is_empty()).count().max(1);
        let mut extra = total % n;
        let mut taken: BTreeSet<(Uuid, i32)> = BTreeSet::new();
        let valid = |m: &String, t: &Uuid, p: i32| {
            subs.get(m).is_some_and(|ts| ts.contains(t)) && counts.get(t).is_some_and(|c| p < *c)
        };
        let size = |ps: &Partitions| ps.values().map(BTreeSet::len).sum::<usize>();
        // Sticky: keep up to the floor of the share, then one more while the remainder allows.
        for pass in 0..2 {
            for (m, prev) in previous {
                let Some(&s) = share.get(m) else { continue };
                let cap = if pass == 0 { s.floor() as usize } else { s.ceil() as usize };
                for (t, ps) in prev {
                    for p in ps {
                        let mine = out.get(m).map_or(0, size);
                        if mine >= cap || taken.contains(&(*t, *p)) || !valid(m, t, *p) {
                            continue;
                        }
                        if pass == 1 && homogeneous {
                            if extra == 0 {
                                continue;
                            }
                            extra -= 1;
                        }
                        taken.insert((*t, *p));
                        out.entry(m.clone()).or_default().entry(*t).or_default().insert(*p);
                    }
                }
            }
        }
        // The rest to whoever is furthest below its share.
        for (t, &c) in counts {
            for p in 0..c.max(0) {
                if taken.contains(&(*t, p)) {
                    continue;
                }
                let best = subs
                    .iter()
                    .filter(|(_, ts)| ts.contains(t))
                    .map(|(m, _)| {
                        let have = out.get(m).map_or(0, size) as f64;
                        (have - share.get(m).copied().unwrap_or(0.0), m)
                    })
                    .min_by(|a, b| a.0.total_cmp(&b.0).then_with(|| a.1.cmp(b.1)));
                if let Some((_, m)) = best {
                    out.entry(m.clone()).or_default().entry(*t).or_default().insert(p);
                    taken.insert((*t, p));
                }
            }
        }
        out.retain(|_, ps| {
            ps.retain(|_, s| !s.is_empty());
            true
        });
        out
    }

    /// `range`: per topic, its subscribers in member-id order each get a contiguous range, the
    /// first ones one partition more; members with the same subscriptions get the same
    /// partition numbers of co-partitioned topics.
    pub fn range(
        subs: &BTreeMap<String, BTreeSet<Uuid>>,
        counts: &BTreeMap<Uuid, i32>,
    ) -> BTreeMap<String, Partitions> {
        let mut out: BTreeMap<String, Partitions> = subs.keys().map(|m| (m.clone(), Partitions::new())).collect();
        for (t, &c) in counts {
            let members: Vec<&String> = subs.iter().filter(|(_, ts)| ts.contains(t)).map(|(m, _)| m).collect();
            if members.is_empty() || c <= 0 {
                continue;
            }
            let (each, rest) = (c as usize / members.len(), c as usize % members.len());
            let mut next = 0i32;
            for (i, m) in members.iter().enumerate() {
                let len = each + usize::from(i < rest);
                if len > 0 {
                    let set: BTreeSet<i32> = (next..next + len as i32).collect();
                    out.entry((*m).clone()).or_default().insert(*t, set);
                }
                next += len as i32;
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Topics(BTreeMap<String, (Uuid, i32)>);
    impl TopicSource for Topics {
        fn topic(&self, name: &str) -> Option<(Uuid, i32)> {
            self.0.get(name).copied()
        }
        fn names(&self) -> Vec<String> {
            self.0.keys().cloned().collect()
        }
    }

    fn topics(list: &[(&str, i32)]) -> Topics {
        Topics(list.iter().map(|(n, c)| (n.to_string(), (id(n), *c))).collect())
    }

    /// A stable id per test topic name.
    fn id(name: &str) -> Uuid {
        let mut b = [0u8; 16];
        for (i, c) in name.bytes().enumerate() {
            b[i % 16] ^= c.wrapping_add(i as u8);
        }
        Uuid::from_bytes(b)
    }

    fn join(member: &str, names: &[&str]) -> Heartbeat {
        Heartbeat {
            group_id: "g".into(),
            member_id: member.into(),
            member_epoch: 0,
            rebalance_timeout_ms: 30_000,
            subscribed_topic_names: Some(names.iter().map(|s| s.to_string()).collect()),
            owned: Some(Partitions::new()),
            ..Heartbeat::default()
        }
    }

    fn beat(member: &str, epoch: i32, owned: Option<&Partitions>) -> Heartbeat {
        Heartbeat {
            group_id: "g".into(),
            member_id: member.into(),
            member_epoch: epoch,
            rebalance_timeout_ms: -1,
            owned: owned.cloned(),
            ..Heartbeat::default()
        }
    }

    fn count(p: &Partitions) -> usize {
        p.values().map(BTreeSet::len).sum()
    }

    #[test]
    fn two_members_split_after_the_first_revokes() {
        let t = topics(&[("orders", 6)]);
        let mut c = ConsumerCoordinator::new(ConsumerGroupConfig::default());
        let now = Instant::now();
        let a = c.heartbeat(join("a", &["orders"]), 1, false, &t, now);
        assert_eq!(a.error_code, 0);
        assert_eq!(a.member_epoch, 1);
        let a_parts = a.assignment.expect("first answer carries the assignment");
        assert_eq!(count(&a_parts), 6);

        // b joins: the group moves to epoch 2, but a still owns everything, so b waits.
        let b = c.heartbeat(join("b", &["orders"]), 1, false, &t, now);
        assert_eq!(b.member_epoch, 2);
        assert_eq!(b.assignment.as_ref().map(count), Some(0), "nothing is free yet");
        assert_eq!(c.state("g"), Some(ConsumerGroupState::Reconciling));

        // a is asked to give up three and keeps its epoch until it has.
        let a2 = c.heartbeat(beat("a", 1, Some(&a_parts)), 1, false, &t, now);
        assert_eq!(a2.member_epoch, 1);
        let kept = a2.assignment.expect("revocation is an assignment change");
        assert_eq!(count(&kept), 3);
        // A heartbeat that still owns them changes nothing.
        let a3 = c.heartbeat(beat("a", 1, Some(&a_parts)), 1, false, &t, now);
        assert_eq!((a3.member_epoch, a3.assignment), (1, None));
        // b still cannot have them.
        let b2 = c.heartbeat(beat("b", 2, None), 1, false, &t, now);
        assert_eq!(b2.assignment, None);
        // a revokes: it moves to epoch 2; then b gets the three.
        let a4 = c.heartbeat(beat("a", 1, Some(&kept)), 1, false, &t, now);
        assert_eq!(a4.member_epoch, 2);
        let b3 = c.heartbeat(beat("b", 2, None), 1, false, &t, now);
        let b_parts = b3.assignment.expect("released partitions are handed over");
        assert_eq!(count(&b_parts), 3);
        assert!(b_parts[&id("orders")].is_disjoint(&kept[&id("orders")]));
        assert_eq!(c.state("g"), Some(ConsumerGroupState::Stable));
        let d = c.describe("g").expect("described");
        assert_eq!((d.group_epoch, d.assignment_epoch, d.assignor_name.as_str()), (2, 2, "uniform"));
    }

    #[test]
    fn epochs_are_checked_and_sessions_expire() {
        let t = topics(&[("orders", 4)]);
        let cfg = ConsumerGroupConfig { session_timeout_ms: 1_000, ..ConsumerGroupConfig::default() };
        let mut c = ConsumerCoordinator::new(cfg);
        let now = Instant::now();
        let a = c.heartbeat(join("a", &["orders"]), 1, false, &t, now);
        assert_eq!(a.member_epoch, 1);
        assert_eq!(c.heartbeat(beat("a", 5, None), 1, false, &t, now).error_code, ec::FENCED_MEMBER_EPOCH);
        assert_eq!(c.heartbeat(beat("zz", 1, None), 1, false, &t, now).error_code, ec::UNKNOWN_MEMBER_ID);
        let b = c.heartbeat(join("b", &["orders"]), 1, false, &t, now);
        assert_eq!(b.member_epoch, 2);
        // Only a heartbeats on; b's session ends and a gets everything back at a new epoch.
        let a_owned = a.assignment.expect("assignment");
        let r = c.heartbeat(beat("a", 1, Some(&a_owned)), 1, false, &t, now + Duration::from_millis(600));
        let kept = r.assignment.expect("revocation");
        c.heartbeat(beat("a", 1, Some(&kept)), 1, false, &t, now + Duration::from_millis(700));
        c.tick(now + Duration::from_millis(1_100));
        assert_eq!(c.member_count(), 1, "b expired");
        let r = c.heartbeat(beat("a", 2, Some(&kept)), 1, false, &t, now + Duration::from_millis(1_200));
        assert_eq!(r.member_epoch, 3, "b's join (2) and b's expiry (3) each moved the group epoch");
        assert_eq!(r.assignment.map(|p| count(&p)), Some(4));
        // Commits are checked against the member epoch.
        assert_eq!(c.validate_commit("g", 3, "a"), Some(Ok(())));
        assert_eq!(c.validate_commit("g", 2, "a"), Some(Err(ec::STALE_MEMBER_EPOCH)));
        assert_eq!(c.validate_commit("g", 3, "b"), Some(Err(ec::UNKNOWN_MEMBER_ID)));
        assert_eq!(c.validate_commit("other", 4, "a"), None);
        // Leaving ends the group.
        let l = c.heartbeat(beat("a", -1, None), 1, false, &t, now + Duration::from_millis(1_300));
        assert_eq!((l.error_code, l.member_epoch), (0, -1));
        c.tick(now + Duration::from_millis(1_400));
        assert_eq!(c.group_count(), 0);
    }

    #[test]
    fn bad_heartbeats_get_the_brokers_errors() {
        let t = topics(&[("orders", 1)]);
        let mut c = ConsumerCoordinator::new(ConsumerGroupConfig::default());
        let now = Instant::now();
        let mut h = join("", &["orders"]);
        assert_eq!(c.heartbeat(h.clone(), 1, false, &t, now).error_code, ec::INVALID_REQUEST, "v1 needs a member id");
        let v0 = c.heartbeat(h.clone(), 0, false, &t, now);
        assert_eq!(v0.error_code, 0);
        assert!(!v0.member_id.is_empty(), "v0: the coordinator names the member");
        h.member_id = "m".into();
        h.rebalance_timeout_ms = -1;
        assert_eq!(c.heartbeat(h.clone(), 1, false, &t, now).error_code, ec::INVALID_REQUEST);
        h.rebalance_timeout_ms = 1000;
        h.server_assignor = Some("sticky".into());
        assert_eq!(c.heartbeat(h.clone(), 1, false, &t, now).error_code, ec::UNSUPPORTED_ASSIGNOR);
        h.server_assignor = None;
        h.subscribed_topic_regex = Some("(".into());
        assert_eq!(c.heartbeat(h.clone(), 1, false, &t, now).error_code, ec::INVALID_REGULAR_EXPRESSION);
        h.subscribed_topic_regex = None;
        assert_eq!(c.heartbeat(h.clone(), 1, true, &t, now).error_code, ec::GROUP_ID_NOT_FOUND, "classic group");
        let mut bad = beat("m", -3, None);
        assert_eq!(c.heartbeat(bad.clone(), 1, false, &t, now).error_code, ec::INVALID_REQUEST);
        bad.member_epoch = -2;
        assert_eq!(c.heartbeat(bad, 1, false, &t, now).error_code, ec::INVALID_REQUEST, "-2 needs an instance id");
    }

    #[test]
    fn regex_subscriptions_follow_new_topics() {
        let mut t = topics(&[("logs-a", 2), ("other", 2)]);
        let mut c = ConsumerCoordinator::new(ConsumerGroupConfig::default());
        let now = Instant::now();
        let mut h = join("a", &[]);
        h.subscribed_topic_names = None;
        h.subscribed_topic_regex = Some("logs-.*".into());
        let a = c.heartbeat(h, 1, false, &t, now);
        let p = a.assignment.expect("assignment");
        assert_eq!(p.keys().collect::<Vec<_>>(), [&id("logs-a")]);
        t.0.insert("logs-b".into(), (id("logs-b"), 3));
        let soon = now + Duration::from_millis(REGEX_REFRESH_MS / 2);
        let a2 = c.heartbeat(beat("a", 1, Some(&p)), 1, false, &t, soon);
        assert_eq!((a2.member_epoch, a2.assignment), (1, None), "regexes are matched again only once a second");
        let later = now + Duration::from_millis(REGEX_REFRESH_MS);
        let a2 = c.heartbeat(beat("a", 1, Some(&p)), 1, false, &t, later);
        assert_eq!(a2.member_epoch, 2);
        assert_eq!(a2.assignment.map(|p| count(&p)), Some(5));
    }

    #[test]
    fn assignors_balance_and_stick() {
        let (x, y) = (id("x"), id("y"));
        let counts: BTreeMap<Uuid, i32> = [(x, 7), (y, 2)].into();
        let both: BTreeSet<Uuid> = [x, y].into();
        let subs: BTreeMap<String, BTreeSet<Uuid>> =
            ["m1", "m2", "m3"].iter().map(|m| (m.to_string(), both.clone())).collect();
        let first = assign::uniform(&subs, &counts, &BTreeMap::new());
        let sizes: Vec<usize> = first.values().map(count).collect();
        assert_eq!(sizes.iter().sum::<usize>(), 9);
        assert!(sizes.iter().all(|s| *s == 3), "{sizes:?}");
        // A fourth member: everyone keeps what it can, the newcomer takes from the others.
        let mut subs4 = subs.clone();
        subs4.insert("m4".into(), both.clone());
        let second = assign::uniform(&subs4, &counts, &first);
        let sizes: Vec<usize> = second.values().map(count).collect();
        assert_eq!(sizes.iter().sum::<usize>(), 9);
        assert!(sizes.iter().all(|s| (2..=3).contains(s)), "{sizes:?}");
        for m in ["m1", "m2", "m3"] {
            let moved: usize = second[m]
                .iter()
                .map(|(t, ps)| ps.difference(first[m].get(t).unwrap_or(&BTreeSet::new())).count())
                .sum();
            assert_eq!(moved, 0, "{m} got nothing it did not have");
        }
        // Range: contiguous and co-partitioned.
        let counts: BTreeMap<Uuid, i32> = [(x, 5), (y, 5)].into();
        let r = assign::range(&subs, &counts);
        assert_eq!(r["m1"][&x], (0..2).collect());
        assert_eq!(r["m1"][&y], (0..2).collect());
        assert_eq!(r["m3"][&x], [4].into());
        // Heterogeneous: a member subscribed to y only gets y's share.
        let mut het = subs.clone();
        het.insert("m0".into(), [y].into());
        let u = assign::uniform(&het, &counts, &BTreeMap::new());
        let total: usize = u.values().map(count).sum();
        assert_eq!(total, 10);
        assert!(u["m0"].keys().all(|t| *t == y));
    }
}
