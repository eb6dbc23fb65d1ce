//! The metadata log reader against golden bytes: `tests/fixtures/cluster-metadata` is node 1's
//! `__cluster_metadata-0` from a real 3-node Kafka 4.4 cluster (topics created, one deleted,
//! configs, SCRAM users added and removed, ACLs, a snapshot, a broker SIGKILLed and the other
//! two shut down), and beside it what Kafka's own decoder (`kafka-dump-log.sh
//! --cluster-metadata-decoder`) printed for every record. Every record logferry decodes is
//! compared with Kafka's reading of it; then the image, the follower and bad input.

use std::path::{Path, PathBuf};

use logferry::cluster::image::Image;
use logferry::cluster::records::MetadataRecord as M;
use logferry::cluster::{decode_file, MetadataLog, METADATA_DIR_NAME};
use logferry::log::meta::uuid_to_string;
use serde_json::Value;

fn fixture() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/cluster-metadata")
}

const LOG: &str = "00000000000000000000.log";
const SNAPSHOT: &str = "00000000000000000146-0000000001.checkpoint";

fn kafka_says(name: &str) -> Vec<Value> {
    let text = std::fs::read_to_string(fixture().join(name)).unwrap();
    text.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

fn i(v: &Value) -> i64 {
    v.as_i64().unwrap_or_else(|| panic!("not a number: {v}"))
}

fn ints(v: &Value) -> Vec<i32> {
    v.as_array().unwrap().iter().map(|x| i(x) as i32).collect()
}

/// Compares one decoded record with Kafka's JSON of it; panics naming the difference.
fn same(offset: i64, ours: &M, kafka: &Value) {
    let d = &kafka["data"];
    let t = kafka["type"].as_str().unwrap();
    let s = |k: &str| d[k].as_str().map(str::to_string);
    let ctx = format!("offset {offset}: {t}: ours {ours:?}, Kafka {kafka}");
    match ours {
        M::RegisterBroker { broker_id, broker_epoch, endpoints, rack, fenced, in_controlled_shutdown } => {
            assert_eq!(t, "REGISTER_BROKER_RECORD", "{ctx}");
            assert_eq!(i64::from(*broker_id), i(&d["brokerId"]), "{ctx}");
            assert_eq!(*broker_epoch, i(&d["brokerEpoch"]), "{ctx}");
            assert_eq!(*rack, s("rack"), "{ctx}");
            assert_eq!(*fenced, d["fenced"].as_bool().unwrap(), "{ctx}");
            assert_eq!(*in_controlled_shutdown, d["inControlledShutdown"].as_bool().unwrap(), "{ctx}");
            let eps = d["endPoints"].as_array().unwrap();
            assert_eq!(endpoints.len(), eps.len(), "{ctx}");
            for (e, k) in endpoints.iter().zip(eps) {
                assert_eq!(
                    (e.name.as_str(), e.host.as_str(), i64::from(e.port), i64::from(e.security_protocol)),
                    (
                        k["name"].as_str().unwrap(),
                        k["host"].as_str().unwrap(),
                        i(&k["port"]),
                        i(&k["securityProtocol"])
                    ),
                    "{ctx}"
                );
            }
        }
        M::BrokerChange { broker_id, broker_epoch, fenced, in_controlled_shutdown } => {
            assert_eq!(t, "BROKER_REGISTRATION_CHANGE_RECORD", "{ctx}");
            assert_eq!(i64::from(*broker_id), i(&d["brokerId"]), "{ctx}");
            assert_eq!(*broker_epoch, i(&d["brokerEpoch"]), "{ctx}");
            assert_eq!(i64::from(*fenced), d.get("fenced").map_or(0, i), "{ctx}");
            assert_eq!(i64::from(*in_controlled_shutdown), d.get("inControlledShutdown").map_or(0, i), "{ctx}");
        }
        M::Topic { name, topic_id } => {
            assert_eq!(t, "TOPIC_RECORD", "{ctx}");
            assert_eq!((Some(name.clone()), Some(uuid_to_string(topic_id))), (s("name"), s("topicId")), "{ctx}");
        }
        M::RemoveTopic { topic_id } => {
            assert_eq!(t, "REMOVE_TOPIC_RECORD", "{ctx}");
            assert_eq!(Some(uuid_to_string(topic_id)), s("topicId"), "{ctx}");
        }
        M::Partition(p) => {
            assert_eq!(t, "PARTITION_RECORD", "{ctx}");
            assert_eq!(Some(uuid_to_string(&p.topic_id)), s("topicId"), "{ctx}");
            assert_eq!(
                (i64::from(p.partition_id), p.replicas.clone(), p.isr.clone()),
                (i(&d["partitionId"]), ints(&d["replicas"]), ints(&d["isr"])),
                "{ctx}"
            );
            assert_eq!(
                (i64::from(p.leader), i64::from(p.leader_epoch), i64::from(p.partition_epoch)),
                (i(&d["leader"]), i(&d["leaderEpoch"]), i(&d["partitionEpoch"])),
                "{ctx}"
            );
            // KIP-966 lists: absent from a v0/v1 record (and null) read as empty.
            let list = |k: &str| d.get(k).filter(|v| !v.is_null()).map_or(Vec::new(), ints);
            assert_eq!(
                (p.elr.clone(), p.last_known_elr.clone()),
                (list("eligibleLeaderReplicas"), list("lastKnownElr")),
                "{ctx}"
            );
        }
        M::PartitionChange(c) => {
            assert_eq!(t, "PARTITION_CHANGE_RECORD", "{ctx}");
            assert_eq!(Some(uuid_to_string(&c.topic_id)), s("topicId"), "{ctx}");
            assert_eq!(i64::from(c.partition_id), i(&d["partitionId"]), "{ctx}");
            assert_eq!(i64::from(c.leader), d.get("leader").map_or(-2, i), "{ctx}");
            assert_eq!(c.isr, d.get("isr").filter(|v| !v.is_null()).map(ints), "{ctx}");
            assert_eq!(c.replicas, d.get("replicas").filter(|v| !v.is_null()).map(ints), "{ctx}");
            assert_eq!(c.elr, d.get("eligibleLeaderReplicas").filter(|v| !v.is_null()).map(ints), "{ctx}");
            assert_eq!(c.last_known_elr, d.get("lastKnownElr").filter(|v| !v.is_null()).map(ints), "{ctx}");
        }
        M::ClearElr { topic_name } => {
            assert_eq!(t, "CLEAR_ELR_RECORD", "{ctx}");
            assert_eq!(Some(topic_name.clone()), s("topicName"), "{ctx}");
        }
        M::Config { resource_type, resource_name, name, value } => {
            assert_eq!(t, "CONFIG_RECORD", "{ctx}");
            assert_eq!(i64::from(*resource_type), i(&d["resourceType"]), "{ctx}");
            assert_eq!(
                (Some(resource_name.clone()), Some(name.clone()), value.clone()),
                (s("resourceName"), s("name"), s("value")),
                "{ctx}"
            );
        }
        M::UserScramCredential { name, mechanism, iterations, salt, stored_key, server_key } => {
            assert_eq!(t, "USER_SCRAM_CREDENTIAL_RECORD", "{ctx}");
            assert_eq!(Some(name.clone()), s("name"), "{ctx}");
            assert_eq!(
                (i64::from(*mechanism), i64::from(*iterations)),
                (i(&d["mechanism"]), i(&d["iterations"])),
                "{ctx}"
            );
            // Kafka prints the byte fields in base64: compare their decoded lengths.
            let b64len = |k: &str| s(k).map(|v| v.trim_end_matches('=').len() * 3 / 4);
            assert_eq!(
                (Some(salt.len()), Some(stored_key.len()), Some(server_key.len())),
                (b64len("salt"), b64len("storedKey"), b64len("serverKey")),
                "{ctx}"
            );
        }
        M::RemoveUserScramCredential { name, mechanism } => {
            assert_eq!(t, "REMOVE_USER_SCRAM_CREDENTIAL_RECORD", "{ctx}");
            assert_eq!((Some(name.clone()), i64::from(*mechanism)), (s("name"), i(&d["mechanism"])), "{ctx}");
        }
        M::AccessControlEntry(a) => {
            assert_eq!(t, "ACCESS_CONTROL_ENTRY_RECORD", "{ctx}");
            assert_eq!(Some(uuid_to_string(&a.id)), s("id"), "{ctx}");
            assert_eq!(
                (Some(a.resource_name.clone()), Some(a.principal.clone()), Some(a.host.clone())),
                (s("resourceName"), s("principal"), s("host")),
                "{ctx}"
            );
            assert_eq!(
                [a.resource_type, a.pattern_type, a.operation, a.permission_type].map(i64::from),
                [i(&d["resourceType"]), i(&d["patternType"]), i(&d["operation"]), i(&d["permissionType"])],
                "{ctx}"
            );
        }
        M::RemoveAccessControlEntry { id } => {
            assert_eq!(t, "REMOVE_ACCESS_CONTROL_ENTRY_RECORD", "{ctx}");
            assert_eq!(Some(uuid_to_string(id)), s("id"), "{ctx}");
        }
        M::FeatureLevel { name, level } => {
            assert_eq!(t, "FEATURE_LEVEL_RECORD", "{ctx}");
            assert_eq!((Some(name.clone()), i64::from(*level)), (s("name"), i(&d["featureLevel"])), "{ctx}");
        }
        M::BeginTransaction => assert_eq!(t, "BEGIN_TRANSACTION_RECORD", "{ctx}"),
        M::EndTransaction => assert_eq!(t, "END_TRANSACTION_RECORD", "{ctx}"),
        M::AbortTransaction => assert_eq!(t, "ABORT_TRANSACTION_RECORD", "{ctx}"),
        M::Ignored(key) => {
            let expected = match key {
                15 => "PRODUCER_IDS_RECORD",
                20 => "NO_OP_RECORD",
                27 => "REGISTER_CONTROLLER_RECORD",
                _ => panic!("{ctx}: unexpected ignored type"),
            };
            assert_eq!(t, expected, "{ctx}");
        }
        M::UnregisterBroker { .. } | M::Unknown { .. } => panic!("{ctx}: not expected in this fixture"),
    }
}

fn compare_file(name: &str, json: &str) -> usize {
    let ours = decode_file(&fixture().join(METADATA_DIR_NAME).join(name)).unwrap();
    let kafka = kafka_says(json);
    assert_eq!(ours.len(), kafka.len(), "{name}: record count");
    for ((offset, rec), k) in ours.iter().zip(&kafka) {
        assert_eq!(*offset, i(&k["offset"]), "{name}: offsets in step");
        let rec = rec.as_ref().unwrap_or_else(|e| panic!("{name} offset {offset}: {e}"));
        same(*offset, rec, k);
    }
    ours.len()
}

#[test]
fn every_record_decodes_as_kafka_decodes_it() {
    assert_eq!(compare_file(LOG, "00000000000000000000.log.json"), 216);
    assert_eq!(compare_file(SNAPSHOT, "00000000000000000146.snapshot.json"), 29);
}

fn copy_metadata(to: &Path, files: &[&str]) -> PathBuf {
    let dir = to.join(METADATA_DIR_NAME);
    std::fs::create_dir_all(&dir).unwrap();
    for f in files {
        std::fs::copy(fixture().join(METADATA_DIR_NAME).join(f), dir.join(f)).unwrap();
    }
    dir
}

/// The cluster's final state, derived from Kafka's JSON of the log with the broker's replay
/// rules (computed once and written down here).
fn check_final_image(img: &Image) {
    let mut names: Vec<_> = img.names.keys().cloned().collect();
    names.sort();
    assert_eq!(names, ["late", "spread"], "'other' was deleted");
    let want = [
        ("late", 0, vec![3, 1], vec![], -1, 1, 2),
        ("late", 1, vec![1, 2], vec![2], 2, 1, 1),
        ("late", 2, vec![2, 3], vec![2], 2, 0, 1),
        ("spread", 0, vec![1, 2], vec![2], 2, 1, 1),
        ("spread", 1, vec![2, 3], vec![2], 2, 0, 1),
        ("spread", 2, vec![3, 1], vec![], -1, 1, 2),
        ("spread", 3, vec![1, 3], vec![], -1, 2, 2),
        ("spread", 4, vec![2, 1], vec![2], 2, 0, 1),
    ];
    for (t, p, replicas, isr, leader, leader_epoch, partition_epoch) in want {
        let s = img.partition(t, p).unwrap_or_else(|| panic!("{t}-{p} missing"));
        assert_eq!(
            (&s.replicas, &s.isr, s.leader, s.leader_epoch, s.partition_epoch),
            (&replicas, &isr, leader, leader_epoch, partition_epoch),
            "{t}-{p}"
        );
    }
    assert_eq!(img.partition_count(), 8);
    let fenced: Vec<_> = img.brokers.values().map(|b| (b.id, b.fenced)).collect();
    assert_eq!(fenced, [(1, true), (2, false), (3, true)]);
    assert_eq!(img.brokers[&1].endpoints[0].name, "PLAINTEXT");
    assert_eq!(
        img.configs.get(&(2, "spread".into())).and_then(|c| c.get("retention.ms")).map(String::as_str),
        Some("123456")
    );
    assert!(!img.configs.contains_key(&(2, "other".into())), "a deleted topic's configs go with it");
    let users: Vec<_> = img.scram.iter().map(|((u, m), c)| (u.as_str(), *m, c.iterations)).collect();
    assert_eq!(users, [("alice", 1, 4096)], "bob's credential was removed");
    let mut acls: Vec<_> =
        img.acls.values().map(|a| (a.principal.as_str(), a.resource_name.as_str(), a.pattern_type)).collect();
    acls.sort();
    assert_eq!(acls, [("User:alice", "spread", 3), ("User:bob", "sp", 4)]);
    // The broker's decisions over these ACLs: alice ALLOW READ on topic spread (literal), bob
    // DENY ALL on topics prefixed sp.
    {
        use logferry::auth::acl::{authorize, AuthorizerConfig, Caller, Operation, Resource};
        let host = "127.0.0.1".parse().expect("ip");
        let strict = AuthorizerConfig::default();
        let open = AuthorizerConfig::from_properties(None, Some("true"));
        let can = |cfg: &AuthorizerConfig, who: &str, op, topic: &str| {
            let c = Caller { principal: who, host };
            let all = authorize(img.acls.values(), cfg, &c, op, Resource::Topic, topic);
            let candidates = img.acl_index.candidates(&img.acls, Resource::Topic, topic);
            assert_eq!(authorize(candidates, cfg, &c, op, Resource::Topic, topic), all, "the index decides alike");
            all
        };
        assert!(can(&strict, "User:alice", Operation::Read, "spread"));
        assert!(can(&strict, "User:alice", Operation::Describe, "spread"));
        assert!(!can(&strict, "User:alice", Operation::Write, "spread"));
        assert!(!can(&open, "User:bob", Operation::Describe, "spread"));
        assert!(!can(&open, "User:carol", Operation::Read, "spread"), "ACLs exist on spread");
        assert!(!can(&strict, "User:alice", Operation::Read, "other"));
        assert!(can(&open, "User:alice", Operation::Read, "other"), "no ACL applies to other");
        assert!(!can(&open, "User:bob", Operation::Read, "spx"));
    }
    assert_eq!(img.features.get("metadata.version"), Some(&33));
    assert_eq!(img.inconsistent, 0);
}

#[test]
fn snapshot_plus_log_and_log_alone_give_the_same_image() {
    let tmp = tempfile::tempdir().unwrap();
    let with = copy_metadata(&tmp.path().join("a"), &[LOG, SNAPSHOT, "00000000000000000000-0000000000.checkpoint"]);
    let m = MetadataLog::open(&with).unwrap();
    assert_eq!(m.snapshot.map(|s| s.end_offset), Some(146));
    assert_eq!(m.next_offset, 217);
    check_final_image(&m.image);
    let alone = copy_metadata(&tmp.path().join("b"), &[LOG]);
    let n = MetadataLog::open(&alone).unwrap();
    assert_eq!(n.snapshot, None);
    assert_eq!(n.image, m.image);
    assert_eq!((n.stats.records_unknown, n.stats.records_invalid, n.stats.batches_corrupt), (0, 0, 0));
}

/// Batch boundaries of the fixture's log: (position, end).
fn batches(log: &[u8]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut at = 0;
    while at + 12 <= log.len() {
        let len = i32::from_be_bytes(log[at + 8..at + 12].try_into().unwrap()) as usize;
        out.push((at, at + 12 + len));
        at += 12 + len;
    }
    out
}

#[test]
fn following_an_appended_log_in_pieces_reaches_the_same_image() {
    let full = std::fs::read(fixture().join(METADATA_DIR_NAME).join(LOG)).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let dir = copy_metadata(tmp.path(), &[]);
    let path = dir.join(LOG);
    std::fs::write(&path, &full[..0]).unwrap();
    let mut m = MetadataLog::open(&dir).unwrap();
    assert!(m.image.names.is_empty());
    // Append in uneven pieces that cut batches in the middle.
    let mut written = 0;
    let mut step = 37;
    let mut changes = 0;
    while written < full.len() {
        let to = (written + step).min(full.len());
        use std::io::Write;
        std::fs::OpenOptions::new().append(true).open(&path).unwrap().write_all(&full[written..to]).unwrap();
        written = to;
        step = step * 3 % 1999 + 11;
        if m.refresh().unwrap() {
            changes += 1;
        }
    }
    assert!(changes >= 5, "the image changed along the way ({changes} times)");
    check_final_image(&m.image);
    assert_eq!(m.stats.rebuilds, 0);
}

#[test]
fn a_truncated_and_rewritten_tail_rebuilds_the_image() {
    let full = std::fs::read(fixture().join(METADATA_DIR_NAME).join(LOG)).unwrap();
    let b = batches(&full);
    let tmp = tempfile::tempdir().unwrap();
    let dir = copy_metadata(tmp.path(), &[LOG]);
    let mut m = MetadataLog::open(&dir).unwrap();
    check_final_image(&m.image);
    // Truncate to the batch that held the RemoveTopicRecord of 'other' (offset 162):
    // 'other' is back, 'late' has not been created yet.
    let cut = b.iter().find(|&&(pos, _)| {
        let base = i64::from_be_bytes(full[pos..pos + 8].try_into().unwrap());
        base >= 162
    });
    let (cut, _) = *cut.unwrap();
    std::fs::write(dir.join(LOG), &full[..cut]).unwrap();
    assert!(m.refresh().unwrap());
    assert_eq!(m.stats.rebuilds, 1);
    assert!(m.image.topic("other").is_some() && m.image.topic("late").is_none());
    let fresh = MetadataLog::open(&dir).unwrap();
    assert_eq!(m.image, fresh.image);
    // The same length rewritten with other bytes (a diverging epoch's records): also noticed.
    let mut other = full[..cut].to_vec();
    std::fs::write(dir.join(LOG), &full).unwrap();
    m.refresh().unwrap();
    check_final_image(&m.image);
    let last = b.last().unwrap().0;
    let prev = b[b.len() - 2];
    other.truncate(0);
    other.extend_from_slice(&full[..prev.0]);
    other.extend_from_slice(&full[last..]);
    other.resize(full.len(), 0);
    std::fs::write(dir.join(LOG), &other).unwrap();
    m.refresh().unwrap();
    assert_eq!(m.stats.rebuilds, 2, "the last applied batch changed under the reader");
}

#[test]
fn corrupt_and_garbage_metadata_logs_are_read_up_to_the_damage() {
    let full = std::fs::read(fixture().join(METADATA_DIR_NAME).join(LOG)).unwrap();
    let b = batches(&full);
    let tmp = tempfile::tempdir().unwrap();
    let dir = copy_metadata(tmp.path(), &[]);
    let mut bad = full.clone();
    let (mid, end) = b[b.len() / 2];
    bad[(mid + end) / 2] ^= 0x55;
    std::fs::write(dir.join(LOG), &bad).unwrap();
    let m = MetadataLog::open(&dir).unwrap();
    assert_eq!(m.stats.batches_corrupt, 1);
    let stopped_at = i64::from_be_bytes(full[mid..mid + 8].try_into().unwrap());
    assert_eq!(m.next_offset, stopped_at, "nothing after the corrupt batch is applied");
    // Pure garbage, and a file of zeros: no panic, nothing applied.
    for junk in [vec![0xa5u8; 5000], vec![0u8; 5000], (0..5000u32).map(|x| (x * 7919 % 251) as u8).collect()] {
        std::fs::write(dir.join(LOG), &junk).unwrap();
        let m = MetadataLog::open(&dir).unwrap();
        assert!(m.image.names.is_empty() && m.image.brokers.is_empty());
    }
    // A missing directory is an error with its path, not a panic.
    let err = MetadataLog::open(&tmp.path().join("nope")).err().unwrap().to_string();
    assert!(err.contains("nope"), "{err}");
}

#[test]
fn a_commit_bound_holds_back_batches_until_the_quorum_has_them() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = copy_metadata(tmp.path(), &[LOG]);
    let mut m = MetadataLog::open(&dir).unwrap();
    check_final_image(&m.image);
    // The quorum's high watermark is learned below what was applied: rebuilt up to it.
    m.commit_bound = Some(150);
    assert!(m.refresh().unwrap());
    assert!(m.next_offset <= 150, "{}", m.next_offset);
    assert!(m.image.topic("other").is_some(), "its removal at offset 162 is not committed yet");
    assert!(m.image.topic("late").is_none());
    let held = m.next_offset;
    assert!(!m.refresh().unwrap(), "nothing new below the bound");
    assert_eq!(m.next_offset, held);
    m.commit_bound = Some(217);
    assert!(m.refresh().unwrap());
    check_final_image(&m.image);
    assert_eq!(m.next_offset, 217);
}
