//! Benchmark (not a test): the cost of the ACL checks an all-topics Metadata makes (issue 14).
//!
//! 10,000 topics; N ACLs (N = 100, 1,000, 10,000): one literal ALLOW READ per topic for users
//! `u0..u99` in turn, plus every tenth a PREFIXED DENY on the topic's first four characters for
//! another user. One pass = TOPIC DESCRIBE for every topic for one principal, decided (a) over
//! every ACL of the cluster (a linear scan, the baseline in the same run) and (b) over the
//! candidates of [`logferry::auth::acl::AclIndex`]; both must agree. Reported: time per
//! pass (best of 5) and the ratio. Run: `cargo bench --bench acl_check`.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use logferry::auth::acl::{authorize, AclIndex, AuthorizerConfig, Caller, Operation, Resource};
use logferry::cluster::records::AclEntry;

fn best_of<F: FnMut() -> usize>(mut f: F) -> (Duration, usize) {
    let mut best = Duration::MAX;
    let mut out = 0;
    for _ in 0..5 {
        let t = Instant::now();
        out = f();
        best = best.min(t.elapsed());
    }
    (best, out)
}

fn main() {
    let topics: Vec<String> = (0..10_000).map(|i| format!("t{i:05}-events")).collect();
    let cfg = AuthorizerConfig::default();
    let caller = Caller { principal: "User:u7", host: "10.1.2.3".parse().expect("ip") };
    println!("{:>7} ACLs | linear pass | indexed pass | ratio | topics allowed", "");
    for n in [100usize, 1_000, 10_000] {
        let mut acls = BTreeMap::new();
        let mut index = AclIndex::default();
        for i in 0..n {
            let t = &topics[i % topics.len()];
            let (name, pattern, principal, permission) = if i % 10 == 9 {
                (t[..4].to_string(), 4, format!("User:x{i}"), 2)
            } else {
                (t.clone(), 3, format!("User:u{}", i % 100), 3)
            };
            let mut id = [0u8; 16];
            id[..8].copy_from_slice(&(i as u64).to_be_bytes());
            let e = AclEntry {
                id,
                resource_type: Resource::Topic as i8,
                resource_name: name,
                pattern_type: pattern,
                principal,
                host: "*".into(),
                operation: Operation::Read as i8,
                permission_type: permission,
            };
            index.insert(&e);
            acls.insert(id, e);
        }
        let (linear, a) = best_of(|| {
            topics
                .iter()
                .filter(|t| authorize(acls.values(), &cfg, &caller, Operation::Describe, Resource::Topic, t))
                .count()
        });
        let (indexed, b) = best_of(|| {
            topics
                .iter()
                .filter(|t| {
                    let c = index.candidates(&acls, Resource::Topic, t);
                    authorize(c, &cfg, &caller, Operation::Describe, Resource::Topic, t)
                })
                .count()
        });
        assert_eq!(a, b, "the index must decide as the linear scan");
        println!(
            "{n:>7} ACLs | {:>8.2} ms | {:>9.3} ms | {:>5.0}x | {a}",
            linear.as_secs_f64() * 1e3,
            indexed.as_secs_f64() * 1e3,
            linear.as_secs_f64() / indexed.as_secs_f64()
        );
    }
}
