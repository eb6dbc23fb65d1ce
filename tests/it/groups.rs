//! The group coordinator as a black box: every version of every group API over a socket to the
//! real binary, the error answers clients depend on, and acknowledged commits surviving SIGKILL.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::leave_group_request::MemberIdentity;
use kafka_protocol::messages::offset_commit_request::{OffsetCommitRequestPartition, OffsetCommitRequestTopic};
use kafka_protocol::messages::offset_fetch_request::{
    OffsetFetchRequestGroup, OffsetFetchRequestTopic, OffsetFetchRequestTopics,
};
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

use crate::serve::{serve, topic, Client};

fn s(x: &str) -> StrBytes {
    StrBytes::from_string(x.to_string())
}

fn gid(x: &str) -> GroupId {
    GroupId(s(x))
}

fn join_req(group: &str, member: &str, v: i16) -> JoinGroupRequest {
    JoinGroupRequest::default()
        .with_group_id(gid(group))
        .with_session_timeout_ms(10_000)
        .with_rebalance_timeout_ms(if v >= 1 { 20_000 } else { -1 })
        .with_member_id(s(member))
        .with_protocol_type(s("consumer"))
        .with_protocols(vec![JoinGroupRequestProtocol::default()
            .with_name(s("range"))
            .with_metadata(Bytes::from_static(b"subscription"))])
}

/// Joins `group` alone with JoinGroup `v` (through MEMBER_ID_REQUIRED from v4) and syncs with
/// SyncGroup `sv`; returns (member id, generation).
fn join_alone(c: &mut Client, group: &str, v: i16, sv: i16) -> (String, i32) {
    let mut r = c.call(v, &join_req(group, "", v));
    if v >= 4 {
        assert_eq!(r.error_code, 79, "v{v}: MEMBER_ID_REQUIRED first");
        assert!(!r.member_id.is_empty());
        r = c.call(v, &join_req(group, &r.member_id, v));
    }
    assert_eq!(r.error_code, 0, "JoinGroup v{v}");
    assert_eq!(r.generation_id, 1);
    assert_eq!(r.leader, r.member_id, "v{v}: the only member leads");
    assert_eq!(r.members.len(), 1);
    assert_eq!(&r.members[0].metadata[..], b"subscription");
    assert_eq!(r.protocol_name.as_deref(), Some("range"));
    let me = r.member_id.to_string();
    let sync = SyncGroupRequest::default()
        .with_group_id(gid(group))
        .with_generation_id(1)
        .with_member_id(s(&me))
        .with_protocol_type((sv >= 5).then(|| s("consumer")))
        .with_protocol_name((sv >= 5).then(|| s("range")))
        .with_assignments(vec![SyncGroupRequestAssignment::default()
            .with_member_id(s(&me))
            .with_assignment(Bytes::from_static(b"\x00\x01opaque\xff"))]);
    let r = c.call(sv, &sync);
    assert_eq!(r.error_code, 0, "SyncGroup v{sv}");
    assert_eq!(&r.assignment[..], b"\x00\x01opaque\xff", "the assignment passes through untouched");
    (me, 1)
}

fn commit_req(group: &str, generation: i32, member: &str, offset: i64) -> OffsetCommitRequest {
    OffsetCommitRequest::default()
        .with_group_id(gid(group))
        .with_generation_id_or_member_epoch(generation)
        .with_member_id(s(member))
        .with_retention_time_ms(-1)
        .with_topics(vec![OffsetCommitRequestTopic::default().with_name(topic("plain")).with_partitions(vec![
            OffsetCommitRequestPartition::default()
                .with_partition_index(1)
                .with_committed_offset(offset)
                .with_committed_leader_epoch(-1)
                .with_committed_metadata(Some(s("meta"))),
        ])])
}

