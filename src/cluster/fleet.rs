//! The fleet presentation: the cluster of the metadata image, shown as the logferry instances
//! beside its brokers.
//!
//! Owns three decisions, each a pure function of the image, the peer map and this instance's
//! identity, so every instance of a fleet at the same metadata offset answers the same:
//! - where the logferry beside broker N listens ([`Fleet::address`]): `--peer N=HOST:PORT`,
//!   else with `--peer-port` the host of broker N's registered listener (`--peer-listener`, else
//!   the broker's `inter.broker.listener.name`, else its first) at that port; this instance is
//!   always at its own advertised address. A broker with no known address is never given one;
//! - which node leads a partition ([`Fleet::leader`]): the instance beside its Kafka leader when
//!   that broker is live (registered, not fenced) and addressed; none otherwise, so the partition
//!   is answered LEADER_NOT_AVAILABLE. One exception keeps backups and stopped clusters readable:
//!   when no broker of the image is live at all, this instance leads the partitions it holds;
//! - which node coordinates a group ([`Fleet::group_coordinator`]): the leader of the group's
//!   `__consumer_offsets` partition, `abs(hashCode(group)) % partitions`, as the broker's
//!   `GroupCoordinator` chooses (the lowest live node while that topic does not exist).

use std::collections::BTreeMap;

use super::image::{Image, PartitionState};

/// Where the peers of the fleet listen (from the command line).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FleetConfig {
    /// Node id → the address of the logferry beside that broker.
    pub peers: BTreeMap<i32, (String, u16)>,
    /// Every peer listens on this port, at the host of its broker's registered listener.
    pub peer_port: Option<u16>,
    /// The listener whose host `peer_port` uses.
    pub peer_listener: Option<String>,
}

/// One node of the presentation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Node {
    pub id: i32,
    pub host: String,
    pub port: u16,
    pub rack: Option<String>,
}

pub const CONSUMER_OFFSETS: &str = "__consumer_offsets";

/// Java's `String.hashCode` over UTF-16 code units, with `Utils.abs`.
pub fn java_abs_hash(s: &str) -> i32 {
    let h = s.encode_utf16().fold(0i32, |h, c| h.wrapping_mul(31).wrapping_add(i32::from(c)));
    if h == i32::MIN {
        0
    } else {
        h.abs()
    }
}

/// The presentation for one request: the nodes that are shown and the rules above.
pub struct Fleet<'a> {
    pub image: &'a Image,
    pub self_id: i32,
    /// Shown nodes: live, addressed brokers, and this instance always.
    pub nodes: BTreeMap<i32, Node>,
    /// No broker of the image is live (a stopped cluster, a backup).
    pub all_down: bool,
}

impl<'a> Fleet<'a> {
    pub fn new(image: &'a Image, config: &FleetConfig, self_id: i32, self_host: &str, self_port: u16) -> Self {
        let mut nodes = BTreeMap::new();
        for b in image.brokers.values().filter(|b| !b.fenced) {
            if let Some((host, port)) = Self::address(image, config, b.id) {
                nodes.insert(b.id, Node { id: b.id, host, port, rack: b.rack.clone() });
            }
        }
        let rack = image.brokers.get(&self_id).and_then(|b| b.rack.clone());
        nodes.insert(self_id, Node { id: self_id, host: self_host.to_string(), port: self_port, rack });
        let all_down = image.brokers.values().all(|b| b.fenced);
        Fleet { image, self_id, nodes, all_down }
    }

    /// The presentation for a server: this instance is `config`'s node at its advertised
    /// address. `None` without a metadata log or before any broker registered.
    pub fn of(cluster: Option<&'a super::MetadataLog>, config: &crate::protocol::ServeConfig) -> Option<Self> {
        let image = cluster.map(|c| &c.image).filter(|i| !i.brokers.is_empty())?;
        let port = u16::try_from(config.advertised_port).unwrap_or(0);
        Some(Self::new(image, &config.fleet, config.node_id, &config.advertised_host, port))
    }

    /// Where the logferry beside broker `id` listens, when known (not for this instance).
    pub fn address(image: &Image, config: &FleetConfig, id: i32) -> Option<(String, u16)> {
        if let Some(a) = config.peers.get(&id) {
            return Some(a.clone());
        }
        let port = config.peer_port?;
        let b = image.brokers.get(&id)?;
        let ep = match &config.peer_listener {
            Some(name) => b.endpoints.iter().find(|e| &e.name == name)?,
            None => b.endpoints.first()?,
        };
        Some((ep.host.clone(), port))
    }

    /// The node that leads `p` in the presentation, if any. `local`: this instance holds a
    /// replica of it.
    pub fn leader(&self, p: &PartitionState, local: bool) -> Option<i32> {
        if p.leader >= 0 && self.image.is_live(p.leader) && self.nodes.contains_key(&p.leader) {
            return Some(p.leader);
        }
        (self.all_down && local).then_some(self.self_id)
    }

    /// Replicas that are not shown as live nodes.
    pub fn offline(&self, p: &PartitionState) -> Vec<i32> {
        p.replicas.iter().copied().filter(|r| !(self.image.is_live(*r) && self.nodes.contains_key(r))).collect()
    }

