//! Records inside a magic 2 batch, for tools (`logferry dump --deep`) and record-level lookups.
//!
//! Owns decompression (gzip, snappy with xerial framing, lz4 frame, zstd) and the record varint
//! layout. The serving path never calls into this module: batches go to consumers as stored.
//! Sources: `clients/…/record/DefaultRecord.java`, `docs/kafka-format.md` §2.3.
//!
//! ```text
//! record: length varint | attributes i8 | timestampDelta varlong | offsetDelta varint
//!         | keyLength varint (-1 = null) | key | valueLength varint (-1 = null) | value
//!         | headersCount varint | headers: (keyLength varint | key | valueLength varint | value)*
//! ```

use std::io::Read;

use super::batch::{BatchHeader, Compression, V2_HEADER_SIZE};

/// One record, fields as Kafka's `Record` interface reports them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    pub offset: i64,
    pub timestamp: i64,
    pub sequence: i32,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub headers: Vec<(String, Option<Vec<u8>>)>,
}

/// Why records could not be read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RecordsError {
    /// Legacy (magic 0/1) message sets are not decoded record by record.
    Legacy,
    UnknownCodec(u8),
    Decompress(String),
    /// The record bytes end early or a length is impossible.
    Malformed(&'static str),
    /// More records, or bigger ones, than `decoded_bytes_max` allows.
    TooLarge,
}

impl std::fmt::Display for RecordsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Legacy => write!(f, "legacy message sets are not decoded"),
            Self::UnknownCodec(c) => write!(f, "unknown compression codec {c}"),
            Self::Decompress(e) => write!(f, "decompression failed: {e}"),
            Self::Malformed(what) => write!(f, "malformed record: {what}"),
            Self::TooLarge => write!(f, "decoded records exceed the size limit"),
        }
    }
}

/// Bound on decompressed bytes per batch (a zip bomb must not exhaust memory).
pub const DECODED_BYTES_MAX: usize = 512 << 20;

struct Cursor<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn byte(&mut self) -> Result<u8, RecordsError> {
        let v = *self.b.get(self.at).ok_or(RecordsError::Malformed("truncated"))?;
        self.at += 1;
        Ok(v)
    }

    fn uvarlong(&mut self) -> Result<u64, RecordsError> {
        let mut v: u64 = 0;
        for shift in (0..70).step_by(7) {
            let b = self.byte()?;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(RecordsError::Malformed("varint too long"))
    }

    fn varlong(&mut self) -> Result<i64, RecordsError> {
        let u = self.uvarlong()?;
        Ok((u >> 1) as i64 ^ -((u & 1) as i64))
    }

    fn varint(&mut self) -> Result<i32, RecordsError> {
        i32::try_from(self.varlong()?).map_err(|_| RecordsError::Malformed("varint out of range"))
    }

    fn bytes(&mut self, len: i32) -> Result<Option<&'a [u8]>, RecordsError> {
        if len < 0 {
            return Ok(None);
        }
        let end = self.at.checked_add(len as usize).ok_or(RecordsError::Malformed("length overflow"))?;
        let s = self.b.get(self.at..end).ok_or(RecordsError::Malformed("length past end"))?;
        self.at = end;
        Ok(Some(s))
    }
}

fn read_bounded(mut r: impl Read) -> Result<Vec<u8>, RecordsError> {
    let mut out = Vec::new();
    r.by_ref()
        .take(DECODED_BYTES_MAX as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| RecordsError::Decompress(e.to_string()))?;
    if out.len() > DECODED_BYTES_MAX {
        return Err(RecordsError::TooLarge);
    }
    Ok(out)
}

/// xerial snappy-java stream framing: magic, version, compat, then (u32 length, block)*.
const XERIAL_MAGIC: &[u8] = b"\x82SNAPPY\x00";

fn snappy(data: &[u8]) -> Result<Vec<u8>, RecordsError> {
    let dec = |block: &[u8]| {
        snap::raw::Decoder::new().decompress_vec(block).map_err(|e| RecordsError::Decompress(e.to_string()))
    };
    if !data.starts_with(XERIAL_MAGIC) {
        return dec(data);
    }
    let mut out = Vec::new();
    let mut at = XERIAL_MAGIC.len() + 8;
    while at < data.len() {
        let len_bytes = data.get(at..at + 4).ok_or(RecordsError::Malformed("snappy block length"))?;
        let len = u32::from_be_bytes([len_bytes[0], len_bytes[1], len_bytes[2], len_bytes[3]]) as usize;
        at += 4;
        let block = data.get(at..at + len).ok_or(RecordsError::Malformed("snappy block past end"))?;
        out.extend(dec(block)?);
        if out.len() > DECODED_BYTES_MAX {
            return Err(RecordsError::TooLarge);
        }
        at += len;
    }
    Ok(out)
}

