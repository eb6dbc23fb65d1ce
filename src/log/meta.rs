//! The small text files a broker keeps beside its segments, and the names of things.
//!
//! Owns parsing of `meta.properties`, `partition.metadata`, the checkpoint format shared by
//! `replication-offset-checkpoint`, `log-start-offset-checkpoint`, `recovery-point-offset-checkpoint`
//! and `leader-epoch-checkpoint`, topic-id encoding (base64url, no padding), and the naming rules
//! for partition directories and segment files. All parsers take text and return values or a
//! [`FormatError`] that says which line is wrong; reading the files is the caller's job.
//! Sources: `docs/kafka-format.md` §1.

use std::collections::BTreeMap;

/// What is wrong with a text file, by line (1-based; 0 = the file as a whole).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FormatError {
    pub line: usize,
    pub what: String,
}

impl std::fmt::Display for FormatError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.line == 0 {
            write!(f, "{}", self.what)
        } else {
            write!(f, "line {}: {}", self.line, self.what)
        }
    }
}

fn err(line: usize, what: impl Into<String>) -> FormatError {
    FormatError { line, what: what.into() }
}

/// `meta.properties`: identity of a log directory.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MetaProperties {
    pub version: Option<i32>,
    pub cluster_id: Option<String>,
    /// `node.id` (KRaft) or `broker.id` (version 0).
    pub node_id: Option<i32>,
    pub directory_id: Option<String>,
}

/// Parses Java `Properties` text as Kafka writes it (`#` comments, `key=value`).
pub fn parse_properties(text: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    // A line ending in an odd number of backslashes continues on the next one (leading blanks
    // of the continuation dropped), as `java.util.Properties.load` reads it.
    let mut logical = Vec::new();
    let mut pending = String::new();
    for raw in text.lines() {
        let part = if pending.is_empty() { raw.trim() } else { raw.trim_start() };
        if pending.is_empty() && (part.starts_with('#') || part.starts_with('!')) {
            continue;
        }
        let trailing = part.len() - part.trim_end_matches('\\').len();
        if trailing % 2 == 1 {
            pending.push_str(&part[..part.len() - 1]);
        } else {
            pending.push_str(part);
            logical.push(std::mem::take(&mut pending));
        }
    }
    if !pending.is_empty() {
        logical.push(pending);
    }
    for line in &logical {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let split = line.find(['=', ':']).map(|i| (line[..i].trim(), line[i + 1..].trim()));
        if let Some((k, v)) = split {
            out.insert(k.to_string(), v.to_string());
        }
    }
    out
}

pub fn parse_meta_properties(text: &str) -> Result<MetaProperties, FormatError> {
    let p = parse_properties(text);
    let int = |k: &str| -> Result<Option<i32>, FormatError> {
        p.get(k).map(|v| v.parse::<i32>().map_err(|_| err(0, format!("{k} is not an integer: {v:?}")))).transpose()
    };
    let node_id = match int("node.id")? {
        Some(n) => Some(n),
        None => int("broker.id")?,
    };
    Ok(MetaProperties {
        version: int("version")?,
        cluster_id: p.get("cluster.id").cloned(),
        node_id,
        directory_id: p.get("directory.id").cloned(),
    })
}

/// A 16-byte Kafka Uuid (topic ids).
pub type Uuid = [u8; 16];

const B64URL: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// Kafka's `Uuid.toString`: base64url without padding (22 characters).
pub fn uuid_to_string(id: &Uuid) -> String {
    let mut out = String::with_capacity(22);
    let mut bits: u32 = 0;
    let mut nbits = 0;
    for &b in id {
        bits = (bits << 8) | u32::from(b);
        nbits += 8;
        while nbits >= 6 {
            nbits -= 6;
            out.push(B64URL[((bits >> nbits) & 63) as usize] as char);
        }
    }
    if nbits > 0 {
        out.push(B64URL[((bits << (6 - nbits)) & 63) as usize] as char);
    }
    out
}

