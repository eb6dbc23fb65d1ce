//! Record batch headers: the one place that turns the first bytes of a batch into facts.
//!
//! Owns parsing of magic 2 batch headers (and recognition of legacy magic 0/1 message entries),
//! the size and sanity checks that decide whether the bytes at a position can be a batch at all,
//! and the CRC checks (CRC-32C for magic 2, CRC-32 for magic 0/1). Pure functions over byte
//! slices: no files, no clock. Sources: `clients/…/record/DefaultRecordBatch.java`,
//! `LegacyRecord.java`, `Records.java` (see `docs/kafka-format.md` §2).
//!
//! Magic 2 header, 61 bytes, big-endian:
//!
//! ```text
//!  0        8       12         16   17      21    23          27            35           43          51     53        57       61
//!  +--------+--------+----------+----+-------+-----+-----------+-------------+------------+-----------+------+---------+--------+----
//!  |base    |batch   |partition |magic| crc  |attr |last offset|base         |max         |producer   |prod. |base     |records | records…
//!  |offset  |length  |leader ep.| =2 |(u32) |(i16)|delta (i32)|timestamp    |timestamp   |id (i64)   |epoch |sequence |count   |
//!  |(i64)   |(i32)   |(i32)     |(i8)|       |     |           |(i64)        |(i64)       |           |(i16) |(i32)    |(i32)   |
//!  +--------+--------+----------+----+-------+-----+-----------+-------------+------------+-----------+------+---------+--------+----
//!  batch size = 12 + batch length          CRC-32C covers [21, batch end)
//! ```
//!
//! Legacy entry (magic 0/1): offset i64 · size i32 · crc u32 (CRC-32 over [16, end)) · magic i8 ·
//! attributes i8 · timestamp i64 (magic 1 only) · key bytes · value bytes. A compressed legacy
//! entry wraps an inner message set; its offset field is the offset of the *last* inner message.

/// Bytes before the batch length field is done: base offset (8) + length (4).
pub const LOG_OVERHEAD: usize = 12;
/// Bytes needed to read the magic byte, which says how to read the rest.
pub const HEADER_SIZE_UP_TO_MAGIC: usize = 17;
/// Full magic 2 header.
pub const V2_HEADER_SIZE: usize = 61;
/// Smallest legal `batch length` of a magic 2 batch (a header with no records).
pub const V2_BATCH_LENGTH_MIN: i32 = (V2_HEADER_SIZE - LOG_OVERHEAD) as i32;
/// Smallest legal size field of a legacy entry (magic 0 with empty key and value).
pub const LEGACY_V0_SIZE_MIN: i32 = 14;
/// Smallest legal size field of a magic 1 entry.
pub const LEGACY_V1_SIZE_MIN: i32 = 22;
/// Where the CRC-32C of a magic 2 batch starts (the attributes field).
const V2_CRC_START: usize = 21;

/// Compression codec from attribute bits 0–2.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Snappy,
    Lz4,
    Zstd,
    /// Codec ids 5–7 are not defined by Kafka; such a batch is reported, never decoded.
    Unknown(u8),
}

impl Compression {
    pub fn from_id(id: u8) -> Self {
        match id {
            0 => Self::None,
            1 => Self::Gzip,
            2 => Self::Snappy,
            3 => Self::Lz4,
            4 => Self::Zstd,
            other => Self::Unknown(other),
        }
    }

    /// The name `kafka-dump-log.sh` prints (`CompressionType.name`).
    pub fn name(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Gzip => "gzip",
            Self::Snappy => "snappy",
            Self::Lz4 => "lz4",
            Self::Zstd => "zstd",
            Self::Unknown(_) => "unknown",
        }
    }
}

/// The parsed header of one batch (magic 2) or one legacy entry (magic 0/1).
///
/// For legacy entries the fields that do not exist are filled as Kafka's own
/// `AbstractLegacyRecordBatch` reports them: no producer (−1), leader epoch −1, and
/// `base_offset == last_offset` only for uncompressed entries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchHeader {
    pub base_offset: i64,
    pub batch_length: i32,
    pub partition_leader_epoch: i32,
    pub magic: u8,
    pub crc: u32,
    pub attributes: i16,
    pub last_offset_delta: i32,
    pub base_timestamp: i64,
    pub max_timestamp: i64,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    pub records_count: i32,
}

impl BatchHeader {
    /// Total bytes of the batch on disk, prefix included.
    pub fn size(&self) -> u64 {
        LOG_OVERHEAD as u64 + self.batch_length as u64
    }