/// The uncompressed record bytes of a whole batch (`batch` is the full batch, header included).
pub fn record_bytes(header: &BatchHeader, batch: &[u8]) -> Result<Vec<u8>, RecordsError> {
    if header.magic < 2 {
        return Err(RecordsError::Legacy);
    }
    let body = batch.get(V2_HEADER_SIZE..).ok_or(RecordsError::Malformed("batch shorter than its header"))?;
    match header.compression() {
        Compression::None => Ok(body.to_vec()),
        Compression::Gzip => read_bounded(flate2::read::GzDecoder::new(body)),
        Compression::Snappy => snappy(body),
        Compression::Lz4 => read_bounded(lz4_flex::frame::FrameDecoder::new(body)),
        Compression::Zstd => {
            let d = ruzstd::StreamingDecoder::new(body).map_err(|e| RecordsError::Decompress(e.to_string()))?;
            read_bounded(d)
        }
        Compression::Unknown(c) => Err(RecordsError::UnknownCodec(c)),
    }
}

/// Decodes every record of a magic 2 batch.
pub fn decode(header: &BatchHeader, batch: &[u8]) -> Result<Vec<Record>, RecordsError> {
    let bytes = record_bytes(header, batch)?;
    let mut c = Cursor { b: &bytes, at: 0 };
    let count = header.records_count.max(0) as usize;
    let mut out = Vec::with_capacity(count.min(1 << 16));
    for _ in 0..count {
        let length = c.varint()?;
        if length < 0 {
            return Err(RecordsError::Malformed("negative record length"));
        }
        let start = c.at;
        let _attributes = c.byte()?;
        let ts_delta = c.varlong()?;
        let offset_delta = c.varint()?;
        let key_len = c.varint()?;
        let key = c.bytes(key_len)?.map(<[u8]>::to_vec);
        let value_len = c.varint()?;
        let value = c.bytes(value_len)?.map(<[u8]>::to_vec);
        let header_count = c.varint()?;
        if header_count < 0 {
            return Err(RecordsError::Malformed("negative header count"));
        }
        let mut headers = Vec::with_capacity((header_count as usize).min(1024));
        for _ in 0..header_count {
            let klen = c.varint()?;
            if klen < 0 {
                return Err(RecordsError::Malformed("null header key"));
            }
            let k = c.bytes(klen)?.unwrap_or_default();
            let vlen = c.varint()?;
            let v = c.bytes(vlen)?.map(<[u8]>::to_vec);
            headers.push((String::from_utf8_lossy(k).into_owned(), v));
        }
        if c.at - start != length as usize {
            return Err(RecordsError::Malformed("record length does not match its fields"));
        }
        let timestamp =
            if header.log_append_time() { header.max_timestamp } else { header.base_timestamp.wrapping_add(ts_delta) };
        let sequence = if header.base_sequence < 0 {
            -1
        } else {
            let s = i64::from(header.base_sequence) + i64::from(offset_delta);
            if s > i64::from(i32::MAX) {
                (s - i64::from(i32::MAX) - 1) as i32
            } else {
                s as i32
            }
        };
        out.push(Record {
            offset: header.base_offset + i64::from(offset_delta),
            timestamp,
            sequence,
            key,
            value,
            headers,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::batch::{parse_header, tests::v2_batch, HeaderParse};

    fn varint(v: i64, out: &mut Vec<u8>) {
        let mut u = ((v << 1) ^ (v >> 63)) as u64;
        loop {
            let b = (u & 0x7f) as u8;
            u >>= 7;
            if u == 0 {
                out.push(b);
                break;
            }
            out.push(b | 0x80);
        }
    }

    pub fn record(
        ts_delta: i64,
        offset_delta: i32,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: &[(&str, Option<&[u8]>)],
    ) -> Vec<u8> {
        let mut body = vec![0u8];
        varint(ts_delta, &mut body);
        varint(i64::from(offset_delta), &mut body);
        for part in [key, value] {
            match part {
                Some(k) => {
                    varint(k.len() as i64, &mut body);
                    body.extend_from_slice(k);
                }
                None => varint(-1, &mut body),
            }
        }
        varint(headers.len() as i64, &mut body);
        for (k, v) in headers {
            varint(k.len() as i64, &mut body);
            body.extend_from_slice(k.as_bytes());
            match v {
                Some(v) => {
                    varint(v.len() as i64, &mut body);
                    body.extend_from_slice(v);
                }
                None => varint(-1, &mut body),
            }
        }
        let mut out = Vec::new();
        varint(body.len() as i64, &mut out);
        out.extend(body);
        out
    }

    #[test]
    fn decodes_uncompressed_records() {
        let mut recs = record(0, 0, Some(b"k"), Some(b"v1"), &[("h", Some(b"x")), ("n", None)]);
        recs.extend(record(5, 1, None, None, &[]));
        let b = v2_batch(100, 1, 0, &recs);
        let HeaderParse::Complete(h) = parse_header(&b, i32::MAX) else { panic!() };
        let r = decode(&h, &b).unwrap();
        assert_eq!(r.len(), 2);
        assert_eq!(r[0].offset, 100);
        assert_eq!(r[0].timestamp, 1_700_000_000_000);
        assert_eq!(r[0].key.as_deref(), Some(&b"k"[..]));
        assert_eq!(r[0].headers, vec![("h".to_string(), Some(b"x".to_vec())), ("n".to_string(), None)]);
        assert_eq!(r[1].offset, 101);
        assert_eq!(r[1].timestamp, 1_700_000_000_005);
        assert_eq!(r[1].key, None);
        assert_eq!(r[1].value, None);
        assert_eq!(r[1].sequence, -1);
    }

    #[test]
    fn gzip_and_lz4_batches_decode() {
        use std::io::Write;
        let recs = record(0, 0, Some(b"key"), Some(b"value"), &[]);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(&recs).unwrap();
        let b = v2_batch(0, 0, 1, &gz.finish().unwrap());
        let HeaderParse::Complete(h) = parse_header(&b, i32::MAX) else { panic!() };
        assert_eq!(decode(&h, &b).unwrap()[0].value.as_deref(), Some(&b"value"[..]));
        let mut lz = lz4_flex::frame::FrameEncoder::new(Vec::new());
        lz.write_all(&recs).unwrap();
        let b = v2_batch(0, 0, 3, &lz.finish().unwrap());
        let HeaderParse::Complete(h) = parse_header(&b, i32::MAX) else { panic!() };
        assert_eq!(decode(&h, &b).unwrap()[0].key.as_deref(), Some(&b"key"[..]));
    }

    #[test]
    fn xerial_snappy_framing() {
        let recs = record(0, 0, None, Some(b"snappy!"), &[]);
        let block = snap::raw::Encoder::new().compress_vec(&recs).unwrap();
        let mut framed = XERIAL_MAGIC.to_vec();
        framed.extend_from_slice(&1i32.to_be_bytes());
        framed.extend_from_slice(&1i32.to_be_bytes());
        framed.extend_from_slice(&(block.len() as u32).to_be_bytes());
        framed.extend_from_slice(&block);
        let b = v2_batch(0, 0, 2, &framed);
        let HeaderParse::Complete(h) = parse_header(&b, i32::MAX) else { panic!() };
        assert_eq!(decode(&h, &b).unwrap()[0].value.as_deref(), Some(&b"snappy!"[..]));
    }

    #[test]
    fn malformed_records_are_errors_not_panics() {
        let mut recs = record(0, 0, Some(b"k"), Some(b"v"), &[]);
        recs.truncate(recs.len() - 2);
        let b = v2_batch(0, 0, 0, &recs);
        let HeaderParse::Complete(h) = parse_header(&b, i32::MAX) else { panic!() };
        assert!(decode(&h, &b).is_err());
        let b = v2_batch(0, 0, 1, b"not gzip at all");
        let HeaderParse::Complete(h) = parse_header(&b, i32::MAX) else { panic!() };
        assert!(matches!(decode(&h, &b), Err(RecordsError::Decompress(_))));
        let b = v2_batch(0, 0, 6, b"");
        let HeaderParse::Complete(h) = parse_header(&b, i32::MAX) else { panic!() };
        assert_eq!(decode(&h, &b), Err(RecordsError::UnknownCodec(6)));
    }
}
