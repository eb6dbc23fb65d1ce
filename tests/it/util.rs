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
