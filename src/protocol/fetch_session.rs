//! Incremental fetch sessions (KIP-227): the bounded session cache and each session's view of
//! what its client was last told, as the broker's `FetchManager`, `FetchSession` and
//! `FetchSessionCacheShard` keep them. Sans-io: requests and `now` in, decisions out; the Fetch
//! handler ([`super::fetch`]) plans the reads.
//!
//! A request's (SessionId, SessionEpoch) decides (`FetchMetadata`):
//!
//! ```text
//!  epoch −1 (FINAL)    close SessionId if set; a full fetch without a session (answer id 0)
//!  epoch  0 (INITIAL)  close SessionId if set; a full fetch that opens a session when the
//!                      cache has a free slot or may evict one (answer its new id, else 0)
//!  epoch  N (other)    incremental: SessionId unknown → FETCH_SESSION_ID_NOT_FOUND, N not the
//!                      session's next epoch → INVALID_FETCH_SESSION_EPOCH, topic ids in use not
//!                      as the request's version → FETCH_SESSION_TOPIC_ID_ERROR; else the
//!                      request's partitions are added or updated, its forgotten ones removed,
//!                      and the next epoch is N + 1 (after 2^31 − 1 comes 1)
//! ```
//!
//! An incremental answer lists only the partitions with news, in the session's order: records,
//! an error, a preferred read replica, or a high watermark, last stable offset or log start
//! offset other than the one last sent. A partition that returned records moves to the end of
//! the order, so a byte limit does not starve the others (the broker's rotation).
//!
//! Eviction (`FetchSessionCacheShard.tryEvict`): a new session takes a free slot, else the
//! least recently used session idle for more than [`SESSION_EVICTION_MS`], else the smallest
//! session (by partitions, then id) if the new one is larger. `slots_max` 0 hands out no
//! sessions. Sessions are not tied to connections, as the broker's are not.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::{FetchRequest, TopicName};

/// Kafka's `max.incremental.fetch.session.cache.slots` default.
pub const SESSION_CACHE_SLOTS_DEFAULT: usize = 1000;
/// Kafka's `min.incremental.fetch.session.eviction.ms` (not configurable there either).
pub const SESSION_EVICTION_MS: u64 = 120_000;
/// Partitions held by all sessions together (about 150 bytes each): the broker bounds only the
/// slot count, which with 20,000-partition sessions would let clients pin gigabytes here. A
/// session that would cross it is not opened (answered as sessionless) or, when an incremental
/// fetch grows it, dropped with FETCH_SESSION_ID_NOT_FOUND (the client starts over with a full
/// fetch).
pub const SESSION_PARTITIONS_TOTAL_MAX: usize = 1_000_000;

pub const FETCH_SESSION_ID_NOT_FOUND: i16 = 70;
pub const INVALID_FETCH_SESSION_EPOCH: i16 = 71;
pub const FETCH_SESSION_TOPIC_ID_ERROR: i16 = 106;

const FINAL_EPOCH: i32 = -1;
const INITIAL_EPOCH: i32 = 0;

/// A partition of a session: by topic id from Fetch v13 (name empty), else by name (id nil).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key {
    pub topic: String,
    pub topic_id: uuid::Uuid,
    pub partition: i32,
}

/// What the session holds for one partition: the client's fetch position and limits, and the
/// offsets it was last answered (−1 until the first answer).
#[derive(Clone, Debug)]
pub struct Cached {
    pub key: Key,
    pub fetch: FetchPartition,
    pub high_watermark: i64,
    pub last_stable_offset: i64,
    pub log_start_offset: i64,
}

/// What an answered partition showed, to compare with what its session last sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shown {
    pub error_code: i16,
    pub high_watermark: i64,
    pub last_stable_offset: i64,
    pub log_start_offset: i64,
    pub record_bytes: u64,
    pub preferred_read_replica: i32,
}

#[derive(Debug)]
pub struct Session {
    pub id: i32,
    /// The epoch the next incremental request must carry.
    pub epoch: i32,
    pub uses_topic_ids: bool,
    pub partitions: Vec<Cached>,
    pub last_used: Instant,
    /// The view generation at which this session's last answer had no records, errors or
    /// pending work, with no partition changed since: while the view is at that generation,
    /// planning again would show exactly what was shown, so an idle poll is not planned.
    quiet_at: Option<u64>,
}

