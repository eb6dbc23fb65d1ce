//! ConsumerGroupDescribe (key 69, v0–1): KIP-848 groups with their epochs, assignor, members,
//! current and target assignments.
//!
//! A group that is not a consumer-protocol group here (a classic group, one with only committed
//! offsets, or an unknown one) is GROUP_ID_NOT_FOUND, as from the broker: the admin client then
//! asks DescribeGroups. GROUP DESCRIBE is checked per group; a group whose members subscribe to
//! a topic the caller may not DESCRIBE is TOPIC_AUTHORIZATION_FAILED (the broker's rule).

use kafka_protocol::messages::consumer_group_describe_response::{Assignment, DescribedGroup, Member, TopicPartitions};
use kafka_protocol::messages::{ConsumerGroupDescribeRequest, ConsumerGroupDescribeResponse, TopicName};
use kafka_protocol::protocol::StrBytes;

use super::metadata::Presentation;
use super::{error_code, respond, Context, Outcome, RequestMeta};
use crate::auth::acl::{Operation, Resource};
use crate::groups::consumer::Partitions;

/// What a group ACL may allow (`AclOperation`s of the GROUP resource).
const GROUP_OPERATIONS: [Operation; 3] = [Operation::Read, Operation::Describe, Operation::Delete];

pub fn handle(meta: &RequestMeta, req: &ConsumerGroupDescribeRequest, ctx: &mut Context<'_>) -> Outcome {
    let v = meta.api_version;
    let mut out = Vec::with_capacity(req.group_ids.len());
    for gid in &req.group_ids {
        let mut d = DescribedGroup::default().with_group_id(gid.clone()).with_authorized_operations(i32::MIN);
        let described = ctx.groups.consumer.describe(gid);
        let code = if let Some(code) = ctx.group_denied(Operation::Describe, gid) {
            code
        } else if let Some(g) = described {
            let denied = g
                .members
                .iter()
                .flat_map(|m| &m.subscribed_topic_names)
                .any(|t| !ctx.topic_allowed(Operation::Describe, t));
            if denied {
                error_code::TOPIC_AUTHORIZATION_FAILED
            } else {
                let presentation = Presentation::of(ctx);
                let name_of = |id: &uuid::Uuid| {
                    g.topic_names.get(id).cloned().or_else(|| presentation.find(None, Some(*id))).unwrap_or_default()
                };
                let assignment = |p: &Partitions| {
                    Assignment::default().with_topic_partitions(
                        p.iter()
                            .map(|(t, ps)| {
                                TopicPartitions::default()
                                    .with_topic_id(*t)
                                    .with_topic_name(TopicName(StrBytes::from_string(name_of(t))))
                                    .with_partitions(ps.iter().copied().collect())
                            })
                            .collect(),
                    )
                };
                let members = g
                    .members
                    .iter()
                    .map(|m| {
                        Member::default()
                            .with_member_id(StrBytes::from_string(m.member_id.clone()))
                            .with_instance_id(m.instance_id.clone().map(StrBytes::from_string))
                            .with_rack_id(m.rack_id.clone().map(StrBytes::from_string))
                            .with_member_epoch(m.member_epoch)
                            .with_client_id(StrBytes::from_string(m.client_id.clone()))
                            .with_client_host(StrBytes::from_string(m.client_host.clone()))
                            .with_subscribed_topic_names(
                                m.subscribed_topic_names
                                    .iter()
                                    .map(|n| TopicName(StrBytes::from_string(n.clone())))
                                    .collect(),
                            )
                            .with_subscribed_topic_regex(m.subscribed_topic_regex.clone().map(StrBytes::from_string))
                            .with_assignment(assignment(&m.assignment))
                            .with_target_assignment(assignment(&m.target_assignment))
                            // KIP-1099: 1 = a consumer-protocol member (0 would be classic).
                            .with_member_type(if v >= 1 { 1 } else { -1 })
                    })
                    .collect();
                d = d
                    .with_group_state(StrBytes::from_static_str(g.state.name()))
                    .with_group_epoch(g.group_epoch)
                    .with_assignment_epoch(g.assignment_epoch)
                    .with_assignor_name(StrBytes::from_string(g.assignor_name.clone()))
                    .with_members(members);
                if req.include_authorized_operations {
                    d.authorized_operations = ctx.authorized_operations(Resource::Group, gid, &GROUP_OPERATIONS);
                }
                error_code::NONE
            }
        } else {
            let msg = if ctx.groups.coordinator.state(gid).is_some() {
                format!("Group {} is not a consumer group.", gid.as_str())
            } else {
                format!("Group {} not found.", gid.as_str())
            };
            d = d.with_error_message(Some(StrBytes::from_string(msg)));
            error_code::GROUP_ID_NOT_FOUND
        };
        ctx.note_error(code);
        if code != error_code::NONE {
            d = d.with_group_state(StrBytes::from_static_str("Dead"));
        }
        out.push(d.with_error_code(code));
    }
    respond(meta, &ConsumerGroupDescribeResponse::default().with_groups(out))
}
