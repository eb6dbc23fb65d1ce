//! ListGroups (key 16, v0–5): the groups logferry coordinates — those with live members and
//! those that only have committed offsets (state Empty, protocol type unknown to a restarted
//! logferry, so "") — and the KIP-848 groups (protocol type "consumer", type "consumer"). v4
//! filters by state (case-insensitive), v5 by type.

use std::collections::BTreeMap;

use bytes::Bytes;

use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::{GroupId, ListGroupsRequest, ListGroupsResponse};
use kafka_protocol::protocol::StrBytes;

use super::{respond, Context, Outcome, RequestMeta};

pub fn handle(meta: &RequestMeta, req: &ListGroupsRequest, ctx: &mut Context<'_>) -> Outcome {
    let v = meta.api_version;
    let mut groups: BTreeMap<String, (String, &'static str, &'static str)> = BTreeMap::new();
    for (g, _) in ctx.groups.store.groups() {
        groups.insert(g.clone(), (String::new(), "Empty", "classic"));
    }
    for (g, ptype, state) in ctx.groups.coordinator.list() {
        groups.insert(g, (ptype, state.name(), "classic"));
    }
    for (g, state) in ctx.groups.consumer.list() {
        groups.insert(g, ("consumer".to_string(), state.name(), "consumer"));
    }
    let states: Vec<String> =
        if v >= 4 { req.states_filter.iter().map(|s| s.to_lowercase()).collect() } else { Vec::new() };
    let types: Vec<String> =
        if v >= 5 { req.types_filter.iter().map(|s| s.to_lowercase()).collect() } else { Vec::new() };
    // CLUSTER DESCRIBE lists every group; otherwise those the caller may DESCRIBE.
    use crate::auth::acl::{Operation, Resource, CLUSTER_NAME};
    let every = ctx.allowed(Operation::Describe, Resource::Cluster, CLUSTER_NAME);
    groups.retain(|g, _| every || ctx.allowed(Operation::Describe, Resource::Group, g));
    let listed = groups
        .into_iter()
        .filter(|(_, (_, st, _))| states.is_empty() || states.contains(&st.to_lowercase()))
        .filter(|(_, (_, _, ty))| types.is_empty() || types.iter().any(|t| t == ty))
        .map(|(g, (ptype, st, ty))| {
            let mut l = ListedGroup::default()
                .with_group_id(GroupId(StrBytes::from_string(g)))
                .with_protocol_type(StrBytes::from_string(ptype));
            if v >= 4 {
                l = l.with_group_state(StrBytes::from_static_str(st));
            }
            if v >= 5 {
                l = l.with_group_type(StrBytes::from_static_str(ty));
            }
            l
        })
        .collect();
    respond(meta, &ListGroupsResponse::default().with_groups(listed))
}

/// A relayed ListGroups answer (size prefix excluded) with only the groups `keep` accepts: with
/// `--groups upstream` the broker lists every group to logferry's connection, while the caller
/// without CLUSTER DESCRIBE may see only the groups it may DESCRIBE (the broker's own filter).
pub fn filter_relayed(meta: &RequestMeta, body: Bytes, keep: impl Fn(&str) -> bool) -> Result<Bytes, String> {
    use kafka_protocol::messages::ResponseHeader;
    use kafka_protocol::protocol::{Decodable, Encodable};
    let v = meta.api_version;
    let header_version = meta.api_key.response_header_version(v);
    let mut b = body;
    let header =
        ResponseHeader::decode(&mut b, header_version).map_err(|e| format!("relayed ListGroups header: {e}"))?;
    let mut r = ListGroupsResponse::decode(&mut b, v).map_err(|e| format!("relayed ListGroups: {e}"))?;
    r.groups.retain(|g| keep(g.group_id.as_str()));
    let mut out = bytes::BytesMut::new();
    header.encode(&mut out, header_version).map_err(|e| e.to_string())?;
    r.encode(&mut out, v).map_err(|e| e.to_string())?;
    Ok(out.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::{ApiKey, ResponseHeader};
    use kafka_protocol::protocol::{Decodable, Encodable};

    #[test]
    fn relayed_lists_keep_only_what_the_caller_may_describe() {
        for v in [0i16, 3, 5] {
            let meta = RequestMeta { api_key: ApiKey::ListGroups, api_version: v, correlation_id: 9, client_id: None };
            let hv = ApiKey::ListGroups.response_header_version(v);
            let mut b = bytes::BytesMut::new();
            ResponseHeader::default().with_correlation_id(9).encode(&mut b, hv).expect("header");
            let groups = ["g-alice", "g-bob", "g-alice-2"]
                .iter()
                .map(|g| ListedGroup::default().with_group_id(GroupId(StrBytes::from_static_str(g))))
                .collect();
            ListGroupsResponse::default().with_groups(groups).encode(&mut b, v).expect("body");
            let out = filter_relayed(&meta, b.freeze(), |g| g.starts_with("g-alice")).expect("filters");
            let mut o = out;
            assert_eq!(ResponseHeader::decode(&mut o, hv).expect("header").correlation_id, 9);
            let r = ListGroupsResponse::decode(&mut o, v).expect("body");
            let names: Vec<&str> = r.groups.iter().map(|g| g.group_id.as_str()).collect();
            assert_eq!(names, ["g-alice", "g-alice-2"], "v{v}");
        }
    }
}
