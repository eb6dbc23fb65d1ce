//! Kafka's `StandardAuthorizer` decision over the cluster's ACLs (the metadata log's
//! `AccessControlEntryRecord`s, [`crate::cluster::image::Image::acls`]), with `super.users` and
//! `allow.everyone.if.no.acl.found` from the broker's `server.properties`. Pure: a principal, a
//! client address, an operation and a resource in; allowed or not out. The handlers ask it through
//! `protocol::Context::allowed`.
//!
//! Rules (`StandardAuthorizerData.authorize`; ../shared/docs/cluster-and-security.md §7.2):
//! 1. a principal in `super.users` is allowed everything;
//! 2. the ACLs that apply to a resource are LITERAL with its name, LITERAL `*`, and PREFIXED
//!    whose name starts it; an entry matches when its principal is the caller's or `User:*`, its
//!    host is `*`, the caller's address, or a CIDR holding it, and its operation matches: ALL
//!    matches anything; an ALLOW of READ, WRITE, DELETE or ALTER also grants DESCRIBE, an ALLOW of
//!    ALTER_CONFIGS also grants DESCRIBE_CONFIGS (never for DENY);
//! 3. any matching DENY denies; else any matching ALLOW allows;
//! 4. else denied if any ACL applies to the resource at all, otherwise
//!    `allow.everyone.if.no.acl.found`.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use crate::cluster::records::AclEntry;
use crate::log::meta::Uuid;

/// Resource types (`ResourceType.java`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i8)]
pub enum Resource {
    Topic = 2,
    Group = 3,
    Cluster = 4,
    TransactionalId = 5,
}

/// The one name of the CLUSTER resource.
pub const CLUSTER_NAME: &str = "kafka-cluster";

/// ACL operations (`AclOperation.java`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i8)]
pub enum Operation {
    All = 2,
    Read = 3,
    Write = 4,
    Create = 5,
    Delete = 6,
    Alter = 7,
    Describe = 8,
    ClusterAction = 9,
    DescribeConfigs = 10,
    AlterConfigs = 11,
    IdempotentWrite = 12,
}

const PATTERN_LITERAL: i8 = 3;
const PATTERN_PREFIXED: i8 = 4;
const PERMISSION_DENY: i8 = 2;
const PERMISSION_ALLOW: i8 = 3;
const WILDCARD: &str = "*";
const ANY_USER: &str = "User:*";

/// The broker's authorizer settings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuthorizerConfig {
    /// `super.users`: principals (`User:NAME`) allowed everything.
    pub super_users: Vec<String>,
    /// `allow.everyone.if.no.acl.found` (default false).
    pub allow_everyone_if_no_acl_found: bool,
}

impl AuthorizerConfig {
    /// From the two properties' values (`super.users` is `;`-separated).
    pub fn from_properties(super_users: Option<&str>, allow_everyone: Option<&str>) -> AuthorizerConfig {
        AuthorizerConfig {
            super_users: super_users
                .unwrap_or("")
                .split(';')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect(),
            allow_everyone_if_no_acl_found: allow_everyone.is_some_and(|v| v.trim().eq_ignore_ascii_case("true")),
        }
    }
}

/// Who asks, from where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller<'a> {
    /// `User:NAME` (`User:ANONYMOUS` on PLAINTEXT).
    pub principal: &'a str,
    pub host: IpAddr,
}

/// Whether `caller` may do `op` on the resource `(kind, name)`.
pub fn authorize<'a>(
    acls: impl IntoIterator<Item = &'a AclEntry>,
    config: &AuthorizerConfig,
    caller: &Caller<'_>,
    op: Operation,
    kind: Resource,
    name: &str,
) -> bool {
    if config.super_users.iter().any(|s| s == caller.principal) {
        return true;
    }
    let mut any_applies = false;
    let mut allowed = false;
    for acl in acls {
        if acl.resource_type != kind as i8 || !resource_matches(acl, name) {
            continue;
        }
        any_applies = true;
        if !(acl.principal == caller.principal || acl.principal == ANY_USER) || !host_matches(&acl.host, caller.host) {
            continue;
        }
        match acl.permission_type {
            PERMISSION_DENY if acl.operation == Operation::All as i8 || acl.operation == op as i8 => return false,
            PERMISSION_ALLOW if allow_grants(acl.operation, op) => allowed = true,
            _ => {}
        }
    }
    allowed || (!any_applies && config.allow_everyone_if_no_acl_found)
}

