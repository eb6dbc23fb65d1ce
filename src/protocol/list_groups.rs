//! ListGroups (key 16, v0–5): the groups logferry coordinates — those with live members and
//! those that only have committed offsets (state Empty, protocol type unknown to a restarted
//! logferry, so ""). v4 filters by state (case-insensitive), v5 by type (all are "classic").

use std::collections::BTreeMap;

use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::{GroupId, ListGroupsRequest, ListGroupsResponse};
use kafka_protocol::protocol::StrBytes;

use super::{respond, Context, Outcome, RequestMeta};

pub fn handle(meta: &RequestMeta, req: &ListGroupsRequest, ctx: &mut Context<'_>) -> Outcome {
    let v = meta.api_version;
    let mut groups: BTreeMap<String, (String, &'static str)> = BTreeMap::new();
    for (g, _) in ctx.groups.store.groups() {
        groups.insert(g.clone(), (String::new(), "Empty"));
    }
    for (g, ptype, state) in ctx.groups.coordinator.list() {
        groups.insert(g, (ptype, state.name()));
    }
    let states: Vec<String> =
        if v >= 4 { req.states_filter.iter().map(|s| s.to_lowercase()).collect() } else { Vec::new() };
    let types: Vec<String> =
        if v >= 5 { req.types_filter.iter().map(|s| s.to_lowercase()).collect() } else { Vec::new() };
    // CLUSTER DESCRIBE lists every group; otherwise those the caller may DESCRIBE.
    use crate::cluster::authorizer::{Operation, Resource, CLUSTER_NAME};
    let every = ctx.allowed(Operation::Describe, Resource::Cluster, CLUSTER_NAME);
    groups.retain(|g, _| every || ctx.allowed(Operation::Describe, Resource::Group, g));
    let listed = groups
        .into_iter()
        .filter(|(_, (_, st))| states.is_empty() || states.contains(&st.to_lowercase()))
        .filter(|_| types.is_empty() || types.iter().any(|t| t == "classic"))
        .map(|(g, (ptype, st))| {
            let mut l = ListedGroup::default()
                .with_group_id(GroupId(StrBytes::from_string(g)))
                .with_protocol_type(StrBytes::from_string(ptype));
            if v >= 4 {
                l = l.with_group_state(StrBytes::from_static_str(st));
            }
            if v >= 5 {
                l = l.with_group_type(StrBytes::from_static_str("classic"));
            }
            l
        })
        .collect();
    respond(meta, &ListGroupsResponse::default().with_groups(listed))
}
