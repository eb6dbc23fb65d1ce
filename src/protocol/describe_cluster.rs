//! DescribeCluster (key 60, v0–2): the cluster id and the nodes this server presents, the same
//! ones Metadata lists ([`super::metadata::Presentation`]): the fleet of logferry instances
//! beside the live brokers of the metadata log, or this instance alone. As a KRaft broker does,
//! it names a live node as the controller (this one: clients cannot reach the controllers) and
//! answers only the brokers' endpoints: EndpointType 2 (controllers, KIP-919) is
//! MISMATCHED_ENDPOINT_TYPE, any other but 1 UNSUPPORTED_ENDPOINT_TYPE. v2's fenced brokers
//! (KIP-1073) are listed, flagged, when asked for and the logferry beside them has an address.
//! The call needs no ACL; `ClusterAuthorizedOperations` is computed when asked.

use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::{BrokerId, DescribeClusterRequest, DescribeClusterResponse};
use kafka_protocol::protocol::StrBytes;

use super::metadata::Presentation;
use super::{respond, Context, Outcome, RequestMeta};
use crate::auth::acl::{Operation, Resource, CLUSTER_NAME};
use crate::cluster::fleet::Fleet;

const ENDPOINT_BROKERS: i8 = 1;
const ENDPOINT_CONTROLLERS: i8 = 2;
const MISMATCHED_ENDPOINT_TYPE: i16 = 114;
const UNSUPPORTED_ENDPOINT_TYPE: i16 = 115;
const INVALID_REQUEST: i16 = 42;

/// `AclEntry.supportedOperations(CLUSTER)`.
pub const CLUSTER_OPERATIONS: [Operation; 7] = [
    Operation::Create,
    Operation::ClusterAction,
    Operation::DescribeConfigs,
    Operation::AlterConfigs,
    Operation::IdempotentWrite,
    Operation::Alter,
    Operation::Describe,
];

pub fn handle(meta: &RequestMeta, req: &DescribeClusterRequest, ctx: &mut Context<'_>) -> Outcome {
    let v = meta.api_version;
    let mut resp = DescribeClusterResponse::default()
        .with_endpoint_type(req.endpoint_type)
        .with_cluster_id(StrBytes::from_string(ctx.config.cluster_id.clone()))
        .with_controller_id(BrokerId(ctx.config.node_id))
        .with_cluster_authorized_operations(i32::MIN);
    let refusal = match req.endpoint_type {
        ENDPOINT_BROKERS => None,
        ENDPOINT_CONTROLLERS if v >= 1 => Some((
            MISMATCHED_ENDPOINT_TYPE,
            "The request was sent to an endpoint of type BROKER, but we wanted an endpoint of type CONTROLLER",
        )),
        ENDPOINT_CONTROLLERS => Some((INVALID_REQUEST, "DescribeCluster v0 cannot ask for controllers")),
        _ => Some((UNSUPPORTED_ENDPOINT_TYPE, "Unsupported endpoint type")),
    };
    if let Some((code, message)) = refusal {
        ctx.note_error(code);
        resp = resp
            .with_error_code(code)
            .with_error_message(Some(StrBytes::from_static_str(message)))
            .with_controller_id(BrokerId(-1));
        return respond(meta, &resp);
    }
    let view = Presentation::of(ctx);
    let node = |id: i32, host: &str, port: u16, rack: Option<&String>, fenced: bool| {
        DescribeClusterBroker::default()
            .with_broker_id(BrokerId(id))
            .with_host(StrBytes::from_string(host.to_string()))
            .with_port(i32::from(port))
            .with_rack(rack.cloned().map(StrBytes::from_string))
            .with_is_fenced(fenced)
    };
    let mut brokers: Vec<DescribeClusterBroker> =
        view.nodes(ctx).iter().map(|n| node(n.id, &n.host, n.port, n.rack.as_ref(), false)).collect();
    if let (Presentation::Fleet(f), true) = (&view, v >= 2 && req.include_fenced_brokers) {
        for b in f.image.brokers.values().filter(|b| b.fenced && b.id != ctx.config.node_id) {
            if let Some((host, port)) = Fleet::address(f.image, &ctx.config.fleet, b.id) {
                brokers.push(node(b.id, &host, port, b.rack.as_ref(), true));
            }
        }
        brokers.sort_by_key(|b| b.broker_id.0);
    }
    if req.include_cluster_authorized_operations {
        resp.cluster_authorized_operations =
            ctx.authorized_operations(Resource::Cluster, CLUSTER_NAME, &CLUSTER_OPERATIONS);
    }
    respond(meta, &resp.with_brokers(brokers))
}