    pub fn last_offset(&self) -> i64 {
        self.base_offset + i64::from(self.last_offset_delta)
    }

    pub fn next_offset(&self) -> i64 {
        self.last_offset() + 1
    }

    pub fn compression(&self) -> Compression {
        Compression::from_id((self.attributes & 0x07) as u8)
    }

    /// Timestamp type bit: true for LOG_APPEND_TIME.
    pub fn log_append_time(&self) -> bool {
        self.attributes & 0x08 != 0
    }

    pub fn is_transactional(&self) -> bool {
        self.magic >= 2 && self.attributes & 0x10 != 0
    }

    pub fn is_control(&self) -> bool {
        self.magic >= 2 && self.attributes & 0x20 != 0
    }

    pub fn has_delete_horizon(&self) -> bool {
        self.magic >= 2 && self.attributes & 0x40 != 0
    }

    /// Last sequence number, as `DefaultRecordBatch.lastSequence` computes it (wrapping at i32::MAX).
    pub fn last_sequence(&self) -> i32 {
        if self.base_sequence < 0 {
            return -1;
        }
        let last = i64::from(self.base_sequence) + i64::from(self.last_offset_delta);
        if last > i64::from(i32::MAX) {
            (last - i64::from(i32::MAX) - 1) as i32
        } else {
            last as i32
        }
    }
}

/// Why the bytes at a position are not a usable batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BatchError {
    /// The length field is below the minimum for its magic (a zero-filled, preallocated tail
    /// shows up here with length 0).
    LengthTooSmall { length: i32, min: i32 },
    /// The length field is above what the caller allows (`batch_bytes_max`).
    LengthTooLarge { length: i32, max: i32 },
    /// Magic byte other than 0, 1 or 2.
    UnknownMagic(i8),
    /// The stored CRC does not match the bytes.
    CrcMismatch { stored: u32, computed: u32 },
    /// `last_offset_delta` negative, or offsets that overflow i64.
    BadOffsets,
}

impl std::fmt::Display for BatchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {
            Self::LengthTooSmall { length, min } => {
                write!(f, "batch length {length} is below the minimum {min}")
            }
            Self::LengthTooLarge { length, max } => {
                write!(f, "batch length {length} is above the maximum {max}")
            }
            Self::UnknownMagic(m) => write!(f, "unknown magic {m}"),
            Self::CrcMismatch { stored, computed } => {
                write!(f, "crc mismatch: stored {stored}, computed {computed}")
            }
            Self::BadOffsets => write!(f, "offsets out of range"),
        }
    }
}

/// Result of looking at the first bytes of a batch. "Needs more bytes" is a value, not an error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeaderParse {
    Complete(BatchHeader),
    /// At least this many bytes (from the batch start) are needed to decide.
    Incomplete(usize),
    Invalid(BatchError),
}

fn be_i64(b: &[u8], at: usize) -> i64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    i64::from_be_bytes(a)
}

fn be_i32(b: &[u8], at: usize) -> i32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    i32::from_be_bytes(a)
}

fn be_u32(b: &[u8], at: usize) -> u32 {
    be_i32(b, at) as u32
}

fn be_i16(b: &[u8], at: usize) -> i16 {
    i16::from_be_bytes([b[at], b[at + 1]])
}

