//! OffsetForLeaderEpoch (key 23, v2–4): where a leader epoch ended, for consumers validating
//! their position after a leader change (KIP-320).
//!
//! Owns the broker's rule (`LeaderEpochFileCache.endOffsetFor`) over `leader-epoch-checkpoint`:
//! the latest epoch ends at the log end offset (pitfall 2: a consumer that read up to the log end
//! elsewhere must not see false truncation); an older epoch ends where the next higher epoch
//! starts, reported with the largest epoch at or below the requested one; an epoch above the
//! latest, or −1, is unknown (−1, −1).

use kafka_protocol::messages::offset_for_leader_epoch_response::{EpochEndOffset, OffsetForLeaderTopicResult};
use kafka_protocol::messages::{OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse};

use super::{epoch_error, error_code, respond, Context, Outcome, RequestMeta};
use crate::log::meta::EpochEntry;
use crate::log::TopicPartition;

/// (epoch, end offset) for `requested`, by the broker's rule.
pub fn end_offset_for(epochs: &[EpochEntry], requested: i32, log_end: i64) -> (i32, i64) {
    let Some(latest) = epochs.last() else { return (-1, -1) };
    if requested < 0 {
        return (-1, -1);
    }
    if requested == latest.epoch {
        return (latest.epoch, log_end);
    }
    let Some(higher) = epochs.iter().find(|e| e.epoch > requested) else { return (-1, -1) };
    match epochs.iter().take_while(|e| e.epoch <= requested).last() {
        Some(floor) => (floor.epoch, higher.start_offset),
        None => (requested, higher.start_offset),
    }
}

pub fn handle(meta: &RequestMeta, req: &OffsetForLeaderEpochRequest, ctx: &mut Context<'_>) -> Outcome {
    let count: usize = req.topics.iter().map(|t| t.partitions.len()).sum();
    if count > ctx.config.partitions_per_request_max {
        return Outcome::Close(format!(
            "OffsetForLeaderEpoch for {count} partitions exceeds partitions_per_request_max"
        ));
    }
    let mut topics = Vec::with_capacity(req.topics.len());
    for t in &req.topics {
        let mut partitions = Vec::with_capacity(t.partitions.len());
        for p in &t.partitions {
            let tp = TopicPartition { topic: t.topic.0.to_string(), partition: p.partition };
            let r = EpochEndOffset::default().with_partition(p.partition);
            // CLUSTER_ACTION is for brokers; a consumer needs TOPIC DESCRIBE.
            let allowed = ctx.topic_allowed(crate::auth::acl::Operation::Describe, &tp.topic);
            let r = match ctx.bounds(&tp) {
                _ if !allowed => {
                    r.with_error_code(error_code::TOPIC_AUTHORIZATION_FAILED).with_leader_epoch(-1).with_end_offset(-1)
                }
                Ok(Some(b)) => match epoch_error(p.current_leader_epoch, b.leader_epoch) {
                    Some(code) => r.with_error_code(code).with_leader_epoch(-1).with_end_offset(-1),
                    None => {
                        let epochs = ctx.view.partition(&tp).map(|x| x.leader_epochs.clone()).unwrap_or_default();
                        let (epoch, end) = end_offset_for(&epochs, p.leader_epoch, b.log_end);
                        r.with_error_code(error_code::NONE).with_leader_epoch(epoch).with_end_offset(end)
                    }
                },
                Ok(None) => r.with_error_code(ctx.absent_partition_code(&tp)).with_leader_epoch(-1).with_end_offset(-1),
                Err(e) => {
                    log::error!("OffsetForLeaderEpoch {tp}: {e}");
                    r.with_error_code(error_code::KAFKA_STORAGE_ERROR).with_leader_epoch(-1).with_end_offset(-1)
                }
            };
            if r.error_code != error_code::NONE {
                ctx.errors.push(r.error_code);
            }
            partitions.push(r);
        }
        topics.push(OffsetForLeaderTopicResult::default().with_topic(t.topic.clone()).with_partitions(partitions));
    }
    respond(meta, &OffsetForLeaderEpochResponse::default().with_topics(topics))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broker_rule() {
        let e = [
            EpochEntry { epoch: 1, start_offset: 0 },
            EpochEntry { epoch: 4, start_offset: 100 },
            EpochEntry { epoch: 6, start_offset: 250 },
        ];
        assert_eq!(end_offset_for(&e, 6, 300), (6, 300));
        assert_eq!(end_offset_for(&e, 4, 300), (4, 250));
        assert_eq!(end_offset_for(&e, 5, 300), (4, 250));
        assert_eq!(end_offset_for(&e, 0, 300), (0, 0));
        assert_eq!(end_offset_for(&e, 7, 300), (-1, -1));
        assert_eq!(end_offset_for(&e, -1, 300), (-1, -1));
        assert_eq!(end_offset_for(&[], 3, 300), (-1, -1));
    }
}