/// How one Fetch request is answered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Mode {
    /// A full answer, no session (v < 7, epoch −1, or sessions disabled).
    Sessionless,
    /// A full answer that opens a session when it is sent (if the cache lets it).
    Open,
    /// An incremental answer over session `id`, planned from [`FetchSessions::request_of`].
    Incremental(i32),
}

/// The session cache.
#[derive(Debug)]
pub struct FetchSessions {
    sessions: HashMap<i32, Session>,
    slots_max: usize,
    /// Partitions one session may hold (`partitions_per_request_max`).
    partitions_max: usize,
    eviction: Duration,
    /// xorshift state for session ids (ids need only be unique, not secret: the broker uses a
    /// plain `Random` too).
    rng: u64,
    pub evictions: u64,
    /// Sessions opened since start.
    pub opened: u64,
    /// Bumped by the server on every change to the log view that wakes parked fetches (log
    /// events, rescans, high-watermark moves): the same events a long poll re-plans on.
    generation: u64,
}

impl FetchSessions {
    pub fn new(slots_max: usize, partitions_max: usize, seed: u64) -> Self {
        FetchSessions {
            sessions: HashMap::new(),
            slots_max,
            partitions_max,
            eviction: Duration::from_millis(SESSION_EVICTION_MS),
            rng: seed | 1,
            evictions: 0,
            opened: 0,
            generation: 0,
        }
    }

    /// The log view changed (see `generation`).
    pub fn view_changed(&mut self) {
        self.generation += 1;
    }

    /// Whether an incremental fetch of session `id` would show nothing new without planning it.
    pub fn is_quiet(&self, id: i32) -> bool {
        self.sessions.get(&id).is_some_and(|s| s.quiet_at == Some(self.generation))
    }

    pub fn len(&self) -> usize {
        self.sessions.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sessions.is_empty()
    }

    pub fn get(&self, id: i32) -> Option<&Session> {
        self.sessions.get(&id)
    }

    /// Decides how `req` is answered and applies its session changes (close, update, the next
    /// epoch). `Err(code)`: the top-level session error to answer with; `Err(None)`: a protocol
    /// violation to close the connection for (a session above `partitions_max`).
    pub fn begin(&mut self, version: i16, req: &FetchRequest, now: Instant) -> Result<Mode, Option<i16>> {
        if version < 7 {
            return Ok(Mode::Sessionless);
        }
        let (id, epoch) = (req.session_id, req.session_epoch);
        if epoch == FINAL_EPOCH || epoch == INITIAL_EPOCH {
            if id != 0 {
                self.sessions.remove(&id);
            }
            return Ok(if epoch == INITIAL_EPOCH && self.slots_max > 0 { Mode::Open } else { Mode::Sessionless });
        }
        let partitions_max = self.partitions_max;
        let Some(s) = self.sessions.get_mut(&id) else { return Err(Some(FETCH_SESSION_ID_NOT_FOUND)) };
        if s.epoch != epoch {
            return Err(Some(INVALID_FETCH_SESSION_EPOCH));
        }
        if s.uses_topic_ids != (version >= 13) {
            return Err(Some(FETCH_SESSION_TOPIC_ID_ERROR));
        }
        let uses_ids = s.uses_topic_ids;
        if !req.topics.is_empty() || !req.forgotten_topics_data.is_empty() {
            s.quiet_at = None;
        }
        for t in &req.topics {
            for p in &t.partitions {
                let key = key_of(uses_ids, t.topic.0.as_str(), t.topic_id, p.partition);
                match s.partitions.iter_mut().find(|c| c.key == key) {
                    Some(c) => c.fetch = p.clone(),
                    None => s.partitions.push(Cached {
                        key,
                        fetch: p.clone(),
                        high_watermark: -1,
                        last_stable_offset: -1,
                        log_start_offset: -1,
                    }),
                }
            }
        }
        for f in &req.forgotten_topics_data {
            s.partitions.retain(|c| {
                !(f.partitions.contains(&c.key.partition)
                    && c.key == key_of(uses_ids, &f.topic, f.topic_id, c.key.partition))
            });
        }
        if s.partitions.len() > partitions_max {
            self.sessions.remove(&id);
            return Err(None);
        }
        if !req.topics.is_empty() && self.partitions_held() > SESSION_PARTITIONS_TOTAL_MAX {
            self.sessions.remove(&id);
            return Err(Some(FETCH_SESSION_ID_NOT_FOUND));
        }
        let Some(s) = self.sessions.get_mut(&id) else { return Err(Some(FETCH_SESSION_ID_NOT_FOUND)) };
        s.epoch = if epoch == i32::MAX { 1 } else { epoch + 1 };
        s.last_used = now;
        Ok(Mode::Incremental(id))
    }