fn fetch_committed(c: &mut Client, group: &str, v: i16) -> (i64, i16) {
    let req = if v >= 8 {
        OffsetFetchRequest::default().with_groups(vec![OffsetFetchRequestGroup::default()
            .with_group_id(gid(group))
            .with_member_epoch(-1)
            .with_topics(Some(vec![OffsetFetchRequestTopics::default()
                .with_name(topic("plain"))
                .with_partition_indexes(vec![1])]))])
    } else {
        OffsetFetchRequest::default().with_group_id(gid(group)).with_topics(Some(vec![
            OffsetFetchRequestTopic::default().with_name(topic("plain")).with_partition_indexes(vec![1]),
        ]))
    };
    let r = c.call(v, &req);
    if v >= 8 {
        let p = &r.groups[0].topics[0].partitions[0];
        (p.committed_offset, p.error_code)
    } else {
        let p = &r.topics[0].partitions[0];
        (p.committed_offset, p.error_code)
    }
}

#[test]
fn every_version_of_every_group_api() {
    let srv = serve(&["--group-initial-rebalance-delay-ms", "0"]);
    let mut c = Client::connect(srv.addr);
    for v in 0..=6 {
        let req = if v >= 4 {
            FindCoordinatorRequest::default().with_coordinator_keys(vec![s("g"), s("h")])
        } else {
            FindCoordinatorRequest::default().with_key(s("g"))
        };
        let r = c.call(v, &req);
        if v >= 4 {
            assert_eq!(r.coordinators.len(), 2);
            assert!(r.coordinators.iter().all(|x| x.error_code == 0 && x.port == srv.addr.port() as i32));
        } else {
            assert_eq!((r.error_code, r.port), (0, srv.addr.port() as i32), "FindCoordinator v{v}");
        }
    }
    for v in 0..=9i16 {
        let sv = v.min(5);
        let group = format!("g-join-v{v}");
        let (me, generation) = join_alone(&mut c, &group, v, sv);
        let hv = v.min(4);
        let hb = HeartbeatRequest::default()
            .with_group_id(gid(&group))
            .with_generation_id(generation)
            .with_member_id(s(&me));
        assert_eq!(c.call(hv, &hb).error_code, 0, "Heartbeat v{hv}");
        assert_eq!(c.call(hv, &hb.clone().with_generation_id(7)).error_code, 22, "ILLEGAL_GENERATION");
        assert_eq!(c.call(hv, &hb.clone().with_member_id(s("stranger"))).error_code, 25, "UNKNOWN_MEMBER_ID");
        let cv = (v + 2).min(9);
        let r = c.call(cv, &commit_req(&group, generation, &me, 40 + i64::from(v)));
        assert_eq!(r.topics[0].partitions[0].error_code, 0, "OffsetCommit v{cv}");
        let r = c.call(cv, &commit_req(&group, generation + 1, &me, 1));
        assert_eq!(r.topics[0].partitions[0].error_code, 22, "OffsetCommit v{cv} with a stale generation");
        let fv = (v + 1).clamp(1, 9);
        assert_eq!(fetch_committed(&mut c, &group, fv), (40 + i64::from(v), 0), "OffsetFetch v{fv}");
        let lv = v.min(5);
        let leave = if lv >= 3 {
            LeaveGroupRequest::default()
                .with_group_id(gid(&group))
                .with_members(vec![MemberIdentity::default().with_member_id(s(&me))])
        } else {
            LeaveGroupRequest::default().with_group_id(gid(&group)).with_member_id(s(&me))
        };
        let r = c.call(lv, &leave);
        assert_eq!(r.error_code, 0, "LeaveGroup v{lv}");
        if lv >= 3 {
            assert_eq!(r.members[0].error_code, 0);
        }
    }
    for v in 0..=5 {
        let r = c.call(v, &ListGroupsRequest::default());
        assert!(r.groups.iter().any(|g| g.group_id.as_str() == "g-join-v9"), "ListGroups v{v}");
    }
    for v in 0..=6 {
        let r = c.call(v, &DescribeGroupsRequest::default().with_groups(vec![gid("g-join-v3"), gid("never")]));
        assert_eq!(r.groups[0].group_state.as_str(), "Empty", "DescribeGroups v{v}");
        assert_eq!(r.groups[1].error_code, if v >= 6 { 69 } else { 0 });
    }
}

