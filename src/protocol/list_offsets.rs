//! ListOffsets (key 2, v1–10): earliest, latest, by timestamp, max timestamp.
//!
//! Owns the answers a broker gives (`Partition.fetchOffsetForTimestamp`, `UnifiedLog.fetchOffsetByTimestamp`):
//! latest (−1) is the high watermark, or the last stable offset for `read_committed`, with the
//! current leader epoch; earliest (−2) and earliest-local (−4) are the log start offset; latest
//! tiered (−5) is −1 (no tiered storage); a timestamp T is the first record with timestamp ≥ T,
//! and max timestamp (−3) the first record holding the largest timestamp, both answered −1/−1
//! when that record is not below the visibility bound. Finding the *record* inside a batch needs
//! its timestamps, which for a compressed batch means decompressing that one batch, as the broker
//! does; this is the only place the server reads record contents, and never on the Fetch path.

use kafka_protocol::messages::list_offsets_response::{ListOffsetsPartitionResponse, ListOffsetsTopicResponse};
use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};

use super::{epoch_error, error_code, respond, Bounds, Context, Outcome, RequestMeta};
use crate::log::meta::EpochEntry;
use crate::log::scan::{ReadAt, Scanner, Step};
use crate::log::{records, Partition, TopicPartition};

const LATEST: i64 = -1;
const EARLIEST: i64 = -2;
const MAX_TIMESTAMP: i64 = -3;
const EARLIEST_LOCAL: i64 = -4;
const LATEST_TIERED: i64 = -5;

/// The leader epoch in force at `offset` (the last entry starting at or before it), −1 if none.
pub fn epoch_for_offset(epochs: &[EpochEntry], offset: i64) -> i32 {
    epochs.iter().take_while(|e| e.start_offset <= offset).last().map_or(-1, |e| e.epoch)
}

struct Answer {
    error: i16,
    timestamp: i64,
    offset: i64,
    epoch: i32,
}

fn not_found() -> Answer {
    Answer { error: error_code::NONE, timestamp: -1, offset: -1, epoch: -1 }
}

pub fn handle(meta: &RequestMeta, req: &ListOffsetsRequest, ctx: &mut Context<'_>) -> Outcome {
    let count: usize = req.topics.iter().map(|t| t.partitions.len()).sum();
    if count > ctx.config.partitions_per_request_max {
        return Outcome::Close(format!("ListOffsets for {count} partitions exceeds partitions_per_request_max"));
    }
    let read_committed = meta.api_version >= 2 && req.isolation_level == 1;
    let mut topics = Vec::with_capacity(req.topics.len());
    for t in &req.topics {
        let mut partitions = Vec::with_capacity(t.partitions.len());
        for p in &t.partitions {
            let tp = TopicPartition { topic: t.name.0.to_string(), partition: p.partition_index };
            let a = answer(ctx, &tp, p.current_leader_epoch, p.timestamp, read_committed).unwrap_or_else(|e| {
                log::error!("ListOffsets {tp}: {e}");
                Answer { error: error_code::KAFKA_STORAGE_ERROR, ..not_found() }
            });
            if a.error != error_code::NONE {
                ctx.errors.push(a.error);
            }
            partitions.push(
                ListOffsetsPartitionResponse::default()
                    .with_partition_index(p.partition_index)
                    .with_error_code(a.error)
                    .with_timestamp(a.timestamp)
                    .with_offset(a.offset)
                    .with_leader_epoch(if meta.api_version >= 4 { a.epoch } else { -1 }),
            );
        }
        topics.push(ListOffsetsTopicResponse::default().with_name(t.name.clone()).with_partitions(partitions));
    }
    respond(meta, &ListOffsetsResponse::default().with_topics(topics))
}

