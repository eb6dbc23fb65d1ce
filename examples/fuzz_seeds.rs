//! Writes seed inputs for the `request` fuzz target: one well-formed request body (header and
//! body, no size prefix) per served API and version, as a client encodes it.
//! Run: `cargo run --example fuzz_seeds -- fuzz/corpus/request`

use bytes::BytesMut;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::offset_for_leader_epoch_request::{OffsetForLeaderPartition, OffsetForLeaderTopic};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Encodable, Request, StrBytes};

fn frame<R: Request>(version: i16, req: &R) -> Vec<u8> {
    let header = RequestHeader::default()
        .with_request_api_key(R::KEY)
        .with_request_api_version(version)
        .with_correlation_id(7)
        .with_client_id(Some(StrBytes::from_static_str("seed")));
    let mut b = BytesMut::new();
    header.encode(&mut b, R::header_version(version)).expect("header");
    req.encode(&mut b, version).expect("body");
    b.to_vec()
}

fn main() {
    let dir = std::env::args().nth(1).unwrap_or_else(|| "fuzz/corpus/request".into());
    std::fs::create_dir_all(&dir).expect("corpus dir");
    let topic = || TopicName(StrBytes::from_static_str("plain"));
    let mut seeds: Vec<(String, Vec<u8>)> = Vec::new();
    for v in 0..=4 {
        seeds.push((format!("api_versions_v{v}"), frame(v, &ApiVersionsRequest::default())));
    }
    for v in 0..=13 {
        let req = MetadataRequest::default()
            .with_topics(Some(vec![MetadataRequestTopic::default().with_name(Some(topic()))]));
        seeds.push((format!("metadata_v{v}"), frame(v, &req)));
    }
    for v in 1..=10 {
        let req = ListOffsetsRequest::default().with_topics(vec![ListOffsetsTopic::default()
            .with_name(topic())
            .with_partitions(vec![ListOffsetsPartition::default().with_timestamp(-2)])]);
        seeds.push((format!("list_offsets_v{v}"), frame(v, &req)));
    }
    for v in 2..=4 {
        let req = OffsetForLeaderEpochRequest::default().with_topics(vec![OffsetForLeaderTopic::default()
            .with_topic(topic())
            .with_partitions(vec![OffsetForLeaderPartition::default().with_leader_epoch(0)])]);
        seeds.push((format!("offset_for_leader_epoch_v{v}"), frame(v, &req)));
    }
    for v in 4..=18 {
        let req = FetchRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_max_bytes(1 << 20)
            .with_isolation_level(1)
            .with_topics(vec![FetchTopic::default().with_topic(topic()).with_partitions(vec![
                FetchPartition::default().with_partition_max_bytes(1 << 20).with_current_leader_epoch(-1),
            ])]);
        seeds.push((format!("fetch_v{v}"), frame(v, &req)));
    }
    let group = || GroupId(StrBytes::from_static_str("g"));
    let s = StrBytes::from_static_str;
    for v in 0..=6 {
        let req = if v >= 4 {
            FindCoordinatorRequest::default().with_coordinator_keys(vec![s("g")])
        } else {
            FindCoordinatorRequest::default().with_key(s("g"))
        };
        seeds.push((format!("find_coordinator_v{v}"), frame(v, &req)));
    }
    for v in 0..=9 {
        let req = JoinGroupRequest::default()
            .with_group_id(group())
            .with_session_timeout_ms(10_000)
            .with_protocol_type(s("consumer"))
            .with_protocols(vec![join_group_request::JoinGroupRequestProtocol::default().with_name(s("range"))]);
        seeds.push((format!("join_group_v{v}"), frame(v, &req)));
    }
    for v in 0..=5 {
        let req = SyncGroupRequest::default().with_group_id(group()).with_generation_id(1).with_member_id(s("m"));
        seeds.push((format!("sync_group_v{v}"), frame(v, &req)));
        let req = LeaveGroupRequest::default().with_group_id(group());
        seeds.push((format!("leave_group_v{v}"), frame(v, &req)));
        let req = ListGroupsRequest::default();
        seeds.push((format!("list_groups_v{v}"), frame(v, &req)));
    }
    for v in 0..=4 {
        let req = HeartbeatRequest::default().with_group_id(group()).with_generation_id(1).with_member_id(s("m"));
        seeds.push((format!("heartbeat_v{v}"), frame(v, &req)));
    }
    for v in 0..=6 {
        let req = DescribeGroupsRequest::default().with_groups(vec![group()]);
        seeds.push((format!("describe_groups_v{v}"), frame(v, &req)));
    }
    for v in 2..=9 {
        let req =
            OffsetCommitRequest::default().with_group_id(group()).with_generation_id_or_member_epoch(-1).with_topics(
                vec![offset_commit_request::OffsetCommitRequestTopic::default().with_name(topic()).with_partitions(
                    vec![offset_commit_request::OffsetCommitRequestPartition::default().with_committed_offset(5)],
                )],
            );
        seeds.push((format!("offset_commit_v{v}"), frame(v, &req)));
    }
    for v in 1..=9 {
        let req = if v >= 8 {
            OffsetFetchRequest::default()
                .with_groups(vec![offset_fetch_request::OffsetFetchRequestGroup::default().with_group_id(group())])
        } else {
            OffsetFetchRequest::default().with_group_id(group()).with_topics(Some(vec![
                offset_fetch_request::OffsetFetchRequestTopic::default()
                    .with_name(topic())
                    .with_partition_indexes(vec![0]),
            ]))
        };
        seeds.push((format!("offset_fetch_v{v}"), frame(v, &req)));
    }
    // The admin reads, and incremental Fetch with a session (KIP-227).
    for v in 1..=4 {
        let req = DescribeConfigsRequest::default().with_include_synonyms(true).with_resources(vec![
            describe_configs_request::DescribeConfigsResource::default()
                .with_resource_type(2)
                .with_resource_name(s("plain")),
        ]);
        seeds.push((format!("describe_configs_v{v}"), frame(v, &req)));
        let req = DescribeLogDirsRequest::default().with_topics(None);
        seeds.push((format!("describe_log_dirs_v{v}"), frame(v, &req)));
    }
    for v in 0..=2 {
        let req =
            DescribeClusterRequest::default().with_endpoint_type(1).with_include_cluster_authorized_operations(true);
        seeds.push((format!("describe_cluster_v{v}"), frame(v, &req)));
    }
    let req = DescribeTopicPartitionsRequest::default().with_response_partition_limit(1).with_cursor(Some(
        describe_topic_partitions_request::Cursor::default().with_topic_name(topic()).with_partition_index(1),
    ));
    seeds.push(("describe_topic_partitions_v0".into(), frame(0, &req)));
    for (v, epoch) in [(12, 0), (12, 1), (13, 1), (17, 2)] {
        let req = FetchRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_max_bytes(1 << 20)
            .with_session_id(if epoch == 0 { 0 } else { 1 })
            .with_session_epoch(epoch)
            .with_topics(vec![FetchTopic::default().with_topic(topic()).with_partitions(vec![
                FetchPartition::default().with_partition_max_bytes(1 << 20).with_current_leader_epoch(-1),
            ])]);
        seeds.push((format!("fetch_session_v{v}_epoch{epoch}"), frame(v, &req)));
    }
    // KIP-848: a join, a heartbeat that owns a partition, a regex join, a leave, a describe.
    for v in 0..=1 {
        let join = ConsumerGroupHeartbeatRequest::default()
            .with_group_id(group())
            .with_member_id(s(if v == 0 { "" } else { "m1" }))
            .with_member_epoch(0)
            .with_rebalance_timeout_ms(30_000)
            .with_subscribed_topic_names(Some(vec![topic()]))
            .with_server_assignor(Some(s("uniform")))
            .with_topic_partitions(Some(vec![]));
        seeds.push((format!("consumer_group_heartbeat_v{v}_join"), frame(v, &join)));
        let owned = vec![consumer_group_heartbeat_request::TopicPartitions::default().with_partitions(vec![0, 1])];
        let beat = join.clone().with_member_epoch(1).with_rebalance_timeout_ms(-1).with_topic_partitions(Some(owned));
        seeds.push((format!("consumer_group_heartbeat_v{v}_beat"), frame(v, &beat)));
        let leave = join.clone().with_member_epoch(-1);
        seeds.push((format!("consumer_group_heartbeat_v{v}_leave"), frame(v, &leave)));
        let req = ConsumerGroupDescribeRequest::default()
            .with_group_ids(vec![group()])
            .with_include_authorized_operations(true);
        seeds.push((format!("consumer_group_describe_v{v}"), frame(v, &req)));
    }
    let regex = ConsumerGroupHeartbeatRequest::default()
        .with_group_id(group())
        .with_member_id(s("m2"))
        .with_rebalance_timeout_ms(30_000)
        .with_subscribed_topic_regex(Some(s("pl.*")))
        .with_topic_partitions(Some(vec![]));
    seeds.push(("consumer_group_heartbeat_v1_regex".into(), frame(1, &regex)));
    for (name, bytes) in &seeds {
        std::fs::write(format!("{dir}/{name}"), bytes).expect("write seed");
    }
    println!("wrote {} seeds to {dir}", seeds.len());
}