/// Kafka's `Uuid.fromString`.
pub fn uuid_from_string(s: &str) -> Option<Uuid> {
    if s.len() != 22 {
        return None;
    }
    let mut out = [0u8; 16];
    let (mut bits, mut nbits, mut n) = (0u32, 0, 0);
    for c in s.bytes() {
        let v = B64URL.iter().position(|&x| x == c)? as u32;
        bits = (bits << 6) | v;
        nbits += 6;
        if nbits >= 8 {
            nbits -= 8;
            if n == 16 {
                return None;
            }
            out[n] = (bits >> nbits) as u8;
            n += 1;
        }
    }
    // The 4 padding bits of the last character must be zero for a canonical encoding.
    if n != 16 || bits & ((1 << nbits) - 1) != 0 {
        return None;
    }
    Some(out)
}

/// `partition.metadata`: `version: 0` then `topic_id: <22 chars>`.
pub fn parse_partition_metadata(text: &str) -> Result<Uuid, FormatError> {
    let mut version = None;
    let mut topic_id = None;
    for (i, line) in text.lines().enumerate() {
        let Some((k, v)) = line.split_once(':') else {
            return Err(err(i + 1, format!("expected 'key: value', found {line:?}")));
        };
        match k.trim() {
            "version" => {
                let n: i32 = v.trim().parse().map_err(|_| err(i + 1, "version is not an integer"))?;
                if n < 0 {
                    return Err(err(i + 1, "negative version"));
                }
                version = Some(n);
            }
            "topic_id" => {
                let id =
                    uuid_from_string(v.trim()).ok_or_else(|| err(i + 1, format!("bad topic id {:?}", v.trim())))?;
                if id == [0; 16] {
                    return Err(err(i + 1, "topic id is the zero uuid"));
                }
                topic_id = Some(id);
            }
            other => return Err(err(i + 1, format!("unknown key {other:?}"))),
        }
    }
    version.ok_or_else(|| err(0, "no version line"))?;
    topic_id.ok_or_else(|| err(0, "no topic_id line"))
}

/// A stable topic id for a directory written without `partition.metadata` (another tool, an old
/// copy): a hash of the topic name, so every restart and every partition agrees.
pub fn derived_topic_id(topic: &str) -> Uuid {
    let a = crc32c::crc32c(topic.as_bytes());
    let b = crc32c::crc32c_append(a, b"logferry-topic-id");
    let c = crc32c::crc32c_append(b, topic.as_bytes());
    let d = crc32c::crc32c_append(c, &(topic.len() as u64).to_be_bytes());
    let mut id = [0u8; 16];
    id[..4].copy_from_slice(&a.to_be_bytes());
    id[4..8].copy_from_slice(&b.to_be_bytes());
    id[8..12].copy_from_slice(&c.to_be_bytes());
    id[12..].copy_from_slice(&d.to_be_bytes());
    // Version-4-style bits so it never collides with Kafka's reserved ids 0 and 1.
    id[6] = (id[6] & 0x0f) | 0x40;
    id[8] = (id[8] & 0x3f) | 0x80;
    id
}

/// The generic checkpoint file: version line, count line, then `count` entry lines.
fn parse_checkpoint_lines(text: &str) -> Result<Vec<(usize, Vec<&str>)>, FormatError> {
    let mut lines = text.lines().enumerate();
    let Some((_, v)) = lines.next() else { return Ok(Vec::new()) };
    let version: i32 = v.trim().parse().map_err(|_| err(1, format!("bad version {v:?}")))?;
    if version != 0 {
        return Err(err(1, format!("unsupported version {version}")));
    }
    let (_, n) = lines.next().ok_or_else(|| err(2, "missing entry count"))?;
    let count: usize = n.trim().parse().map_err(|_| err(2, format!("bad entry count {n:?}")))?;
    let mut out = Vec::with_capacity(count.min(1 << 16));
    for (i, line) in lines {
        if line.trim().is_empty() {
            continue;
        }
        out.push((i + 1, line.split_whitespace().collect()));
    }
    if out.len() != count {
        return Err(err(0, format!("expected {count} entries, found {}", out.len())));
    }
    Ok(out)
}

/// `replication-offset-checkpoint` and friends: `topic partition offset` entries.
pub fn parse_offset_checkpoint(text: &str) -> Result<BTreeMap<(String, i32), i64>, FormatError> {
    let mut out = BTreeMap::new();
    for (line, f) in parse_checkpoint_lines(text)? {
        let [topic, partition, offset] = f[..] else {
            return Err(err(line, "expected 'topic partition offset'"));
        };
        let partition = partition.parse().map_err(|_| err(line, "bad partition"))?;
        let offset = offset.parse().map_err(|_| err(line, "bad offset"))?;
        out.insert((topic.to_string(), partition), offset);
    }
    Ok(out)
}