#[test]
fn transactions_and_bad_joins_get_clear_errors() {
    let srv = serve(&[]);
    let mut c = Client::connect(srv.addr);
    let r = c.call(3, &FindCoordinatorRequest::default().with_key(s("txn-1")).with_key_type(1));
    assert_eq!(r.error_code, 15, "transactions: COORDINATOR_NOT_AVAILABLE");
    assert!(r.error_message.as_deref().unwrap_or_default().contains("read-only"));
    let r = c.call(6, &FindCoordinatorRequest::default().with_key_type(1).with_coordinator_keys(vec![s("t")]));
    assert_eq!(r.coordinators[0].error_code, 15);
    let r = c.call(9, &join_req("g", "", 9).with_session_timeout_ms(1));
    assert_eq!(r.error_code, 26, "INVALID_SESSION_TIMEOUT");
    let r = c.call(9, &join_req("", "", 9));
    assert_eq!(r.error_code, 24, "INVALID_GROUP_ID");
    let r = c.call(9, &join_req("g", "made-up", 9));
    assert_eq!(r.error_code, 25, "UNKNOWN_MEMBER_ID");
    // A commit to a partition logferry does not have.
    let mut req = commit_req("simple", -1, "", 5);
    req.topics[0].name = topic("no-such-topic");
    assert_eq!(c.call(9, &req).topics[0].partitions[0].error_code, 3);
    // Metadata above the limit.
    let mut req = commit_req("simple", -1, "", 5);
    req.topics[0].partitions[0].committed_metadata = Some(s(&"x".repeat(5000)));
    assert_eq!(c.call(9, &req).topics[0].partitions[0].error_code, 12, "OFFSET_METADATA_TOO_LARGE");
    // A member of a group logferry does not know (e.g. after a restart) must rejoin.
    assert_eq!(c.call(9, &commit_req("unknown", 3, "m", 5)).topics[0].partitions[0].error_code, 69);
    assert_eq!(c.call(8, &commit_req("unknown", 3, "m", 5)).topics[0].partitions[0].error_code, 22);
    // Nothing committed: offset −1, no error.
    assert_eq!(fetch_committed(&mut c, "nobody", 9), (-1, 0));
}

/// Commits as fast as acknowledgements come back; returns the last acknowledged offset.
fn hammer(addr: SocketAddr, stop: Arc<AtomicBool>, acked: Arc<AtomicI64>) {
    let mut c = Client::connect(addr);
    let mut next = acked.load(Ordering::SeqCst) + 1;
    while !stop.load(Ordering::SeqCst) {
        let f = c.frame(9, &commit_req("durable", -1, "", next));
        if std::io::Write::write_all(&mut c.s, &f).is_err() {
            return;
        }
        let Ok(mut body) = c.read_frame() else { return };
        let _ = <ResponseHeader as kafka_protocol::protocol::Decodable>::decode(&mut body, 1);
        let r = <OffsetCommitResponse as kafka_protocol::protocol::Decodable>::decode(&mut body, 9).unwrap();
        assert_eq!(r.topics[0].partitions[0].error_code, 0);
        acked.store(next, Ordering::SeqCst);
        next += 1;
    }
}

#[test]
fn acknowledged_commits_survive_sigkill() {
    let state = tempfile::tempdir().unwrap();
    let state_dir = state.path().to_str().unwrap().to_string();
    let acked = Arc::new(AtomicI64::new(-1));
    for round in 0..3 {
        let mut srv = serve(&["--state-dir", &state_dir]);
        let mut c = Client::connect(srv.addr);
        let (recovered, code) = fetch_committed(&mut c, "durable", 9);
        assert_eq!(code, 0);
        let last = acked.load(Ordering::SeqCst);
        assert!(recovered >= last, "round {round}: acknowledged {last}, recovered {recovered}");
        // At most the one request in flight at the kill may have landed without its answer.
        assert!(recovered <= last + 1, "round {round}: acknowledged {last}, recovered {recovered}");
        acked.store(recovered, Ordering::SeqCst);
        let stop = Arc::new(AtomicBool::new(false));
        let (addr, st, ak) = (srv.addr, stop.clone(), acked.clone());
        let t = std::thread::spawn(move || hammer(addr, st, ak));
        let deadline = Instant::now() + Duration::from_secs(20);
        while acked.load(Ordering::SeqCst) < recovered + 200 {
            assert!(Instant::now() < deadline, "commits too slow");
            std::thread::sleep(Duration::from_millis(5));
        }
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(srv.pid()), nix::sys::signal::Signal::SIGKILL).unwrap();
        let _ = srv.wait_exit(Duration::from_secs(5));
        stop.store(true, Ordering::SeqCst);
        t.join().unwrap();
    }
}