/// Parses the header of the batch that starts at `buf[0]`.
///
/// `batch_bytes_max` bounds the length field (a corrupt length must not make a reader allocate
/// gigabytes). Only the header is checked here; the CRC needs the whole batch ([`check_crc`]).
pub fn parse_header(buf: &[u8], batch_bytes_max: i32) -> HeaderParse {
    if buf.len() < HEADER_SIZE_UP_TO_MAGIC {
        return HeaderParse::Incomplete(HEADER_SIZE_UP_TO_MAGIC);
    }
    let base_offset = be_i64(buf, 0);
    let batch_length = be_i32(buf, 8);
    let magic = buf[16] as i8;
    let min = match magic {
        0 => LEGACY_V0_SIZE_MIN,
        1 => LEGACY_V1_SIZE_MIN,
        2 => V2_BATCH_LENGTH_MIN,
        // A zero-filled tail has magic 0 and length 0; it is caught by the length check above.
        other => {
            if batch_length < LEGACY_V0_SIZE_MIN {
                return HeaderParse::Invalid(BatchError::LengthTooSmall {
                    length: batch_length,
                    min: LEGACY_V0_SIZE_MIN,
                });
            }
            return HeaderParse::Invalid(BatchError::UnknownMagic(other));
        }
    };
    if batch_length < min {
        return HeaderParse::Invalid(BatchError::LengthTooSmall { length: batch_length, min });
    }
    if batch_length > batch_bytes_max {
        return HeaderParse::Invalid(BatchError::LengthTooLarge { length: batch_length, max: batch_bytes_max });
    }
    if base_offset < 0 {
        return HeaderParse::Invalid(BatchError::BadOffsets);
    }
    if magic < 2 {
        return parse_legacy(buf, base_offset, batch_length, magic as u8);
    }
    if buf.len() < V2_HEADER_SIZE {
        return HeaderParse::Incomplete(V2_HEADER_SIZE);
    }
    let header = BatchHeader {
        base_offset,
        batch_length,
        partition_leader_epoch: be_i32(buf, 12),
        magic: 2,
        crc: be_u32(buf, 17),
        attributes: be_i16(buf, 21),
        last_offset_delta: be_i32(buf, 23),
        base_timestamp: be_i64(buf, 27),
        max_timestamp: be_i64(buf, 35),
        producer_id: be_i64(buf, 43),
        producer_epoch: be_i16(buf, 51),
        base_sequence: be_i32(buf, 53),
        records_count: be_i32(buf, 57),
    };
    if header.last_offset_delta < 0 || base_offset.checked_add(i64::from(header.last_offset_delta)).is_none() {
        return HeaderParse::Invalid(BatchError::BadOffsets);
    }
    HeaderParse::Complete(header)
}

fn parse_legacy(buf: &[u8], offset: i64, size: i32, magic: u8) -> HeaderParse {
    // offset(8) size(4) crc(4) magic(1) attributes(1) [timestamp(8) for magic 1]
    let need = if magic == 1 { 26 } else { 18 };
    if buf.len() < need {
        return HeaderParse::Incomplete(need);
    }
    let attributes = i16::from(buf[17] as i8);
    let timestamp = if magic == 1 { be_i64(buf, 18) } else { -1 };
    let compressed = attributes & 0x07 != 0;
    HeaderParse::Complete(BatchHeader {
        // A compressed wrapper's offset field is its last inner offset; without decompressing,
        // the first inner offset is unknown, so the header reports the last one for both.
        base_offset: offset,
        batch_length: size,
        partition_leader_epoch: -1,
        magic,
        crc: be_u32(buf, 12),
        attributes: if compressed { attributes } else { attributes & !0x07 },
        last_offset_delta: 0,
        base_timestamp: timestamp,
        max_timestamp: timestamp,
        producer_id: -1,
        producer_epoch: -1,
        base_sequence: -1,
        records_count: if compressed { -1 } else { 1 },
    })
}

/// The CRC that the bytes of a whole batch actually have (CRC-32C over `[21, end)` for magic 2,
/// CRC-32 over `[16, end)` for magic 0/1).
pub fn compute_crc(header: &BatchHeader, batch: &[u8]) -> u32 {
    debug_assert_eq!(batch.len() as u64, header.size());
    if header.magic >= 2 {
        crc32c::crc32c(&batch[V2_CRC_START..])
    } else {
        crc32fast::hash(&batch[16..])
    }
}

/// Checks the CRC of a whole batch. `batch` must be exactly `header.size()` bytes.
pub fn check_crc(header: &BatchHeader, batch: &[u8]) -> Result<(), BatchError> {
    if batch.len() as u64 != header.size() {
        return Err(BatchError::LengthTooSmall { length: batch.len() as i32, min: header.size() as i32 });
    }
    let computed = compute_crc(header, batch);
    if computed == header.crc {
        Ok(())
    } else {
        Err(BatchError::CrcMismatch { stored: header.crc, computed })
    }
}

/// The type of a control record (`ControlRecordType`), from the key of a control batch's
/// first record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ControlType {
    Abort,
    Commit,
    /// LEADER_CHANGE, SNAPSHOT_HEADER and the other non-transaction control records.
    Other(i16),
}

/// Bytes after the batch header that always hold a control record's type: length (≤ 5),
/// attributes (1), timestamp delta (≤ 10), offset delta (≤ 5), key length (≤ 5), key (4).
pub const CONTROL_KEY_PROBE_BYTES: usize = 30;

