//! The cluster image: what the metadata log says the cluster is, after replaying its records.
//!
//! Owns the state and the replay rules of the broker's `MetadataDelta` for the records logferry
//! keeps (`docs/cluster-and-security.md` §3): a registration replaces the broker's previous one;
//! a registration change must carry the registered epoch; every PartitionChangeRecord bumps the
//! partition epoch, and one that names a leader (even the same one) bumps the leader epoch;
//! removing a topic removes its partitions and configs; a config value of null deletes the key.
//! A record that does not fit the image (a change for an unknown partition, an epoch mismatch)
//! is counted in [`Image::inconsistent`] and otherwise ignored, never a panic.

use std::collections::{BTreeMap, HashMap};

use super::records::{AclEntry, Endpoint, MetadataRecord, PartitionChange, PartitionRecord, NO_LEADER_CHANGE};
use crate::log::meta::Uuid;

/// `ConfigResource.Type.TOPIC`.
pub const CONFIG_TOPIC: i8 = 2;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Broker {
    pub id: i32,
    pub epoch: i64,
    pub endpoints: Vec<Endpoint>,
    pub rack: Option<String>,
    pub fenced: bool,
    pub in_controlled_shutdown: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartitionState {
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
    /// −1: no leader.
    pub leader: i32,
    pub leader_epoch: i32,
    pub partition_epoch: i32,
    /// KIP-966 eligible leader replicas and the last known ones (empty without ELR).
    pub elr: Vec<i32>,
    pub last_known_elr: Vec<i32>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Topic {
    pub name: String,
    pub id: Uuid,
    pub partitions: BTreeMap<i32, PartitionState>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScramCredential {
    pub salt: Vec<u8>,
    pub stored_key: Vec<u8>,
    pub server_key: Vec<u8>,
    pub iterations: i32,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Image {
    pub brokers: BTreeMap<i32, Broker>,
    pub topics: HashMap<Uuid, Topic>,
    /// Topic name → id.
    pub names: BTreeMap<String, Uuid>,
    /// (resource type, resource name) → key → value: dynamic configs only.
    pub configs: BTreeMap<(i8, String), BTreeMap<String, String>>,
    /// (user, mechanism: 1 SCRAM-SHA-256, 2 SCRAM-SHA-512) → credential.
    pub scram: BTreeMap<(String, i8), ScramCredential>,
    pub acls: BTreeMap<Uuid, AclEntry>,
    /// `acls` by resource and pattern, for the authorizer's lookups.
    pub acl_index: crate::auth::acl::AclIndex,
    /// Feature name → level (`metadata.version`, `group.version`, …).
    pub features: BTreeMap<String, i16>,
    /// Records that did not fit the image (see the module doc).
    pub inconsistent: u64,
}

impl Image {
    pub fn topic(&self, name: &str) -> Option<&Topic> {
        self.names.get(name).and_then(|id| self.topics.get(id))
    }

    pub fn partition(&self, topic: &str, partition: i32) -> Option<&PartitionState> {
        self.topic(topic)?.partitions.get(&partition)
    }

    /// Applies one record. `false` when it did not fit the image (counted).
    pub fn apply(&mut self, rec: MetadataRecord) -> bool {
        let ok = self.apply_inner(rec);
        if !ok {
            self.inconsistent += 1;
        }
        ok
    }

    fn apply_inner(&mut self, rec: MetadataRecord) -> bool {
        use MetadataRecord as M;
        match rec {
            M::RegisterBroker { broker_id, broker_epoch, endpoints, rack, fenced, in_controlled_shutdown } => {
                self.brokers.insert(
                    broker_id,
                    Broker { id: broker_id, epoch: broker_epoch, endpoints, rack, fenced, in_controlled_shutdown },
                );
            }
            M::UnregisterBroker { broker_id, .. } => return self.brokers.remove(&broker_id).is_some(),
            M::BrokerChange { broker_id, broker_epoch, fenced, in_controlled_shutdown } => {
                let Some(b) = self.brokers.get_mut(&broker_id).filter(|b| b.epoch == broker_epoch) else {
                    return false;
                };
                match fenced {
                    1 => b.fenced = true,
                    -1 => b.fenced = false,
                    _ => {}
                }
                if in_controlled_shutdown == 1 {
                    b.in_controlled_shutdown = true;
                }
                // An unfenced broker has restarted: it is no longer shutting down.
                if fenced == -1 {
                    b.in_controlled_shutdown = false;
                }
            }
            M::Topic { name, topic_id } => {
                self.names.insert(name.clone(), topic_id);
                self.topics.insert(topic_id, Topic { name, id: topic_id, partitions: BTreeMap::new() });
            }
            M::RemoveTopic { topic_id } => {
                let Some(t) = self.topics.remove(&topic_id) else { return false };
                self.names.remove(&t.name);
                self.configs.remove(&(CONFIG_TOPIC, t.name));
            }
            M::Partition(p) => return self.register_partition(p),
            M::PartitionChange(c) => return self.change_partition(c),
            M::Config { resource_type, resource_name, name, value } => {
                let entry = self.configs.entry((resource_type, resource_name.clone())).or_default();
                match value {
                    Some(v) => {
                        entry.insert(name, v);
                    }
                    None => {
                        entry.remove(&name);
                        if entry.is_empty() {
                            self.configs.remove(&(resource_type, resource_name));
                        }
                    }
                }
            }
            M::UserScramCredential { name, mechanism, salt, stored_key, server_key, iterations } => {
                self.scram.insert((name, mechanism), ScramCredential { salt, stored_key, server_key, iterations });
            }
            M::RemoveUserScramCredential { name, mechanism } => {
                return self.scram.remove(&(name, mechanism)).is_some();
            }
            M::AccessControlEntry(acl) => {
                self.acl_index.insert(&acl);
                if let Some(old) = self.acls.insert(acl.id, acl) {
                    // The same id again: the old entry's bucket may differ.
                    self.acl_index.remove(&old);
                    if let Some(new) = self.acls.get(&old.id) {
                        self.acl_index.insert(new);
                    }
                }
            }
            M::RemoveAccessControlEntry { id } => match self.acls.remove(&id) {
                Some(old) => self.acl_index.remove(&old),
                None => return false,
            },
            M::ClearElr { topic_name } => {
                // Only the lists are emptied: no answer logferry gives shows a partition epoch,
                // and a leader epoch does not change for it.
                for t in self.topics.values_mut().filter(|t| topic_name.is_empty() || t.name == topic_name) {
                    for p in t.partitions.values_mut() {
                        p.elr.clear();
                        p.last_known_elr.clear();
                    }
                }
            }
            M::FeatureLevel { name, level } => {
                if level == 0 {
                    self.features.remove(&name);
                } else {
                    self.features.insert(name, level);
                }
            }
            // Transactions are the follower's business; the rest carries nothing kept here.
            M::BeginTransaction | M::EndTransaction | M::AbortTransaction | M::Ignored(_) | M::Unknown { .. } => {}
        }
        true
    }

    fn register_partition(&mut self, p: PartitionRecord) -> bool {
        let Some(t) = self.topics.get_mut(&p.topic_id) else { return false };
        t.partitions.insert(
            p.partition_id,
            PartitionState {
                replicas: p.replicas,
                isr: p.isr,
                leader: p.leader,
                leader_epoch: p.leader_epoch,
                partition_epoch: p.partition_epoch,
                elr: p.elr,
                last_known_elr: p.last_known_elr,
            },
        );
        true
    }

    fn change_partition(&mut self, c: PartitionChange) -> bool {
        let Some(p) = self.topics.get_mut(&c.topic_id).and_then(|t| t.partitions.get_mut(&c.partition_id)) else {
            return false;
        };
        if let Some(isr) = c.isr {
            p.isr = isr;
        }
        if let Some(replicas) = c.replicas {
            p.replicas = replicas;
        }
        if let Some(elr) = c.elr {
            p.elr = elr;
        }
        if let Some(last_known_elr) = c.last_known_elr {
            p.last_known_elr = last_known_elr;
        }
        if c.leader != NO_LEADER_CHANGE {
            p.leader = c.leader;
            p.leader_epoch += 1;
        }
        p.partition_epoch += 1;
        true
    }

    /// A broker that is registered and not fenced.
    pub fn is_live(&self, broker: i32) -> bool {
        self.brokers.get(&broker).is_some_and(|b| !b.fenced)
    }

    /// Partitions in all topics.
    pub fn partition_count(&self) -> usize {
        self.topics.values().map(|t| t.partitions.len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leader_named_again_still_bumps_the_epoch_and_unknown_partitions_are_counted() {
        let mut img = Image::default();
        let id = [7u8; 16];
        assert!(img.apply(MetadataRecord::Topic { name: "t".into(), topic_id: id }));
        assert!(img.apply(MetadataRecord::Partition(PartitionRecord {
            partition_id: 0,
            topic_id: id,
            replicas: vec![1, 2],
            isr: vec![1, 2],
            leader: 1,
            leader_epoch: 0,
            partition_epoch: 0,
            elr: vec![2],
            last_known_elr: Vec::new(),
        })));
        let change = |leader| {
            MetadataRecord::PartitionChange(PartitionChange {
                partition_id: 0,
                topic_id: id,
                leader,
                ..Default::default()
            })
        };
        assert!(img.apply(change(1)));
        assert!(img.apply(change(NO_LEADER_CHANGE)));
        let p = img.partition("t", 0).unwrap();
        assert_eq!((p.leader, p.leader_epoch, p.partition_epoch), (1, 1, 2));
        assert_eq!(p.elr, vec![2], "a change without ELR tags keeps the ELR");
        assert!(img.apply(MetadataRecord::ClearElr { topic_name: "other".into() }));
        assert_eq!(img.partition("t", 0).unwrap().elr, vec![2]);
        assert!(img.apply(MetadataRecord::ClearElr { topic_name: String::new() }));
        assert!(img.partition("t", 0).unwrap().elr.is_empty(), "\"\" clears every topic's ELR");
        assert!(!img.apply(MetadataRecord::PartitionChange(PartitionChange {
            partition_id: 5,
            topic_id: id,
            leader: 2,
            ..Default::default()
        })));
        assert_eq!(img.inconsistent, 1);
        assert!(img.apply(MetadataRecord::RemoveTopic { topic_id: id }));
        assert!(img.topic("t").is_none() && img.names.is_empty());
    }
}