/// KIP-848 heartbeats, describes and commits over the wire against the local coordinator: two
/// members split a topic with revocation before assignment, the broker's errors for bad epochs
/// and bad requests, a classic join refused, and a member expiring after its session.
#[test]
fn kip848_heartbeats_split_fence_and_expire() {
    use kafka_protocol::messages::consumer_group_heartbeat_request::TopicPartitions;
    use std::collections::BTreeSet;
    let srv = serve(&["--group-consumer-session-timeout-ms", "2000", "--group-consumer-heartbeat-interval-ms", "500"]);
    let mut c = Client::connect(srv.addr);
    let id = crate::serve::topic_id_of(&mut c, "plain");
    let md: MetadataResponse = c.call(12, &MetadataRequest::default().with_topics(None));
    let count =
        md.topics.iter().find(|t| t.name.as_ref().map(|n| n.as_str()) == Some("plain")).unwrap().partitions.len();
    assert!(count >= 2, "the fixture's topic has partitions to split");
    let join = |member: &str| {
        ConsumerGroupHeartbeatRequest::default()
            .with_group_id(gid("g848"))
            .with_member_id(s(member))
            .with_member_epoch(0)
            .with_rebalance_timeout_ms(10_000)
            .with_subscribed_topic_names(Some(vec![topic("plain")]))
            .with_topic_partitions(Some(vec![]))
    };
    let beat = |member: &str, epoch: i32, owned: Option<&BTreeSet<i32>>| {
        ConsumerGroupHeartbeatRequest::default()
            .with_group_id(gid("g848"))
            .with_member_id(s(member))
            .with_member_epoch(epoch)
            .with_rebalance_timeout_ms(-1)
            .with_topic_partitions(owned.map(|o| {
                vec![TopicPartitions::default().with_topic_id(id).with_partitions(o.iter().copied().collect())]
            }))
    };
    let parts = |r: &ConsumerGroupHeartbeatResponse| -> Option<BTreeSet<i32>> {
        r.assignment.as_ref().map(|a| a.topic_partitions.iter().flat_map(|t| t.partitions.iter().copied()).collect())
    };
    let a = c.call(1, &join("member-a"));
    assert_eq!((a.error_code, a.member_epoch, a.heartbeat_interval_ms), (0, 1, 500));
    let all = parts(&a).expect("the first answer carries the assignment");
    assert_eq!(all.len(), count);
    // v0: the coordinator names the member.
    let b = c.call(0, &join(""));
    assert_eq!((b.error_code, b.member_epoch), (0, 2));
    let b_id = b.member_id.clone().unwrap().to_string();
    assert!(!b_id.is_empty());
    assert_eq!(parts(&b), Some(BTreeSet::new()), "nothing is free until a revokes");
    // a must give up half and keeps epoch 1 until it has.
    let r = c.call(1, &beat("member-a", 1, Some(&all)));
    assert_eq!(r.member_epoch, 1);
    let kept = parts(&r).expect("revocation");
    assert_eq!(kept.len(), count - count / 2);
    let r = c.call(1, &beat("member-a", 1, Some(&kept)));
    assert_eq!((r.error_code, r.member_epoch), (0, 2));
    let r = c.call(1, &beat(&b_id, 2, None));
    let given = parts(&r).expect("the released partitions");
    assert!(given.is_disjoint(&kept) && given.len() + kept.len() == count);

    // The broker's errors.
    assert_eq!(c.call(1, &beat("member-a", 7, None)).error_code, 110, "FENCED_MEMBER_EPOCH");
    assert_eq!(c.call(1, &beat("nobody", 3, None)).error_code, 25, "UNKNOWN_MEMBER_ID");
    assert_eq!(c.call(1, &join("member-c").with_server_assignor(Some(s("sticky")))).error_code, 112);
    assert_eq!(c.call(1, &join("member-c").with_subscribed_topic_regex(Some(s("(")))).error_code, 128);
    assert_eq!(c.call(1, &beat("member-a", -3, None)).error_code, 42, "INVALID_REQUEST");
    assert_eq!(c.call(1, &join("member-c").with_rebalance_timeout_ms(-1)).error_code, 42);
    // A classic member may not join a live consumer-protocol group.
    assert_eq!(c.call(5, &join_req("g848", "", 5)).error_code, 23, "INCONSISTENT_GROUP_PROTOCOL");

    // ConsumerGroupDescribe: the group, and GROUP_ID_NOT_FOUND for the rest (the admin client
    // then asks DescribeGroups).
    let req = ConsumerGroupDescribeRequest::default().with_group_ids(vec![gid("g848"), gid("no-such-group")]);
    let d: ConsumerGroupDescribeResponse = c.call(1, &req);
    let g = &d.groups[0];
    assert_eq!((g.error_code, g.group_state.as_str(), g.group_epoch, g.assignment_epoch), (0, "Stable", 2, 2));
    assert_eq!(g.assignor_name.as_str(), "uniform");
    assert_eq!(g.members.len(), 2);
    for m in &g.members {
        assert_eq!((m.member_epoch, m.member_type), (2, 1));
        assert_eq!(m.assignment.topic_partitions[0].topic_name.as_str(), "plain");
        assert_eq!(m.assignment, m.target_assignment);
    }
    assert_eq!(d.groups[1].error_code, 69);
    let l: ListGroupsResponse = c.call(5, &ListGroupsRequest::default().with_types_filter(vec![s("consumer")]));
    let listed: Vec<(&str, &str, &str)> =
        l.groups.iter().map(|g| (g.group_id.as_str(), g.group_state.as_str(), g.group_type.as_str())).collect();
    assert_eq!(listed, [("g848", "Stable", "consumer")]);
    let dg: DescribeGroupsResponse = c.call(5, &DescribeGroupsRequest::default().with_groups(vec![gid("g848")]));
    assert_eq!(dg.groups[0].group_state.as_str(), "Dead", "not a classic group");

    // Commits carry the member epoch (OffsetCommit v9, OffsetFetch v9).
    let commit = |epoch: i32| commit_req("g848", epoch, "member-a", 5);
    let r: OffsetCommitResponse = c.call(9, &commit(2));
    assert_eq!(r.topics[0].partitions[0].error_code, 0);
    let r: OffsetCommitResponse = c.call(9, &commit(1));
    assert_eq!(r.topics[0].partitions[0].error_code, 113, "STALE_MEMBER_EPOCH");
    let fetch = |epoch: i32| {
        OffsetFetchRequest::default().with_groups(vec![OffsetFetchRequestGroup::default()
            .with_group_id(gid("g848"))
            .with_member_id(Some(s("member-a")))
            .with_member_epoch(epoch)
            .with_topics(None)])
    };
    let r: OffsetFetchResponse = c.call(9, &fetch(1));
    assert_eq!(r.groups[0].error_code, 113);
    let r: OffsetFetchResponse = c.call(9, &fetch(2));
    assert_eq!(r.groups[0].error_code, 0);
    assert_eq!(r.groups[0].topics[0].partitions[0].committed_offset, 5);

    // b stops heartbeating: after its 2 s session a gets everything back at a new epoch.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut owned = kept.clone();
    let mut epoch = 2;
    while owned.len() < count {
        assert!(Instant::now() < deadline, "b's partitions never came back to a");
        std::thread::sleep(Duration::from_millis(400));
        let r = c.call(1, &beat("member-a", epoch, Some(&owned)));
        assert_eq!(r.error_code, 0);
        epoch = r.member_epoch;
        if let Some(p) = parts(&r) {
            owned = p;
        }
    }
    assert_eq!(epoch, 3, "b's expiry moved the group epoch");
    assert_eq!(c.call(1, &beat(&b_id, 2, None)).error_code, 25, "b is gone");
    let r = c.call(1, &beat("member-a", -1, None));
    assert_eq!((r.error_code, r.member_epoch), (0, -1));
}