/// Reads the control type from the bytes that follow a control batch's 61-byte header.
///
/// Control batches are never compressed (the broker writes them itself), so the first record
/// is plain: `length varint | attributes i8 | timestampDelta varlong | offsetDelta varint |
/// keyLength varint | key: version i16 · type i16`. `None` when the bytes are not that shape.
pub fn control_type(records: &[u8]) -> Option<ControlType> {
    let mut at = 0usize;
    let varlong = |b: &[u8], at: &mut usize| -> Option<i64> {
        let mut v: u64 = 0;
        for shift in (0..70).step_by(7) {
            let byte = *b.get(*at)?;
            *at += 1;
            v |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Some(((v >> 1) as i64) ^ -((v & 1) as i64));
            }
        }
        None
    };
    let _length = varlong(records, &mut at)?;
    at += 1; // attributes
    let _timestamp_delta = varlong(records, &mut at)?;
    let _offset_delta = varlong(records, &mut at)?;
    let key_len = varlong(records, &mut at)?;
    if key_len < 4 {
        return None;
    }
    let key = records.get(at..at + 4)?;
    Some(match i16::from_be_bytes([key[2], key[3]]) {
        0 => ControlType::Abort,
        1 => ControlType::Commit,
        other => ControlType::Other(other),
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Builds a magic 2 batch with `records` as opaque record bytes and a correct CRC.
    pub fn v2_batch(base_offset: i64, last_offset_delta: i32, attributes: i16, records: &[u8]) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(&base_offset.to_be_bytes());
        let length = (V2_HEADER_SIZE - LOG_OVERHEAD + records.len()) as i32;
        b.extend_from_slice(&length.to_be_bytes());
        b.extend_from_slice(&7i32.to_be_bytes()); // partition leader epoch
        b.push(2);
        b.extend_from_slice(&[0; 4]); // crc, filled below
        b.extend_from_slice(&attributes.to_be_bytes());
        b.extend_from_slice(&last_offset_delta.to_be_bytes());
        b.extend_from_slice(&1_700_000_000_000i64.to_be_bytes());
        b.extend_from_slice(&1_700_000_000_500i64.to_be_bytes());
        b.extend_from_slice(&(-1i64).to_be_bytes());
        b.extend_from_slice(&(-1i16).to_be_bytes());
        b.extend_from_slice(&(-1i32).to_be_bytes());
        b.extend_from_slice(&(last_offset_delta + 1).to_be_bytes());
        b.extend_from_slice(records);
        let crc = crc32c::crc32c(&b[21..]);
        b[17..21].copy_from_slice(&crc.to_be_bytes());
        b
    }

    fn unhex(s: &str) -> Vec<u8> {
        (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
    }

    #[test]
    fn golden_control_markers_from_a_real_broker() {
        // The two control batches of tests/fixtures/logdir/txn-0/00000000000000000005.log
        // (Kafka 4.1): an ABORT at offset 8 (the .txnindex beside it lists (4, 5, 8)) and a
        // COMMIT at offset 14.
        let abort = unhex("00000000000000080000004200000000024ad4d1d8003000000000000001a211c682cf000001a211c682cf00000000000000040002ffffffff000000012000000008000000000c00000000000000");
        let commit = unhex("000000000000000e00000042000000000262af8b74003000000000000001a211c683db000001a211c683db00000000000000040003ffffffff000000012000000008000000010c00000000000000");
        for (bytes, want) in [(&abort, ControlType::Abort), (&commit, ControlType::Commit)] {
            let HeaderParse::Complete(h) = parse_header(bytes, i32::MAX) else { panic!("not parsed") };
            assert!(h.is_control() && h.is_transactional());
            assert_eq!(check_crc(&h, bytes), Ok(()));
            assert_eq!(h.producer_id, 4);
            assert_eq!(control_type(&bytes[V2_HEADER_SIZE..]), Some(want));
        }
        // Truncated or shapeless record bytes are not a type.
        assert_eq!(control_type(&abort[V2_HEADER_SIZE..V2_HEADER_SIZE + 5]), None);
        assert_eq!(control_type(&[0xff; 12]), None);
        assert_eq!(control_type(&[0x20, 0, 0, 0, 0]), None, "empty key");
        assert_eq!(control_type(&[0x20, 0, 0, 0, 8, 0, 0, 0, 2]), Some(ControlType::Other(2)));
    }

    #[test]
    fn golden_v2_header() {
        // Proves every header field is read from its documented offset.
        let b = v2_batch(1000, 4, 0x0013, b"abc");
        let HeaderParse::Complete(h) = parse_header(&b, i32::MAX) else { panic!("not parsed") };
        assert_eq!(h.base_offset, 1000);
        assert_eq!(h.batch_length, 61 - 12 + 3);
        assert_eq!(h.size(), 64);
        assert_eq!(h.partition_leader_epoch, 7);
        assert_eq!(h.magic, 2);
        assert_eq!(h.last_offset(), 1004);
        assert_eq!(h.next_offset(), 1005);
        assert_eq!(h.compression(), Compression::Lz4);
        assert!(h.is_transactional());
        assert!(!h.is_control());
        assert_eq!(h.base_timestamp, 1_700_000_000_000);
        assert_eq!(h.max_timestamp, 1_700_000_000_500);
        assert_eq!(h.producer_id, -1);
        assert_eq!(h.records_count, 5);
        assert_eq!(check_crc(&h, &b), Ok(()));
    }

    #[test]
    fn crc_covers_attributes_to_end_but_not_leader_epoch() {
        // Flipping the leader epoch keeps the CRC valid; flipping a record byte breaks it.
        let mut b = v2_batch(0, 0, 0, b"xyz");
        b[12] ^= 0xff;
        let HeaderParse::Complete(h) = parse_header(&b, i32::MAX) else { panic!() };
        assert_eq!(check_crc(&h, &b), Ok(()));
        let last = b.len() - 1;
        b[last] ^= 1;
        assert!(matches!(check_crc(&h, &b), Err(BatchError::CrcMismatch { .. })));
    }

    #[test]
    fn incomplete_until_enough_bytes() {
        let b = v2_batch(5, 0, 0, b"");
        assert_eq!(parse_header(&b[..10], i32::MAX), HeaderParse::Incomplete(17));
        assert_eq!(parse_header(&b[..40], i32::MAX), HeaderParse::Incomplete(61));
        assert!(matches!(parse_header(&b, i32::MAX), HeaderParse::Complete(_)));
    }

    #[test]
    fn zero_fill_negative_and_huge_lengths_are_invalid() {
        let zeros = [0u8; 64];
        assert_eq!(
            parse_header(&zeros, i32::MAX),
            HeaderParse::Invalid(BatchError::LengthTooSmall { length: 0, min: 14 })
        );
        let mut b = v2_batch(5, 0, 0, b"");
        b[8..12].copy_from_slice(&(-5i32).to_be_bytes());
        assert!(matches!(parse_header(&b, i32::MAX), HeaderParse::Invalid(BatchError::LengthTooSmall { .. })));
        b[8..12].copy_from_slice(&(1i32 << 30).to_be_bytes());
        assert!(matches!(parse_header(&b, 1 << 20), HeaderParse::Invalid(BatchError::LengthTooLarge { .. })));
        let mut b = v2_batch(5, 0, 0, b"");
        b[16] = 9;
        assert_eq!(parse_header(&b, i32::MAX), HeaderParse::Invalid(BatchError::UnknownMagic(9)));
        let mut b = v2_batch(5, 0, 0, b"");
        b[23..27].copy_from_slice(&(-1i32).to_be_bytes());
        assert_eq!(parse_header(&b, i32::MAX), HeaderParse::Invalid(BatchError::BadOffsets));
    }

    #[test]
    fn legacy_v1_entry_with_crc32() {
        // magic 1, uncompressed, key null, value "hi": crc32 over magic..end.
        let mut body = vec![1u8, 0];
        body.extend_from_slice(&1234i64.to_be_bytes());
        body.extend_from_slice(&(-1i32).to_be_bytes());
        body.extend_from_slice(&2i32.to_be_bytes());
        body.extend_from_slice(b"hi");
        let crc = crc32fast::hash(&body);
        let mut b = Vec::new();
        b.extend_from_slice(&42i64.to_be_bytes());
        b.extend_from_slice(&((4 + body.len()) as i32).to_be_bytes());
        b.extend_from_slice(&crc.to_be_bytes());
        b.extend_from_slice(&body);
        let HeaderParse::Complete(h) = parse_header(&b, i32::MAX) else { panic!() };
        assert_eq!(h.magic, 1);
        assert_eq!(h.base_offset, 42);
        assert_eq!(h.last_offset(), 42);
        assert_eq!(h.base_timestamp, 1234);
        assert_eq!(h.size() as usize, b.len());
        assert_eq!(check_crc(&h, &b), Ok(()));
        let n = b.len();
        b[n - 1] = b'x';
        assert!(check_crc(&h, &b).is_err());
    }

    #[test]
    fn last_sequence_wraps() {
        let mut h = match parse_header(&v2_batch(0, 3, 0, b""), i32::MAX) {
            HeaderParse::Complete(h) => h,
            _ => panic!(),
        };
        h.base_sequence = i32::MAX - 1;
        assert_eq!(h.last_sequence(), 1);
        h.base_sequence = -1;
        assert_eq!(h.last_sequence(), -1);
    }
}