    /// The request an incremental fetch is planned from: the original's limits with every
    /// partition of the session, in its order, grouped by topic as the broker's answer groups
    /// them (consecutive partitions of one topic).
    pub fn request_of(&self, id: i32, req: &FetchRequest) -> Option<FetchRequest> {
        let s = self.sessions.get(&id)?;
        let mut topics: Vec<FetchTopic> = Vec::new();
        for c in &s.partitions {
            let same = topics.last().is_some_and(|t| t.topic.0.as_str() == c.key.topic && t.topic_id == c.key.topic_id);
            if !same {
                topics.push(
                    FetchTopic::default()
                        .with_topic(TopicName(kafka_protocol::protocol::StrBytes::from_string(c.key.topic.clone())))
                        .with_topic_id(c.key.topic_id),
                );
            }
            if let Some(t) = topics.last_mut() {
                t.partitions.push(c.fetch.clone());
            }
        }
        let mut out = req.clone();
        out.topics = topics;
        out.forgotten_topics_data = Vec::new();
        Some(out)
    }

    /// Opens a session for a full answer being sent: `shown` is every partition of the request
    /// with what the answer showed, in order. The new session id, or 0 when the cache has no
    /// room for it.
    pub fn open(&mut self, version: i16, req: &FetchRequest, shown: &[Shown], now: Instant) -> i32 {
        let uses_ids = version >= 13;
        let mut partitions: Vec<Cached> = Vec::new();
        let mut answers = shown.iter();
        for t in &req.topics {
            for p in &t.partitions {
                let a = answers.next();
                let key = key_of(uses_ids, t.topic.0.as_str(), t.topic_id, p.partition);
                partitions.retain(|c| c.key != key);
                partitions.push(Cached {
                    key,
                    fetch: p.clone(),
                    high_watermark: a.map_or(-1, |a| a.high_watermark),
                    last_stable_offset: a.map_or(-1, |a| a.last_stable_offset),
                    log_start_offset: a.map_or(-1, |a| a.log_start_offset),
                });
            }
        }
        if partitions.len() > self.partitions_max || !self.make_room(partitions.len(), now) {
            return 0;
        }
        if self.partitions_held() + partitions.len() > SESSION_PARTITIONS_TOTAL_MAX {
            return 0;
        }
        let id = self.new_id();
        self.opened += 1;
        let s = Session { id, epoch: 1, uses_topic_ids: uses_ids, partitions, last_used: now, quiet_at: None };
        self.sessions.insert(id, s);
        id
    }

    /// For an incremental answer being sent: which of the session's partitions (in order) it
    /// lists, with the session updated to what they now show and those with records moved to
    /// the end. `shown` is every session partition, in session order; `quiet`: the answer had
    /// no records, errors or pending work (see `quiet_at`).
    pub fn answer(&mut self, id: i32, shown: &[Shown], quiet: bool) -> Vec<bool> {
        let generation = self.generation;
        let Some(s) = self.sessions.get_mut(&id).filter(|s| s.partitions.len() == shown.len()) else {
            // The session changed while this answer waited (another request on it): list all.
            return vec![true; shown.len()];
        };
        let mut listed = Vec::with_capacity(shown.len());
        let mut moved = Vec::new();
        for (i, (c, a)) in s.partitions.iter_mut().zip(shown).enumerate() {
            let news = a.record_bytes > 0
                || a.error_code != 0
                || a.preferred_read_replica >= 0
                || a.high_watermark != c.high_watermark
                || a.last_stable_offset != c.last_stable_offset
                || a.log_start_offset != c.log_start_offset;
            if news {
                c.high_watermark = a.high_watermark;
                c.last_stable_offset = a.last_stable_offset;
                c.log_start_offset = a.log_start_offset;
            }
            if a.record_bytes > 0 {
                moved.push(i);
            }
            listed.push(news);
        }
        for (n, i) in moved.into_iter().enumerate() {
            let c = s.partitions.remove(i - n);
            s.partitions.push(c);
        }
        s.quiet_at = quiet.then_some(generation);
        listed
    }

