//! The committed real fixture (`tests/fixtures/logdir`, written by Apache Kafka 4.1 through the
//! harness; see `tests/fixtures/make_fixture.py`) read through the log model and compared, record
//! for record, with what the Java producer reported writing (`tests/fixtures/expected/*.txt`).

use std::collections::BTreeMap;
use std::path::PathBuf;

use logferry::log::batch::BatchHeader;
use logferry::log::records;
use logferry::log::scan::ReadAt;
use logferry::log::{meta, LogView, TopicPartition};
use sha2::{Digest, Sha256};

fn fixture_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/logdir")
}

/// One line of `expected/*.txt`: `C|A topic partition offset timestamp key-hex value-sha256 headers`.
#[derive(Clone, Debug)]
struct Expected {
    aborted: bool,
    tp: TopicPartition,
    offset: i64,
    timestamp: i64,
    canonical: String,
}

fn expected(topic: &str) -> Vec<Expected> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("tests/fixtures/expected/{topic}.txt"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines()
        .map(|l| {
            let (tag, rest) = l.split_once(' ').expect("tagged line");
            let f: Vec<&str> = rest.split(' ').collect();
            Expected {
                aborted: tag == "A",
                tp: TopicPartition { topic: f[0].to_string(), partition: f[1].parse().unwrap() },
                offset: f[2].parse().unwrap(),
                timestamp: f[3].parse().unwrap(),
                canonical: rest.to_string(),
            }
        })
        .collect()
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The canonical line of a decoded record, as the harness clients print it.
fn canonical(tp: &TopicPartition, r: &records::Record) -> String {
    let key = r.key.as_deref().map(hex).unwrap_or_else(|| "null".into());
    let value = r.value.as_deref().map(|v| hex(&Sha256::digest(v))).unwrap_or_else(|| "null".into());
    let headers = if r.headers.is_empty() {
        "-".to_string()
    } else {
        r.headers
            .iter()
            .map(|(k, v)| format!("{}={}", hex(k.as_bytes()), v.as_deref().map(hex).unwrap_or_else(|| "null".into())))
            .collect::<Vec<_>>()
            .join(",")
    };
    format!("{} {} {} {} {key} {value} {headers}", tp.topic, tp.partition, r.offset, r.timestamp)
}

fn open() -> LogView {
    LogView::open(&[fixture_dir()], 16).expect("fixture opens")
}

fn read_batch(file: &std::fs::File, position: u64, h: &BatchHeader) -> Vec<u8> {
    let mut buf = vec![0u8; h.size() as usize];
    assert_eq!(file.read_at(&mut buf, position).unwrap(), buf.len());
    buf
}

#[test]
fn identity_and_partitions() {
    // The fixture's meta.properties, partition folders and topic ids are read as the broker wrote them.
    let view = open();
    assert_eq!(view.cluster_id(), Some("MkU3OEVBNTcwNTJENDM2Qk"));
    assert_eq!(view.node_id(), Some(1));
    for topic in ["plain", "gzip", "zstd", "txn", "compacted"] {
        let ids: Vec<_> = (0..3)
            .map(|p| {
                let part = view.partition(&TopicPartition { topic: topic.into(), partition: p }).expect("partition");
                assert!(part.topic_id_from_file, "{topic}-{p} topic id should come from partition.metadata");
                assert!(part.leader_epoch() >= 0);
                part.topic_id
            })
            .collect();
        assert!(ids.iter().all(|i| *i == ids[0]), "one topic id per topic");
        let text = std::fs::read_to_string(fixture_dir().join(format!("{topic}-0/partition.metadata"))).unwrap();
        assert!(text.ends_with(&meta::uuid_to_string(&ids[0])));
    }
    assert!(view.partitions.keys().all(|tp| tp.topic != "__cluster_metadata"));
}

#[test]
fn every_produced_record_is_found_and_identical() {
    // For every record the producer acknowledged (aborted ones included), an offset lookup lands
    // on the batch holding it, and decoding that batch gives the very same record.
    let mut view = open();
    let mut checked = 0;
    for topic in ["plain", "gzip", "zstd", "txn"] {
        for e in expected(topic) {
            let p = view.partitions.get_mut(&e.tp).expect("partition");
            let mut cache = logferry::log::FileCache::new(8);
            let loc = p.find(e.offset, &mut cache).unwrap().unwrap_or_else(|| panic!("{} not found", e.canonical));
            assert!(loc.header.base_offset <= e.offset && e.offset <= loc.header.last_offset(), "{}", e.canonical);
            let bytes = read_batch(&loc.file, loc.position, &loc.header);
            logferry::log::batch::check_crc(&loc.header, &bytes).expect("crc");
            let recs = records::decode(&loc.header, &bytes).expect("records decode");
            let r = recs.iter().find(|r| r.offset == e.offset).expect("record in its batch");
            assert_eq!(canonical(&e.tp, r), e.canonical);
            checked += 1;
        }
    }
    assert!(checked > 600, "checked {checked}");
}

#[test]
fn log_end_and_high_watermark() {
    // LEO is one past the last batch (a transaction marker may be last); after the broker's
    // clean shutdown the high-watermark checkpoint equals it.
    let mut view = open();
    for topic in ["plain", "gzip", "zstd", "txn"] {
        let mut last: BTreeMap<TopicPartition, i64> = BTreeMap::new();
        for e in expected(topic) {
            let v = last.entry(e.tp.clone()).or_insert(-1);
            *v = (*v).max(e.offset);
        }
        for (tp, max) in last {
            let p = view.partitions.get_mut(&tp).unwrap();
            let leo = p.log_end_offset();
            assert!(leo > max, "{tp}: LEO {leo} <= last record {max}");
            if topic != "txn" {
                assert_eq!(leo, max + 1, "{tp}");
            }
            assert_eq!(p.high_watermark_checkpoint, Some(leo), "{tp}");
            assert_eq!(p.log_start_offset(), 0);
            let mut cache = logferry::log::FileCache::new(8);
            assert!(p.find(leo, &mut cache).unwrap().is_none(), "{tp}: nothing at LEO");
            assert!(p.find(leo - 1, &mut cache).unwrap().is_some());
        }
    }
}

#[test]
fn aborted_transactions_cover_aborted_records() {
    // Every record the producer aborted lies in an aborted range of the .txnindex files; no
    // committed transactional record does.
    let mut view = open();
    let all = expected("txn");
    assert!(all.iter().any(|e| e.aborted));
    for p in 0..3 {
        let tp = TopicPartition { topic: "txn".into(), partition: p };
        let part = view.partitions.get_mut(&tp).unwrap();
        let leo = part.log_end_offset();
        let (aborted, exact_to) = part.aborted_transactions(0, leo, &mut view.cache).unwrap();
        assert_eq!(exact_to, leo);
        for e in all.iter().filter(|e| e.tp == tp) {
            let covered = aborted.iter().any(|t| t.first_offset <= e.offset && e.offset <= t.last_offset);
            if e.aborted {
                assert!(covered, "aborted record {} not covered by {aborted:?}", e.canonical);
            }
        }
        // Ranges starting after the fetch window are not returned.
        let (late, _) = part.aborted_transactions(leo, leo + 1, &mut view.cache).unwrap();
        assert!(late.iter().all(|t| t.last_offset >= leo));
    }
}

#[test]
fn compacted_topic_keeps_latest_values() {
    // After the cleaner ran, the latest value of every key is still readable at its offset.
    let mut view = open();
    let mut latest: BTreeMap<(i32, String), Expected> = BTreeMap::new();
    for e in expected("compacted") {
        let key = e.canonical.split(' ').nth(4).unwrap().to_string();
        let slot = latest.entry((e.tp.partition, key)).or_insert_with(|| e.clone());
        if e.offset > slot.offset {
            *slot = e;
        }
    }
    let mut cache = logferry::log::FileCache::new(8);
    for e in latest.values() {
        let p = view.partitions.get_mut(&e.tp).unwrap();
        let loc = p.find(e.offset, &mut cache).unwrap().expect("latest value present");
        let bytes = read_batch(&loc.file, loc.position, &loc.header);
        let recs = records::decode(&loc.header, &bytes).unwrap();
        let r = recs.iter().find(|r| r.offset == e.offset).expect("latest record kept by the cleaner");
        assert_eq!(canonical(&e.tp, r), e.canonical);
    }
    // Walking every batch with `find`, the log holds fewer records than were produced: the
    // cleaner really ran on this fixture.
    let produced = expected("compacted").len() as i64;
    let mut stored = 0i64;
    for partition in 0..3 {
        let p = view.partitions.get_mut(&TopicPartition { topic: "compacted".into(), partition }).unwrap();
        let mut offset = p.log_start_offset();
        while let Some(loc) = p.find(offset, &mut cache).unwrap() {
            stored += i64::from(loc.header.records_count);
            offset = loc.header.next_offset();
        }
        assert_eq!(offset, p.log_end_offset());
    }
    assert!(stored < produced, "stored {stored} of {produced}");
}

#[test]
fn timestamp_lookup_lands_at_or_before_the_record() {
    // The first batch with max timestamp >= T never comes after the batch holding a record of
    // timestamp T.
    let mut view = open();
    let mut cache = logferry::log::FileCache::new(8);
    for e in expected("plain").iter().step_by(7) {
        let p = view.partitions.get_mut(&e.tp).unwrap();
        let by_ts = p.find_by_timestamp(e.timestamp, &mut cache).unwrap().expect("found by timestamp");
        let by_offset = p.find(e.offset, &mut cache).unwrap().unwrap();
        assert!(by_ts.header.max_timestamp >= e.timestamp);
        assert!(
            (by_ts.segment_base, by_ts.position) <= (by_offset.segment_base, by_offset.position),
            "{}",
            e.canonical
        );
    }
    let p = view.partitions.get_mut(&TopicPartition { topic: "plain".into(), partition: 0 }).unwrap();
    assert!(p.find_by_timestamp(i64::MAX, &mut cache).unwrap().is_none());
}

#[test]
fn bad_directories_are_clear_errors() {
    let err = LogView::open(&[PathBuf::from("/nonexistent/logferry-test")], 8).err().expect("error");
    assert!(err.to_string().starts_with("/nonexistent/logferry-test: "), "{err}");
    let f = tempfile::NamedTempFile::new().unwrap();
    let err = LogView::open(&[f.path().to_path_buf()], 8).err().expect("error");
    assert!(err.to_string().ends_with("not a directory"), "{err}");
    // Garbage files and folders in a log dir are ignored, garbage .log contents are not served.
    let d = tempfile::tempdir().unwrap();
    std::fs::create_dir(d.path().join("not-a-partition")).unwrap();
    std::fs::write(d.path().join("random.bin"), b"\x00\x01garbage").unwrap();
    std::fs::create_dir(d.path().join("orders-0")).unwrap();
    std::fs::write(d.path().join("orders-0/00000000000000000000.log"), vec![0xAB; 5000]).unwrap();
    let mut view = LogView::open(&[d.path().to_path_buf()], 8).unwrap();
    let tp = TopicPartition { topic: "orders".into(), partition: 0 };
    let p = view.partitions.get_mut(&tp).expect("orders-0");
    assert_eq!(p.log_end_offset(), 0);
    assert!(!p.topic_id_from_file);
    let mut cache = logferry::log::FileCache::new(8);
    assert!(p.find(0, &mut cache).unwrap().is_none());
}

#[test]
fn transaction_walk_is_bounded_per_call_and_conservative_until_done() {
    // A partition with no producer snapshot: the last stable offset needs a walk over every
    // batch header from the start, which is done a bounded slice per call.
    let tmp = tempfile::tempdir().unwrap();
    let pdir = tmp.path().join("t-0");
    std::fs::create_dir_all(&pdir).unwrap();
    let batches = logferry::log::TXN_WALK_BATCHES_PER_CALL as i64 + 1000;
    let mut log = Vec::new();
    for i in 0..batches {
        log.extend(crate::util::batch(i, 1, 1_700_000_000_000 + i, 10, b'a'));
    }
    std::fs::write(pdir.join("00000000000000000000.log"), &log).unwrap();
    let mut view = LogView::open(&[tmp.path().to_path_buf()], 16).unwrap();
    let tp = TopicPartition { topic: "t".into(), partition: 0 };
    let view = &mut view;
    let part = view.partitions.get_mut(&tp).unwrap();
    assert_eq!(part.log_end_offset(), batches);
    let first = part.first_open_txn_offset(&mut view.cache).unwrap();
    assert_eq!(first, Some(logferry::log::TXN_WALK_BATCHES_PER_CALL as i64), "stable only as far as walked");
    let second = part.first_open_txn_offset(&mut view.cache).unwrap();
    assert_eq!(second, None, "walked to the end: no open transaction");
}

#[test]
fn periodic_rescan_in_slices_finds_new_and_removed_partitions() {
    let tmp = tempfile::tempdir().unwrap();
    for p in 0..10 {
        let d = tmp.path().join(format!("s-{p}"));
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("00000000000000000000.log"), crate::util::batch(0, 1, 1_700_000_000_000, 10, b'a'))
            .unwrap();
    }
    let mut view = LogView::open(&[tmp.path().to_path_buf()], 16).unwrap();
    assert_eq!(view.partitions.len(), 10);
    std::fs::remove_dir_all(tmp.path().join("s-3")).unwrap();
    let d = tmp.path().join("s-10");
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(d.join("00000000000000000000.log"), crate::util::batch(0, 2, 1_700_000_000_000, 10, b'b')).unwrap();
    let mut events = Vec::new();
    let mut steps = 0;
    loop {
        let (e, done) = view.rescan_step(4).unwrap();
        steps += 1;
        events.extend(e);
        if done {
            break;
        }
        assert!(view.rescan_in_progress());
    }
    assert_eq!(steps, 3, "10 partitions in slices of 4");
    assert!(!view.rescan_in_progress());
    let added = TopicPartition { topic: "s".into(), partition: 10 };
    let gone = TopicPartition { topic: "s".into(), partition: 3 };
    assert!(events.iter().any(|e| matches!(e, logferry::log::LogEvent::PartitionAdded(tp) if *tp == added)));
    assert!(events.iter().any(|e| matches!(e, logferry::log::LogEvent::PartitionRemoved(tp) if *tp == gone)));
    assert_eq!(view.partitions[&added].log_end_offset(), 2);
}

