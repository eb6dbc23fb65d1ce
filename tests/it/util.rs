//! Helpers shared by the integration tests: building magic 2 batches with real records.

/// ZigZag varint as Kafka's `ByteUtils.writeVarlong`.
pub fn varint(v: i64, out: &mut Vec<u8>) {
    let mut u = ((v << 1) ^ (v >> 63)) as u64;
    loop {
        let b = (u & 0x7f) as u8;
        u >>= 7;
        if u == 0 {
            out.push(b);
            return;
        }
        out.push(b | 0x80);
    }
}

/// A magic 2, uncompressed batch of `count` records with `payload_len`-byte values, correct CRC.
pub fn batch(base_offset: i64, count: i32, timestamp: i64, payload_len: usize, fill: u8) -> Vec<u8> {
    let mut records = Vec::new();
    for i in 0..count {
        let mut body = vec![0u8];
        varint(i64::from(i), &mut body); // timestamp delta
        varint(i64::from(i), &mut body); // offset delta
        varint(-1, &mut body); // null key
        varint(payload_len as i64, &mut body);
        body.extend(std::iter::repeat_n(fill, payload_len));
        varint(0, &mut body);
        varint(body.len() as i64, &mut records);
        records.extend(body);
    }
    frame(base_offset, count, timestamp, &records)
}

/// The 61-byte magic 2 header (no producer, attributes 0) around `records`, with its CRC.
fn frame(base_offset: i64, count: i32, timestamp: i64, records: &[u8]) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(&base_offset.to_be_bytes());
    b.extend_from_slice(&((49 + records.len()) as i32).to_be_bytes());
    b.extend_from_slice(&0i32.to_be_bytes());
    b.push(2);
    b.extend_from_slice(&[0; 4]);
    b.extend_from_slice(&0i16.to_be_bytes());
    b.extend_from_slice(&(count - 1).to_be_bytes());
    b.extend_from_slice(&timestamp.to_be_bytes());
    b.extend_from_slice(&(timestamp + i64::from(count) - 1).to_be_bytes());
    b.extend_from_slice(&(-1i64).to_be_bytes());
    b.extend_from_slice(&(-1i16).to_be_bytes());
    b.extend_from_slice(&(-1i32).to_be_bytes());
    b.extend_from_slice(&count.to_be_bytes());
    b.extend(records);
    let crc = crc32c::crc32c(&b[21..]);
    b[17..21].copy_from_slice(&crc.to_be_bytes());
    b
}

/// Patches a batch built by [`batch`] into a transactional one of `producer_id` (attributes,
/// producer fields, CRC).
fn make_transactional(mut b: Vec<u8>, producer_id: i64, control: bool) -> Vec<u8> {
    let attributes: i16 = if control { 0x30 } else { 0x10 };
    b[21..23].copy_from_slice(&attributes.to_be_bytes());
    b[43..51].copy_from_slice(&producer_id.to_be_bytes());
    b[51..53].copy_from_slice(&0i16.to_be_bytes());
    if !control {
        b[53..57].copy_from_slice(&0i32.to_be_bytes());
    }
    let crc = crc32c::crc32c(&b[21..]);
    b[17..21].copy_from_slice(&crc.to_be_bytes());
    b
}

/// A transactional data batch of `count` records of `producer_id`.
pub fn txn_batch(base_offset: i64, count: i32, producer_id: i64) -> Vec<u8> {
    make_transactional(batch(base_offset, count, 1_700_000_000_000 + base_offset, 8, b't'), producer_id, false)
}

/// An end-transaction marker (a control batch of one record) as the broker writes it:
/// key `version i16 = 0 · type i16 (0 abort, 1 commit)`, value `version i16 = 0 ·
/// coordinator epoch i32`.
pub fn marker(base_offset: i64, producer_id: i64, commit: bool) -> Vec<u8> {
    let mut body = vec![0u8]; // attributes
    varint(0, &mut body); // timestamp delta
    varint(0, &mut body); // offset delta
    varint(4, &mut body);
    body.extend_from_slice(&0i16.to_be_bytes());
    body.extend_from_slice(&i16::from(commit).to_be_bytes());
    varint(6, &mut body);
    body.extend_from_slice(&0i16.to_be_bytes());
    body.extend_from_slice(&3i32.to_be_bytes());
    varint(0, &mut body); // headers
    let mut records = Vec::new();
    varint(body.len() as i64, &mut records);
    records.extend(body);
    make_transactional(frame(base_offset, 1, 1_700_000_000_000 + base_offset, &records), producer_id, true)
}

/// A `<offset>.snapshot` file (version 1) listing `open` producers as (id, first offset of the
/// open transaction).
pub fn producer_snapshot(open: &[(i64, i64)]) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&(open.len() as i32).to_be_bytes());
    for &(pid, first) in open {
        body.extend_from_slice(&pid.to_be_bytes());
        body.extend_from_slice(&0i16.to_be_bytes()); // epoch
        body.extend_from_slice(&0i32.to_be_bytes()); // last sequence
        body.extend_from_slice(&first.to_be_bytes()); // last offset
        body.extend_from_slice(&0i32.to_be_bytes()); // offset delta
        body.extend_from_slice(&0i64.to_be_bytes()); // timestamp
        body.extend_from_slice(&0i32.to_be_bytes()); // coordinator epoch
        body.extend_from_slice(&first.to_be_bytes());
    }
    let mut b = Vec::new();
    b.extend_from_slice(&1i16.to_be_bytes());
    b.extend_from_slice(&crc32c::crc32c(&body).to_be_bytes());
    b.extend(body);
    b
}

/// A `.txnindex` entry: version 0, producer id, first offset, last offset, last stable offset.
pub fn txn_index_entry(producer_id: i64, first: i64, last: i64) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(&0i16.to_be_bytes());
    b.extend_from_slice(&producer_id.to_be_bytes());
    b.extend_from_slice(&first.to_be_bytes());
    b.extend_from_slice(&last.to_be_bytes());
    b.extend_from_slice(&first.to_be_bytes());
    b
}