    /// Makes a slot for a session of `size` partitions: a free one, else by eviction.
    fn make_room(&mut self, size: usize, now: Instant) -> bool {
        if self.sessions.len() < self.slots_max {
            return true;
        }
        let stale = self
            .sessions
            .values()
            .filter(|s| now.saturating_duration_since(s.last_used) > self.eviction)
            .min_by_key(|s| s.last_used)
            .map(|s| s.id);
        let victim = stale.or_else(|| {
            let smallest = self.sessions.values().min_by_key(|s| (s.partitions.len(), s.id))?;
            // The broker compares EvictableKey(size, id 0) with the smallest one's: only a
            // strictly larger new session wins.
            (size > smallest.partitions.len()).then_some(smallest.id)
        });
        match victim {
            Some(id) => {
                self.sessions.remove(&id);
                self.evictions += 1;
                true
            }
            None => false,
        }
    }

    fn partitions_held(&self) -> usize {
        self.sessions.values().map(|s| s.partitions.len()).sum()
    }

    fn new_id(&mut self) -> i32 {
        loop {
            self.rng ^= self.rng << 13;
            self.rng ^= self.rng >> 7;
            self.rng ^= self.rng << 17;
            let id = (self.rng >> 33) as i32;
            if id > 0 && !self.sessions.contains_key(&id) {
                return id;
            }
        }
    }

    /// Sessions per size, for tests and metrics.
    pub fn sizes(&self) -> BTreeMap<i32, usize> {
        self.sessions.values().map(|s| (s.id, s.partitions.len())).collect()
    }
}