/// The ACLs by (resource type, pattern type) and resource name, so a decision looks at the
/// entries that can apply to its resource (literal name, literal `*`, each prefix of the name)
/// instead of every ACL of the cluster: O(name length × log n), as the broker's sorted index.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AclIndex {
    by_name: BTreeMap<(i8, i8), BTreeMap<String, BTreeSet<Uuid>>>,
}

impl AclIndex {
    pub fn insert(&mut self, acl: &AclEntry) {
        let names = self.by_name.entry((acl.resource_type, acl.pattern_type)).or_default();
        names.entry(acl.resource_name.clone()).or_default().insert(acl.id);
    }

    pub fn remove(&mut self, acl: &AclEntry) {
        let key = (acl.resource_type, acl.pattern_type);
        let Some(names) = self.by_name.get_mut(&key) else { return };
        if let Some(ids) = names.get_mut(&acl.resource_name) {
            ids.remove(&acl.id);
            if ids.is_empty() {
                names.remove(&acl.resource_name);
            }
        }
        if names.is_empty() {
            self.by_name.remove(&key);
        }
    }

    /// The entries of `acls` that may apply to `(kind, name)`.
    pub fn candidates<'a>(&self, acls: &'a BTreeMap<Uuid, AclEntry>, kind: Resource, name: &str) -> Vec<&'a AclEntry> {
        let mut ids: Vec<&Uuid> = Vec::new();
        let k = kind as i8;
        if let Some(literal) = self.by_name.get(&(k, PATTERN_LITERAL)) {
            ids.extend(literal.get(name).into_iter().flatten());
            if name != WILDCARD {
                ids.extend(literal.get(WILDCARD).into_iter().flatten());
            }
        }
        if let Some(prefixed) = self.by_name.get(&(k, PATTERN_PREFIXED)) {
            for (i, c) in name.char_indices() {
                ids.extend(prefixed.get(&name[..i + c.len_utf8()]).into_iter().flatten());
            }
        }
        ids.into_iter().filter_map(|id| acls.get(id)).collect()
    }
}

fn resource_matches(acl: &AclEntry, name: &str) -> bool {
    match acl.pattern_type {
        PATTERN_LITERAL => acl.resource_name == name || acl.resource_name == WILDCARD,
        PATTERN_PREFIXED => name.starts_with(acl.resource_name.as_str()),
        _ => false,
    }
}

fn allow_grants(acl_op: i8, op: Operation) -> bool {
    if acl_op == Operation::All as i8 || acl_op == op as i8 {
        return true;
    }
    match op {
        Operation::Describe => {
            [Operation::Read, Operation::Write, Operation::Delete, Operation::Alter].iter().any(|o| *o as i8 == acl_op)
        }
        Operation::DescribeConfigs => acl_op == Operation::AlterConfigs as i8,
        _ => false,
    }
}