/// One `leader-epoch-checkpoint` entry: from `start_offset` on, the leader epoch is `epoch`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EpochEntry {
    pub epoch: i32,
    pub start_offset: i64,
}

pub fn parse_leader_epoch_checkpoint(text: &str) -> Result<Vec<EpochEntry>, FormatError> {
    let mut out: Vec<EpochEntry> = Vec::new();
    for (line, f) in parse_checkpoint_lines(text)? {
        let [epoch, start] = f[..] else {
            return Err(err(line, "expected 'epoch start_offset'"));
        };
        let e = EpochEntry {
            epoch: epoch.parse().map_err(|_| err(line, "bad epoch"))?,
            start_offset: start.parse().map_err(|_| err(line, "bad start offset"))?,
        };
        if let Some(prev) = out.last() {
            if e.epoch <= prev.epoch || e.start_offset < prev.start_offset {
                return Err(err(line, "entries are not ascending"));
            }
        }
        out.push(e);
    }
    Ok(out)
}

/// Parses a partition directory name. `None` for anything that is not a live partition
/// (`-delete`, `-future`, `-stray` renames, the KRaft metadata log, other folders).
pub fn parse_partition_dir(name: &str) -> Option<(String, i32)> {
    if name.ends_with("-delete") || name.ends_with("-future") || name.ends_with("-stray") {
        return None;
    }
    let (topic, partition) = name.rsplit_once('-')?;
    if topic.is_empty() || topic.len() > 249 || topic == "__cluster_metadata" {
        return None;
    }
    if !topic.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'.' || c == b'_' || c == b'-') {
        return None;
    }
    if partition.is_empty() || !partition.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let partition: i32 = partition.parse().ok()?;
    Some((topic.to_string(), partition))
}

/// What a file in a partition directory is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SegmentFileKind {
    Log,
    Index,
    TimeIndex,
    TxnIndex,
    Snapshot,
}

/// Where a segment file is in its life: live, or renamed for deletion, cleaning or swapping.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SegmentFileState {
    Live,
    Deleted,
    Cleaned,
    Swap,
}

/// Parses `<20-digit base offset>.<kind>[.deleted|.cleaned|.swap]`.
pub fn parse_segment_file(name: &str) -> Option<(i64, SegmentFileKind, SegmentFileState)> {
    let (digits, rest) = name.split_at_checked(20)?;
    if !digits.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let base: i64 = digits.parse().ok()?;
    let rest = rest.strip_prefix('.')?;
    let (kind, state) = match rest.split_once('.') {
        None => (rest, SegmentFileState::Live),
        Some((k, "deleted")) => (k, SegmentFileState::Deleted),
        Some((k, "cleaned")) => (k, SegmentFileState::Cleaned),
        Some((k, "swap")) => (k, SegmentFileState::Swap),
        Some(_) => return None,
    };
    let kind = match kind {
        "log" => SegmentFileKind::Log,
        "index" => SegmentFileKind::Index,
        "timeindex" => SegmentFileKind::TimeIndex,
        "txnindex" => SegmentFileKind::TxnIndex,
        "snapshot" => SegmentFileKind::Snapshot,
        _ => return None,
    };
    Some((base, kind, state))
}