fn key_of(uses_ids: bool, topic: &str, topic_id: uuid::Uuid, partition: i32) -> Key {
    if uses_ids {
        Key { topic: String::new(), topic_id, partition }
    } else {
        Key { topic: topic.to_string(), topic_id: uuid::Uuid::nil(), partition }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::fetch_request::ForgottenTopic;
    use kafka_protocol::protocol::StrBytes;

    fn req(id: i32, epoch: i32, parts: &[(&str, i32, i64)]) -> FetchRequest {
        let mut topics: Vec<FetchTopic> = Vec::new();
        for &(t, p, offset) in parts {
            if topics.last().is_none_or(|x| x.topic.0.as_str() != t) {
                topics.push(FetchTopic::default().with_topic(TopicName(StrBytes::from_string(t.into()))));
            }
            topics
                .last_mut()
                .unwrap()
                .partitions
                .push(FetchPartition::default().with_partition(p).with_fetch_offset(offset));
        }
        FetchRequest::default().with_session_id(id).with_session_epoch(epoch).with_topics(topics)
    }

    fn shown(hw: i64, bytes: u64) -> Shown {
        Shown {
            error_code: 0,
            high_watermark: hw,
            last_stable_offset: hw,
            log_start_offset: 0,
            record_bytes: bytes,
            preferred_read_replica: -1,
        }
    }

    #[test]
    fn a_session_opens_follows_its_epochs_and_lists_only_news() {
        let now = Instant::now();
        let mut c = FetchSessions::new(10, 100, 7);
        let full = req(0, 0, &[("a", 0, 5), ("a", 1, 0), ("b", 0, 9)]);
        assert_eq!(c.begin(12, &full, now), Ok(Mode::Open));
        let id = c.open(12, &full, &[shown(10, 0), shown(3, 0), shown(9, 0)], now);
        assert!(id > 0);
        // Epoch 1: nothing changed, a partition added.
        let inc = req(id, 1, &[("c", 0, 0)]);
        assert_eq!(c.begin(12, &inc, now), Ok(Mode::Incremental(id)));
        let plan = c.request_of(id, &inc).unwrap();
        let names: Vec<(String, usize)> =
            plan.topics.iter().map(|t| (t.topic.0.to_string(), t.partitions.len())).collect();
        assert_eq!(names, vec![("a".into(), 2), ("b".into(), 1), ("c".into(), 1)]);
        let listed = c.answer(id, &[shown(10, 0), shown(4, 0), shown(9, 0), shown(1, 0)], true);
        assert_eq!(listed, vec![false, true, false, true], "a-1's HW moved, c-0 is new");
        // A quiet answer lets the next idle poll skip planning, until the view or the session
        // changes.
        assert!(c.is_quiet(id));
        c.view_changed();
        assert!(!c.is_quiet(id), "the log view moved: plan again");
        c.answer(id, &[shown(10, 0), shown(4, 0), shown(9, 0), shown(1, 0)], true);
        assert!(c.is_quiet(id));
        // Records move a partition to the end of the order.
        assert_eq!(c.begin(12, &req(id, 2, &[]), now), Ok(Mode::Incremental(id)));
        assert_eq!(
            c.answer(id, &[shown(10, 100), shown(4, 0), shown(9, 0), shown(1, 0)], false),
            vec![true, false, false, false]
        );
        let order: Vec<(String, i32)> =
            c.get(id).unwrap().partitions.iter().map(|p| (p.key.topic.clone(), p.key.partition)).collect();
        assert_eq!(order, vec![("a".into(), 1), ("b".into(), 0), ("c".into(), 0), ("a".into(), 0)]);
        // Wrong epochs and unknown sessions, as the broker answers them.
        assert_eq!(c.begin(12, &req(id, 2, &[]), now), Err(Some(INVALID_FETCH_SESSION_EPOCH)));
        assert_eq!(c.begin(12, &req(id + 1, 3, &[]), now), Err(Some(FETCH_SESSION_ID_NOT_FOUND)));
        assert_eq!(c.begin(13, &req(id, 3, &[]), now), Err(Some(FETCH_SESSION_TOPIC_ID_ERROR)));
        // Forgetting removes; FINAL closes and answers without a session.
        let mut forget = req(id, 3, &[]);
        forget.forgotten_topics_data = vec![ForgottenTopic::default()
            .with_topic(TopicName(StrBytes::from_static_str("b")))
            .with_partitions(vec![0])];
        assert_eq!(c.begin(12, &forget, now), Ok(Mode::Incremental(id)));
        assert_eq!(c.get(id).unwrap().partitions.len(), 3);
        assert_eq!(c.begin(12, &req(id, -1, &[("a", 0, 0)]), now), Ok(Mode::Sessionless));
        assert!(c.get(id).is_none());
        assert_eq!(c.begin(6, &req(5, 9, &[]), now), Ok(Mode::Sessionless), "v6 knows no sessions");
    }

    #[test]
    fn a_full_cache_evicts_the_stale_then_the_smallest_and_slots_zero_disables() {
        let now = Instant::now();
        let mut c = FetchSessions::new(2, 100, 3);
        let big = req(0, 0, &[("a", 0, 0), ("a", 1, 0), ("a", 2, 0)]);
        let small = req(0, 0, &[("a", 0, 0)]);
        let s1 = c.open(12, &small, &[shown(0, 0)], now);
        let s2 = c.open(12, &big, &[shown(0, 0); 3], now + Duration::from_secs(1));
        assert!(s1 > 0 && s2 > 0 && s1 != s2);
        // Full, none stale: a session no larger than the smallest gets no slot (id 0).
        assert_eq!(c.open(12, &small, &[shown(0, 0)], now + Duration::from_secs(2)), 0);
        // A larger one evicts the smallest.
        let s3 = c.open(12, &big, &[shown(0, 0); 3], now + Duration::from_secs(3));
        assert!(s3 > 0 && c.get(s1).is_none() && c.get(s2).is_some());
        assert_eq!(c.evictions, 1);
        // After the eviction time any new session replaces the least recently used.
        let late = now + Duration::from_millis(SESSION_EVICTION_MS + 2000);
        let s4 = c.open(12, &small, &[shown(0, 0)], late);
        assert!(s4 > 0 && c.get(s2).is_none() && c.get(s3).is_some());
        let mut off = FetchSessions::new(0, 100, 1);
        assert_eq!(off.begin(12, &small, now), Ok(Mode::Sessionless));
        // A session above the partition bound is refused.
        let mut tight = FetchSessions::new(5, 2, 1);
        assert_eq!(tight.open(12, &big, &[shown(0, 0); 3], now), 0);
        let id = tight.open(12, &small, &[shown(0, 0)], now);
        assert_eq!(tight.begin(12, &req(id, 1, &[("b", 0, 0), ("b", 1, 0)]), now), Err(None));
    }
}