/// `*`, the address itself, or a CIDR block holding it (KIP-1276).
fn host_matches(pattern: &str, host: IpAddr) -> bool {
    if pattern == WILDCARD {
        return true;
    }
    if let Ok(ip) = pattern.parse::<IpAddr>() {
        return ip == host;
    }
    let Some((net, bits)) = pattern.split_once('/') else {
        return false;
    };
    let (Ok(net), Ok(bits)) = (net.parse::<IpAddr>(), bits.parse::<u32>()) else {
        return false;
    };
    match (net, host) {
        (IpAddr::V4(n), IpAddr::V4(h)) if bits <= 32 => {
            let mask = u32::MAX.checked_shl(32 - bits).unwrap_or(0);
            u32::from(n) & mask == u32::from(h) & mask
        }
        (IpAddr::V6(n), IpAddr::V6(h)) if bits <= 128 => {
            let mask = u128::MAX.checked_shl(128 - bits).unwrap_or(0);
            u128::from(n) & mask == u128::from(h) & mask
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acl(
        kind: Resource,
        name: &str,
        pattern: i8,
        principal: &str,
        host: &str,
        op: Operation,
        permission: i8,
    ) -> AclEntry {
        AclEntry {
            id: [0; 16],
            resource_type: kind as i8,
            resource_name: name.into(),
            pattern_type: pattern,
            principal: principal.into(),
            host: host.into(),
            operation: op as i8,
            permission_type: permission,
        }
    }

    fn caller(principal: &str) -> Caller<'_> {
        Caller { principal, host: "10.0.0.7".parse().expect("ip") }
    }

    #[test]
    fn literal_prefixed_and_wildcard_allow() {
        let acls = [
            acl(Resource::Topic, "a", PATTERN_LITERAL, "User:alice", "*", Operation::Read, PERMISSION_ALLOW),
            acl(Resource::Topic, "logs-", PATTERN_PREFIXED, "User:bob", "*", Operation::Read, PERMISSION_ALLOW),
            acl(Resource::Topic, "*", PATTERN_LITERAL, "User:carol", "*", Operation::All, PERMISSION_ALLOW),
        ];
        let cfg = AuthorizerConfig::default();
        let can = |who, op, name| authorize(&acls, &cfg, &caller(who), op, Resource::Topic, name);
        assert!(can("User:alice", Operation::Read, "a"));
        assert!(can("User:alice", Operation::Describe, "a"), "READ implies DESCRIBE");
        assert!(!can("User:alice", Operation::Read, "b"), "no ACL for alice on b: b has none at all, default deny");
        assert!(!can("User:alice", Operation::Write, "a"));
        assert!(can("User:bob", Operation::Read, "logs-app"));
        assert!(!can("User:bob", Operation::Read, "log"));
        assert!(can("User:carol", Operation::Write, "anything"));
        // A group of the same name is another resource.
        assert!(!authorize(&acls, &cfg, &caller("User:alice"), Operation::Read, Resource::Group, "a"));
    }

    #[test]
    fn deny_wins_and_is_never_implied() {
        let acls = [
            acl(Resource::Topic, "*", PATTERN_LITERAL, "User:*", "*", Operation::Read, PERMISSION_ALLOW),
            acl(Resource::Topic, "secret", PATTERN_LITERAL, "User:mallory", "*", Operation::Read, PERMISSION_DENY),
            acl(Resource::Topic, "vault", PATTERN_LITERAL, "User:mallory", "*", Operation::All, PERMISSION_DENY),
        ];
        let cfg = AuthorizerConfig::default();
        let can = |op, name| authorize(&acls, &cfg, &caller("User:mallory"), op, Resource::Topic, name);
        assert!(!can(Operation::Read, "secret"));
        assert!(can(Operation::Describe, "secret"), "DENY READ does not deny DESCRIBE");
        assert!(!can(Operation::Describe, "vault"), "DENY ALL denies everything");
        assert!(can(Operation::Read, "public"));
        assert!(authorize(&acls, &cfg, &caller("User:alice"), Operation::Read, Resource::Topic, "secret"));
    }

    #[test]
    fn hosts_super_users_and_the_no_acl_default() {
        let acls = [
            acl(Resource::Topic, "a", PATTERN_LITERAL, "User:alice", "10.0.0.0/24", Operation::Read, PERMISSION_ALLOW),
            acl(Resource::Topic, "b", PATTERN_LITERAL, "User:alice", "10.0.0.8", Operation::Read, PERMISSION_ALLOW),
            acl(
                Resource::Cluster,
                CLUSTER_NAME,
                PATTERN_LITERAL,
                "User:ops",
                "*",
                Operation::AlterConfigs,
                PERMISSION_ALLOW,
            ),
        ];
        let cfg = AuthorizerConfig::from_properties(Some("User:admin; User:root"), Some("true"));
        assert_eq!(cfg.super_users, ["User:admin", "User:root"]);
        let read = |who, name| authorize(&acls, &cfg, &caller(who), Operation::Read, Resource::Topic, name);
        assert!(read("User:alice", "a"), "10.0.0.7 is in 10.0.0.0/24");
        assert!(!read("User:alice", "b"), "another host");
        assert!(!read("User:bob", "a"), "ACLs exist on a: no default");
        assert!(read("User:bob", "c"), "no ACL on c: allow.everyone.if.no.acl.found");
        assert!(read("User:admin", "b"), "super user");
        let ops = caller("User:ops");
        assert!(authorize(&acls, &cfg, &ops, Operation::DescribeConfigs, Resource::Cluster, CLUSTER_NAME));
        assert!(!authorize(&acls, &cfg, &ops, Operation::Describe, Resource::Cluster, CLUSTER_NAME));
        assert!(!AuthorizerConfig::from_properties(None, None).allow_everyone_if_no_acl_found);
        assert!(host_matches("::/0", "::1".parse().expect("ip")));
        assert!(host_matches("0.0.0.0/0", "1.2.3.4".parse().expect("ip")));
        assert!(!host_matches("10.0.0.0/33", "10.0.0.1".parse().expect("ip")));
        assert!(!host_matches("10.0.0.0/8", "::1".parse().expect("ip")));
        assert!(!host_matches("not-an-ip", "10.0.0.1".parse().expect("ip")));
    }

    #[test]
    fn the_index_gives_the_same_decisions_as_every_acl() {
        let mut acls = BTreeMap::new();
        let mut index = AclIndex::default();
        let entries = [
            (Resource::Topic, "a", PATTERN_LITERAL, "User:alice", Operation::Read, PERMISSION_ALLOW),
            (Resource::Topic, "*", PATTERN_LITERAL, "User:bob", Operation::Read, PERMISSION_ALLOW),
            (Resource::Topic, "lo", PATTERN_PREFIXED, "User:carol", Operation::All, PERMISSION_ALLOW),
            (Resource::Topic, "logs-", PATTERN_PREFIXED, "User:carol", Operation::Read, PERMISSION_DENY),
            (Resource::Topic, "logs-x", PATTERN_LITERAL, "User:*", Operation::Describe, PERMISSION_ALLOW),
            (Resource::Group, "a", PATTERN_LITERAL, "User:alice", Operation::Read, PERMISSION_ALLOW),
            (Resource::Topic, "é", PATTERN_PREFIXED, "User:alice", Operation::Read, PERMISSION_ALLOW),
        ];
        for (n, (kind, name, pattern, who, op, perm)) in entries.into_iter().enumerate() {
            let mut e = acl(kind, name, pattern, who, "*", op, perm);
            e.id = [n as u8; 16];
            index.insert(&e);
            acls.insert(e.id, e);
        }
        // Removing and re-adding keeps the index in step.
        let gone = acls.remove(&[1; 16]).expect("entry");
        index.remove(&gone);
        let cfg = AuthorizerConfig::default();
        let names = ["a", "b", "lo", "logs-", "logs-x", "logs-y", "l", "*", "éa", ""];
        let ops = [Operation::Read, Operation::Describe, Operation::Write];
        for who in ["User:alice", "User:bob", "User:carol", "User:dave"] {
            for kind in [Resource::Topic, Resource::Group] {
                for name in names {
                    for op in ops {
                        let c = caller(who);
                        let all = authorize(acls.values(), &cfg, &c, op, kind, name);
                        let indexed = authorize(index.candidates(&acls, kind, name), &cfg, &c, op, kind, name);
                        assert_eq!(all, indexed, "{who} {op:?} {kind:?} {name:?}");
                    }
                }
            }
        }
        assert!(!authorize(
            index.candidates(&acls, Resource::Topic, "b"),
            &cfg,
            &caller("User:bob"),
            Operation::Read,
            Resource::Topic,
            "b"
        ));
    }
}