#[test]
fn a_partition_moved_to_another_log_dir_is_served_from_there_and_its_old_files_are_closed() {
    // The broker's swap at the end of a move between log dirs: the `-future` copy in the other
    // dir is renamed to the partition's name, then the old folder is renamed `-delete` (and
    // unlinked a minute later). Between the two renames both dirs hold `m-0`.
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let seg = crate::util::batch(0, 3, 1_700_000_000_000, 10, b'a');
    std::fs::create_dir_all(a.path().join("m-0")).unwrap();
    std::fs::write(a.path().join("m-0/00000000000000000000.log"), &seg).unwrap();
    let mut view = LogView::open(&[a.path().to_path_buf(), b.path().to_path_buf()], 16).unwrap();
    let tp = TopicPartition { topic: "m".into(), partition: 0 };
    assert_eq!(view.partitions[&tp].dir, a.path().join("m-0"));
    assert_eq!(view.cache.open_count(), 1, "the active segment is open");

    std::fs::create_dir_all(b.path().join("m-0")).unwrap();
    std::fs::write(b.path().join("m-0/00000000000000000000.log"), &seg).unwrap();
    view.rescan().unwrap();
    assert_eq!(view.partitions[&tp].dir, a.path().join("m-0"), "both dirs hold it: the first is served");

    let deleted = a.path().join("m-0.0123456789abcdef0123456789abcdef-delete");
    std::fs::rename(a.path().join("m-0"), &deleted).unwrap();
    view.rescan().unwrap();
    let p = &view.partitions[&tp];
    assert_eq!(p.dir, b.path().join("m-0"), "served from the dir it moved to");
    assert_eq!(p.log_end_offset(), 3);
    assert_eq!(view.cache.open_count(), 1, "the old folder's segment left the cache");
}