/// The 20-digit file name prefix for a base offset.
pub fn segment_file_name(base_offset: i64, suffix: &str) -> String {
    format!("{base_offset:020}.{suffix}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meta_properties_kraft_and_zk() {
        let kraft = "#\n#Tue Nov 25 08:00:00 UTC 2026\nnode.id=1\ndirectory.id=Zx3b\nversion=1\ncluster.id=MkU3OEVBNTcwNTJENDM2Qk\n";
        let m = parse_meta_properties(kraft).unwrap();
        assert_eq!(m.node_id, Some(1));
        assert_eq!(m.version, Some(1));
        assert_eq!(m.cluster_id.as_deref(), Some("MkU3OEVBNTcwNTJENDM2Qk"));
        let zk = "version=0\nbroker.id=7\n";
        assert_eq!(parse_meta_properties(zk).unwrap().node_id, Some(7));
        assert!(parse_meta_properties("node.id=x\n").is_err());
    }

    #[test]
    fn uuid_round_trip_and_golden() {
        // Uuid 1 (the metadata topic id) is AAAAAAAAAAAAAAAAAAAAAQ in Kafka.
        let mut one = [0u8; 16];
        one[15] = 1;
        assert_eq!(uuid_to_string(&one), "AAAAAAAAAAAAAAAAAAAAAQ");
        assert_eq!(uuid_from_string("AAAAAAAAAAAAAAAAAAAAAQ"), Some(one));
        let id = uuid_from_string("MkU3OEVBNTcwNTJENDM2Qg").unwrap();
        assert_eq!(uuid_to_string(&id), "MkU3OEVBNTcwNTJENDM2Qg");
        assert_eq!(uuid_from_string("MkU3OEVBNTcwNTJENDM2Q"), None);
        assert_eq!(uuid_from_string("MkU3OEVBNTcwNTJENDM2Q!"), None);
    }

    #[test]
    fn partition_metadata_exact_text() {
        let id = parse_partition_metadata("version: 0\ntopic_id: 9GuPdq2gQM22rH5W0rSuFQ").unwrap();
        assert_eq!(uuid_to_string(&id), "9GuPdq2gQM22rH5W0rSuFQ");
        assert!(parse_partition_metadata("version: 0\ntopic_id: AAAAAAAAAAAAAAAAAAAAAA").is_err());
        assert!(parse_partition_metadata("version: 0\n").is_err());
        assert!(parse_partition_metadata("garbage").is_err());
    }

    #[test]
    fn derived_ids_are_stable_and_distinct() {
        assert_eq!(derived_topic_id("orders"), derived_topic_id("orders"));
        assert_ne!(derived_topic_id("orders"), derived_topic_id("orders2"));
        assert_ne!(derived_topic_id("a"), [0; 16]);
    }

    #[test]
    fn checkpoints() {
        let t = parse_offset_checkpoint("0\n2\ntopic-a 0 15\nmy-topic 3 0\n").unwrap();
        assert_eq!(t.get(&("topic-a".to_string(), 0)), Some(&15));
        assert_eq!(t.get(&("my-topic".to_string(), 3)), Some(&0));
        assert!(parse_offset_checkpoint("").unwrap().is_empty());
        assert!(parse_offset_checkpoint("0\n3\na 0 1\n").is_err());
        assert!(parse_offset_checkpoint("1\n0\n").is_err());
        let e = parse_leader_epoch_checkpoint("0\n2\n0 0\n3 120\n").unwrap();
        assert_eq!(e, vec![EpochEntry { epoch: 0, start_offset: 0 }, EpochEntry { epoch: 3, start_offset: 120 }]);
        assert!(parse_leader_epoch_checkpoint("0\n2\n3 0\n1 5\n").is_err());
    }

    #[test]
    fn partition_dir_names() {
        assert_eq!(parse_partition_dir("orders-0"), Some(("orders".into(), 0)));
        assert_eq!(parse_partition_dir("my-topic-12"), Some(("my-topic".into(), 12)));
        assert_eq!(parse_partition_dir("__consumer_offsets-49"), Some(("__consumer_offsets".into(), 49)));
        assert_eq!(parse_partition_dir("orders-0.0123456789abcdef0123456789abcdef-delete"), None);
        assert_eq!(parse_partition_dir("orders-0.0123456789abcdef0123456789abcdef-future"), None);
        assert_eq!(parse_partition_dir("orders-0.abc-stray"), None);
        assert_eq!(parse_partition_dir("__cluster_metadata-0"), None);
        assert_eq!(parse_partition_dir("remote-log-index-cache"), None);
        assert_eq!(parse_partition_dir("orders"), None);
        assert_eq!(parse_partition_dir("orders-x"), None);
        assert_eq!(parse_partition_dir("bad topic-0"), None);
    }

    #[test]
    fn segment_file_names() {
        use SegmentFileKind::*;
        use SegmentFileState::*;
        assert_eq!(parse_segment_file("00000000000000001234.log"), Some((1234, Log, Live)));
        assert_eq!(parse_segment_file("00000000000000000000.index.deleted"), Some((0, Index, Deleted)));
        assert_eq!(parse_segment_file("00000000000000000050.timeindex.swap"), Some((50, TimeIndex, Swap)));
        assert_eq!(parse_segment_file("00000000000000000050.txnindex.cleaned"), Some((50, TxnIndex, Cleaned)));
        assert_eq!(parse_segment_file("00000000000000000050.snapshot"), Some((50, Snapshot, Live)));
        assert_eq!(parse_segment_file("0000000000000000050.log"), None);
        assert_eq!(parse_segment_file("leader-epoch-checkpoint"), None);
        assert_eq!(parse_segment_file("00000000000000000050.log.tmp"), None);
        assert_eq!(segment_file_name(1234, "log"), "00000000000000001234.log");
    }
}