    /// The node that coordinates `group`, or `None` while its offsets partition has no leader.
    pub fn group_coordinator(&self, group: &str) -> Option<i32> {
        match self.image.topic(CONSUMER_OFFSETS) {
            Some(t) if !t.partitions.is_empty() => {
                let n = t.partitions.len() as i32;
                let p = t.partitions.get(&(java_abs_hash(group) % n))?;
                self.leader(p, false).or_else(|| self.all_down.then_some(self.self_id))
            }
            _ => self.nodes.keys().next().copied(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::cluster::image::Broker;
    use crate::cluster::records::Endpoint;

    fn image(fenced: &[i32]) -> Image {
        let mut img = Image::default();
        for id in 1..=3 {
            img.brokers.insert(
                id,
                Broker {
                    id,
                    epoch: 1,
                    endpoints: vec![
                        Endpoint {
                            name: "CLIENT".into(),
                            host: format!("client{id}"),
                            port: 9092,
                            security_protocol: 0,
                        },
                        Endpoint { name: "REPL".into(), host: format!("repl{id}"), port: 9093, security_protocol: 0 },
                    ],
                    rack: Some(format!("r{id}")),
                    fenced: fenced.contains(&id),
                    in_controlled_shutdown: false,
                },
            );
        }
        img
    }

    fn part(leader: i32) -> PartitionState {
        PartitionState {
            replicas: vec![leader, 3],
            isr: vec![leader],
            leader,
            leader_epoch: 4,
            partition_epoch: 9,
            elr: Vec::new(),
            last_known_elr: Vec::new(),
        }
    }

    #[test]
    fn peer_addresses_from_the_map_or_the_registered_listener() {
        let img = image(&[]);
        let mut c = FleetConfig::default();
        assert_eq!(Fleet::address(&img, &c, 2), None, "no peer map: no address, never a guess");
        c.peer_port = Some(9192);
        assert_eq!(Fleet::address(&img, &c, 2), Some(("client2".into(), 9192)), "first listener by default");
        c.peer_listener = Some("REPL".into());
        assert_eq!(Fleet::address(&img, &c, 2), Some(("repl2".into(), 9192)));
        c.peer_listener = Some("NOPE".into());
        assert_eq!(Fleet::address(&img, &c, 2), None);
        c.peers.insert(2, ("x".into(), 1));
        assert_eq!(Fleet::address(&img, &c, 2), Some(("x".into(), 1)), "--peer wins");
    }

    #[test]
    fn leaders_are_live_addressed_instances_and_a_dead_cluster_is_served_locally() {
        let mut c = FleetConfig::default();
        c.peers.insert(2, ("h2".into(), 2));
        let img = image(&[]);
        let f = Fleet::new(&img, &c, 1, "me", 1);
        assert_eq!(f.nodes.keys().copied().collect::<Vec<_>>(), [1, 2], "broker 3 has no address");
        assert_eq!(f.nodes[&1].rack.as_deref(), Some("r1"));
        assert_eq!(f.leader(&part(2), false), Some(2));
        assert_eq!(f.leader(&part(3), true), None, "an unaddressed leader: LEADER_NOT_AVAILABLE");
        assert_eq!(f.offline(&part(2)), [3]);
        let img = image(&[2]);
        let f = Fleet::new(&img, &c, 1, "me", 1);
        assert_eq!(f.leader(&part(2), true), None, "a fenced leader is not shown");
        assert_eq!(f.leader(&part(-1), true), None);
        let img = image(&[1, 2, 3]);
        let f = Fleet::new(&img, &c, 1, "me", 1);
        assert!(f.all_down);
        assert_eq!(f.leader(&part(2), true), Some(1), "nothing is live: this instance serves what it holds");
        assert_eq!(f.leader(&part(2), false), None);
    }

    #[test]
    fn group_coordinator_is_the_offsets_partition_leader() {
        let mut img = image(&[]);
        let id = [1u8; 16];
        let partitions = (0..6).map(|p| (p, part(1 + p % 3))).collect();
        img.topics.insert(id, crate::cluster::image::Topic { name: CONSUMER_OFFSETS.into(), id, partitions });
        img.names.insert(CONSUMER_OFFSETS.into(), id);
        let c = FleetConfig { peer_port: Some(1), ..Default::default() };
        let f = Fleet::new(&img, &c, 1, "me", 1);
        // "group" hashes to 98629247 % 6 = 5, led by 1 + 5 % 3 = 3.
        assert_eq!(f.group_coordinator("group"), Some(3));
        // "logferry-test": 1401643945 % 6 = 1, led by 2.
        assert_eq!(f.group_coordinator("logferry-test"), Some(2));
    }

    #[test]
    fn java_string_hash() {
        // Values from Java: "".hashCode() = 0, "group".hashCode() = 98629247,
        // "logferry-test".hashCode() = 1401643945 (checked with a JVM).
        assert_eq!(java_abs_hash(""), 0);
        assert_eq!(java_abs_hash("group"), 98629247);
        assert_eq!(java_abs_hash("logferry-test"), 1401643945);
    }
}
