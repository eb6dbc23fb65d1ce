//! DescribeLogDirs (key 35, v1–4): logferry's log directories and the size of each partition
//! in them, as the broker's `ReplicaManager.describeLogDirs` reports its own: every log dir
//! (absolute, as given, symlinks kept, like Java's `getAbsolutePath`), the partitions asked
//! for (null: all) grouped by topic, a partition's size the bytes of its segment files, its
//! offset lag 0 (the broker's `max(HW − LEO, 0)` for a current replica), v4's total and usable
//! bytes of the volume (`statvfs`; −1 when unknown). Needs CLUSTER DESCRIBE, else
//! CLUSTER_AUTHORIZATION_FAILED with no results (the error code is in the answer from v3).
//!
//! `-future` folders (`topic-partition.<uuid>-future`: a move between log dirs in progress,
//! which logferry does not serve) are listed with `IsFutureKey` as the broker lists them, their
//! size the bytes of their `.log` files; they are found by reading each log dir's entries when
//! the request comes (metadata only, like `statvfs`, on an admin request).

use std::collections::BTreeMap;
use std::path::Path;

use kafka_protocol::messages::describe_log_dirs_response::{
    DescribeLogDirsPartition, DescribeLogDirsResult, DescribeLogDirsTopic,
};
use kafka_protocol::messages::{DescribeLogDirsRequest, DescribeLogDirsResponse, TopicName};
use kafka_protocol::protocol::StrBytes;

use super::{error_code, respond, Context, Outcome, RequestMeta};
use crate::auth::acl::{Operation, Resource, CLUSTER_NAME};

/// (total, usable) bytes of the file system holding `dir`, as Java's `FileStore`
/// `getTotalSpace`/`getUsableSpace` count them; (−1, −1) when `statvfs` fails.
fn volume_bytes(dir: &Path) -> (i64, i64) {
    match nix::sys::statvfs::statvfs(dir) {
        Ok(s) => {
            let frag = s.fragment_size();
            let total = s.blocks().saturating_mul(frag);
            let usable = s.blocks_available().saturating_mul(frag);
            (i64::try_from(total).unwrap_or(i64::MAX), i64::try_from(usable).unwrap_or(i64::MAX))
        }
        Err(e) => {
            log::warn!("DescribeLogDirs: statvfs {}: {e}", dir.display());
            (-1, -1)
        }
    }
}

/// The topic and partition of a `-future` folder name.
fn parse_future(name: &str) -> Option<(String, i32)> {
    let base = name.strip_suffix("-future")?;
    let (tp, id) = base.rsplit_once('.')?;
    if id.len() != 32 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let (topic, partition) = tp.rsplit_once('-')?;
    let partition: i32 = partition.parse().ok().filter(|p| *p >= 0)?;
    (!topic.is_empty()).then(|| (topic.to_string(), partition))
}

/// `-future` folders of `dir` with the bytes of their segment files.
fn future_partitions(dir: &Path) -> Vec<(String, i32, u64)> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut out = Vec::new();
    for e in entries.flatten() {
        let name = e.file_name();
        let Some((topic, partition)) = name.to_str().and_then(parse_future) else { continue };
        let size = std::fs::read_dir(e.path())
            .map(|files| {
                files
                    .flatten()
                    .filter(|f| f.file_name().to_str().is_some_and(|n| n.ends_with(".log")))
                    .filter_map(|f| f.metadata().ok())
                    .map(|m| m.len())
                    .sum()
            })
            .unwrap_or(0);
        out.push((topic, partition, size));
    }
    out
}

pub fn handle(meta: &RequestMeta, req: &DescribeLogDirsRequest, ctx: &mut Context<'_>) -> Outcome {
    if !ctx.allowed(Operation::Describe, Resource::Cluster, CLUSTER_NAME) {
        ctx.note_error(error_code::CLUSTER_AUTHORIZATION_FAILED);
        let resp = DescribeLogDirsResponse::default().with_error_code(error_code::CLUSTER_AUTHORIZATION_FAILED);
        return respond(meta, &resp);
    }
    let asked = |topic: &str, partition: i32| match &req.topics {
        None => true,
        Some(list) => list.iter().any(|t| t.topic.0.as_str() == topic && t.partitions.contains(&partition)),
    };
    let mut results = Vec::with_capacity(ctx.view.dirs.len());
    for dir in &ctx.view.dirs {
        let futures = future_partitions(&dir.path);
        let mut topics: BTreeMap<&str, Vec<DescribeLogDirsPartition>> = BTreeMap::new();
        for (tp, p) in &ctx.view.partitions {
            if p.dir.parent() != Some(dir.path.as_path()) || !asked(&tp.topic, tp.partition) {
                continue;
            }
            let size: u64 = p.segments.values().map(|s| s.len).sum();
            topics.entry(tp.topic.as_str()).or_default().push(
                DescribeLogDirsPartition::default()
                    .with_partition_index(tp.partition)
                    .with_partition_size(i64::try_from(size).unwrap_or(i64::MAX))
                    .with_offset_lag(0)
                    .with_is_future_key(false),
            );
        }
        for (topic, partition, size) in &futures {
            if asked(topic, *partition) && ctx.topic_allowed(Operation::Describe, topic) {
                topics.entry(topic.as_str()).or_default().push(
                    DescribeLogDirsPartition::default()
                        .with_partition_index(*partition)
                        .with_partition_size(i64::try_from(*size).unwrap_or(i64::MAX))
                        .with_offset_lag(0)
                        .with_is_future_key(true),
                );
            }
        }
        let absolute = std::path::absolute(&dir.path).unwrap_or_else(|_| dir.path.clone());
        let (total, usable) = volume_bytes(&dir.path);
        results.push(
            DescribeLogDirsResult::default()
                .with_error_code(error_code::NONE)
                .with_log_dir(StrBytes::from_string(absolute.to_string_lossy().into_owned()))
                .with_topics(
                    topics
                        .into_iter()
                        .map(|(t, partitions)| {
                            DescribeLogDirsTopic::default()
                                .with_name(TopicName(StrBytes::from_string(t.to_string())))
                                .with_partitions(partitions)
                        })
                        .collect(),
                )
                .with_total_bytes(total)
                .with_usable_bytes(usable),
        );
    }
    respond(meta, &DescribeLogDirsResponse::default().with_results(results))
}

#[cfg(test)]
mod tests {
    use super::parse_future;

    #[test]
    fn future_folder_names() {
        let id = "0123456789abcdef0123456789abcdef";
        assert_eq!(parse_future(&format!("orders-0.{id}-future")), Some(("orders".into(), 0)));
        assert_eq!(parse_future(&format!("my-topic-12.{id}-future")), Some(("my-topic".into(), 12)));
        assert_eq!(parse_future("orders-0"), None);
        assert_eq!(parse_future(&format!("orders-0.{id}-delete")), None);
        assert_eq!(parse_future("orders-0.xyz-future"), None);
        assert_eq!(parse_future(&format!("orders-x.{id}-future")), None);
    }
}
