//! DescribeGroups (key 15, v0–6): state, protocol and members of groups.
//!
//! Members' subscription metadata and assignments are shown when the group is Stable, as Kafka
//! does. A group with only committed offsets is Empty with no members; a group logferry does not
//! know, or a KIP-848 group, is "Dead" (v0–5) or GROUP_ID_NOT_FOUND with a message (v6+), like
//! a Kafka 4 broker.

use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::{DescribeGroupsRequest, DescribeGroupsResponse};
use kafka_protocol::protocol::StrBytes;

use super::{error_code, respond, Context, Outcome, RequestMeta};

pub fn handle(meta: &RequestMeta, req: &DescribeGroupsRequest, ctx: &mut Context<'_>) -> Outcome {
    let v = meta.api_version;
    let mut out = Vec::with_capacity(req.groups.len());
    for gid in &req.groups {
        let mut d = DescribedGroup::default().with_group_id(gid.clone()).with_authorized_operations(i32::MIN);
        if let Some(code) = ctx.group_denied(crate::auth::acl::Operation::Describe, gid) {
            d = d.with_error_code(code);
        } else if ctx.groups.consumer.state(gid).is_some() {
            // A KIP-848 group is described by ConsumerGroupDescribe.
            if v >= 6 {
                ctx.note_error(error_code::GROUP_ID_NOT_FOUND);
                let msg = format!("Group {} is not a classic group.", gid.as_str());
                d = d
                    .with_error_code(error_code::GROUP_ID_NOT_FOUND)
                    .with_error_message(Some(StrBytes::from_string(msg)));
            }
            d = d.with_group_state(StrBytes::from_static_str("Dead"));
        } else if let Some(g) = ctx.groups.coordinator.describe(gid) {
            d = d
                .with_group_state(StrBytes::from_static_str(g.state.name()))
                .with_protocol_type(StrBytes::from_string(g.protocol_type))
                .with_protocol_data(StrBytes::from_string(g.protocol_name))
                .with_members(
                    g.members
                        .into_iter()
                        .map(|m| {
                            DescribedGroupMember::default()
                                .with_member_id(StrBytes::from_string(m.member_id))
                                .with_group_instance_id(if v >= 4 {
                                    m.group_instance_id.map(StrBytes::from_string)
                                } else {
                                    None
                                })
                                .with_client_id(StrBytes::from_string(m.client_id))
                                .with_client_host(StrBytes::from_string(m.client_host))
                                .with_member_metadata(m.metadata)
                                .with_member_assignment(m.assignment)
                        })
                        .collect(),
                );
        } else if ctx.groups.store.group(gid).is_some() {
            d = d.with_group_state(StrBytes::from_static_str("Empty"));
        } else if v >= 6 {
            ctx.note_error(error_code::GROUP_ID_NOT_FOUND);
            d = d
                .with_error_code(error_code::GROUP_ID_NOT_FOUND)
                .with_error_message(Some(StrBytes::from_string(format!("Group {} not found.", gid.as_str()))))
                .with_group_state(StrBytes::from_static_str("Dead"));
        } else {
            d = d.with_group_state(StrBytes::from_static_str("Dead"));
        }
        out.push(d);
    }
    respond(meta, &DescribeGroupsResponse::default().with_groups(out))
}