/// One producer of a `<offset>.snapshot` file (`ProducerSnapshot.json`, version 1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProducerEntry {
    pub producer_id: i64,
    pub epoch: i16,
    pub last_sequence: i32,
    pub last_offset: i64,
    pub offset_delta: i32,
    pub timestamp: i64,
    pub coordinator_epoch: i32,
    /// First offset of the producer's open transaction, −1 when none is open.
    pub current_txn_first_offset: i64,
}

/// Producer snapshot bytes: `version i16 (1) | crc u32 (CRC-32C of what follows) | count i32 |
/// count × 46-byte entries`.
pub fn parse_producer_snapshot(b: &[u8]) -> Result<Vec<ProducerEntry>, FormatError> {
    const ENTRY: usize = 46;
    if b.len() < 10 {
        return Err(err(0, "shorter than its header"));
    }
    let version = i16::from_be_bytes([b[0], b[1]]);
    if version != 1 {
        return Err(err(0, format!("unsupported version {version}")));
    }
    let crc = u32::from_be_bytes([b[2], b[3], b[4], b[5]]);
    if crc32c::crc32c(&b[6..]) != crc {
        return Err(err(0, "crc mismatch"));
    }
    let count = i32::from_be_bytes([b[6], b[7], b[8], b[9]]);
    if count < 0 || b.len() != 10 + count as usize * ENTRY {
        return Err(err(0, format!("{count} entries do not fill {} bytes", b.len())));
    }
    let i64_at = |e: &[u8], at: usize| i64::from_be_bytes(e[at..at + 8].try_into().unwrap_or([0; 8]));
    let i32_at = |e: &[u8], at: usize| i32::from_be_bytes(e[at..at + 4].try_into().unwrap_or([0; 4]));
    Ok(b[10..]
        .chunks_exact(ENTRY)
        .map(|e| ProducerEntry {
            producer_id: i64_at(e, 0),
            epoch: i16::from_be_bytes([e[8], e[9]]),
            last_sequence: i32_at(e, 10),
            last_offset: i64_at(e, 14),
            offset_delta: i32_at(e, 22),
            timestamp: i64_at(e, 26),
            coordinator_epoch: i32_at(e, 34),
            current_txn_first_offset: i64_at(e, 38),
        })
        .collect())
}

#[cfg(test)]
mod snapshot_tests {
    use super::*;

    #[test]
    fn golden_producer_snapshot() {
        let mut entry = Vec::new();
        entry.extend_from_slice(&42i64.to_be_bytes());
        entry.extend_from_slice(&3i16.to_be_bytes());
        entry.extend_from_slice(&9i32.to_be_bytes());
        entry.extend_from_slice(&100i64.to_be_bytes());
        entry.extend_from_slice(&2i32.to_be_bytes());
        entry.extend_from_slice(&1_700_000_000_000i64.to_be_bytes());
        entry.extend_from_slice(&0i32.to_be_bytes());
        entry.extend_from_slice(&95i64.to_be_bytes());
        let mut body = 1i32.to_be_bytes().to_vec();
        body.extend(entry);
        let mut b = 1i16.to_be_bytes().to_vec();
        b.extend_from_slice(&crc32c::crc32c(&body).to_be_bytes());
        b.extend(body);
        let e = parse_producer_snapshot(&b).unwrap();
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].producer_id, 42);
        assert_eq!(e[0].last_offset, 100);
        assert_eq!(e[0].current_txn_first_offset, 95);
        let n = b.len();
        b[n - 1] ^= 1;
        assert!(parse_producer_snapshot(&b).is_err());
        assert!(parse_producer_snapshot(&b[..5]).is_err());
    }
}