fn answer(
    ctx: &mut Context<'_>,
    tp: &TopicPartition,
    current_leader_epoch: i32,
    timestamp: i64,
    read_committed: bool,
) -> Result<Answer, crate::log::LogError> {
    if !ctx.topic_allowed(crate::auth::acl::Operation::Describe, &tp.topic) {
        return Ok(Answer { error: error_code::TOPIC_AUTHORIZATION_FAILED, ..not_found() });
    }
    let Some(b) = ctx.bounds(tp)? else {
        return Ok(Answer { error: ctx.absent_partition_code(tp), ..not_found() });
    };
    if let Some(code) = epoch_error(current_leader_epoch, b.leader_epoch) {
        return Ok(Answer { error: code, ..not_found() });
    }
    let bound = if read_committed { b.last_stable } else { b.high_watermark };
    let view = &mut *ctx.view;
    let Some(p) = view.partitions.get_mut(tp) else { return Ok(not_found()) };
    let epochs = p.leader_epochs.clone();
    let found = match timestamp {
        LATEST => return Ok(Answer { error: error_code::NONE, timestamp: -1, offset: bound, epoch: b.leader_epoch }),
        EARLIEST | EARLIEST_LOCAL => {
            return Ok(Answer {
                error: error_code::NONE,
                timestamp: -1,
                offset: b.log_start,
                epoch: epoch_for_offset(&epochs, b.log_start),
            })
        }
        LATEST_TIERED => return Ok(not_found()),
        MAX_TIMESTAMP => max_timestamp_record(p, &mut view.cache, &b)?,
        t if t >= 0 => first_record_at_or_after(p, &mut view.cache, t)?,
        other => {
            log::debug!("ListOffsets {tp}: unknown special timestamp {other}");
            return Ok(Answer { error: error_code::UNSUPPORTED_VERSION, ..not_found() });
        }
    };
    Ok(match found {
        Some((ts, offset)) if offset < bound && offset >= b.log_start => {
            Answer { error: error_code::NONE, timestamp: ts, offset, epoch: epoch_for_offset(&epochs, offset) }
        }
        _ => not_found(),
    })
}

/// Reads one batch and decodes its records.
fn batch_records(
    file: &std::fs::File,
    position: u64,
    h: &crate::log::batch::BatchHeader,
) -> Option<Vec<records::Record>> {
    let mut buf = vec![0u8; h.size() as usize];
    let n = file.read_at(&mut buf, position).ok()?;
    if n != buf.len() {
        return None;
    }
    records::decode(h, &buf).ok()
}

fn first_record_at_or_after(
    p: &mut Partition,
    cache: &mut crate::log::FileCache,
    ts: i64,
) -> Result<Option<(i64, i64)>, crate::log::LogError> {
    let mut from = ts;
    loop {
        let Some(loc) = p.find_by_timestamp(from, cache)? else { return Ok(None) };
        if loc.header.magic < 2 {
            return Ok(Some((loc.header.max_timestamp, loc.header.last_offset())));
        }
        match batch_records(&loc.file, loc.position, &loc.header) {
            Some(recs) => {
                if let Some(r) = recs.iter().find(|r| r.timestamp >= ts) {
                    return Ok(Some((r.timestamp, r.offset)));
                }
                // max_timestamp said yes but no record did (possible after compaction); go on.
                from = from.max(loc.header.max_timestamp + 1);
                if from <= ts {
                    return Ok(None);
                }
            }
            None => return Ok(Some((loc.header.max_timestamp, loc.header.base_offset))),
        }
    }
}

fn max_timestamp_record(
    p: &mut Partition,
    cache: &mut crate::log::FileCache,
    b: &Bounds,
) -> Result<Option<(i64, i64)>, crate::log::LogError> {
    // The first batch holding the largest max timestamp, then the first record in it with that
    // timestamp (`RecordBatch.offsetOfMaxTimestamp`).
    let mut best: Option<(i64, i64)> = None;
    let mut offset = b.log_start;
    while let Some(loc) = p.find(offset, cache)? {
        let mut scanner = Scanner::new(&*loc.file, loc.position, loc.segment_end, false);
        let mut last_pos = loc.position;
        while let Step::Batch { position, header } = scanner.step() {
            if best.is_none_or(|(ts, _)| header.max_timestamp > ts) {
                best = Some((header.max_timestamp, header.base_offset));
                let _ = position;
            }
            last_pos = position;
            offset = header.next_offset();
        }
        let _ = last_pos;
        if offset <= loc.header.base_offset {
            break;
        }
        let next_segment = p.segments.range(loc.segment_base + 1..).next().map(|(b, _)| *b);
        match next_segment {
            Some(nb) => offset = offset.max(nb),
            None => break,
        }
    }
    let Some((ts, batch_base)) = best else { return Ok(None) };
    if let Some(loc) = p.find(batch_base, cache)? {
        if let Some(recs) = batch_records(&loc.file, loc.position, &loc.header) {
            if let Some(r) = recs.iter().find(|r| r.timestamp == ts) {
                return Ok(Some((r.timestamp, r.offset)));
            }
        }
        return Ok(Some((ts, loc.header.last_offset())));
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epoch_lookup() {
        let e = [EpochEntry { epoch: 0, start_offset: 0 }, EpochEntry { epoch: 3, start_offset: 50 }];
        assert_eq!(epoch_for_offset(&e, 0), 0);
        assert_eq!(epoch_for_offset(&e, 49), 0);
        assert_eq!(epoch_for_offset(&e, 50), 3);
        assert_eq!(epoch_for_offset(&[], 10), -1);
    }
}
