//! `logferry dump`: prints segment and index files in the exact text format of Kafka's
//! `kafka-dump-log.sh --files` (`kafka.tools.DumpLogSegments`), so the two can be diffed.
//!
//! Owns the text formats only; parsing is the log model's. Like the Kafka tool, problems found
//! while printing (index entries that do not point at the batch they name, non-consecutive
//! offsets in a deep dump) go to stderr after all files are printed. Where the Kafka tool throws
//! (a zero-filled or garbage region in a `.log`), this tool reports the position on stderr and
//! counts the rest of the file as invalid bytes.

use std::fmt::Write as _;
use std::fs::File;
use std::io::{self, Write};
use std::path::Path;
use std::process::ExitCode;

use crate::log::batch::{self, BatchHeader};
use crate::log::index::{self, IndexSource, OffsetIndex, TimeIndex};
use crate::log::records;
use crate::log::scan::{ReadAt, ScanEnd, Scanner, Step};

use super::DumpArgs;

/// Deferred stderr reports, printed after every file like the Kafka tool does.
#[derive(Default)]
struct Reports {
    index_mismatches: Vec<(String, Vec<(i64, i64)>)>,
    non_consecutive: Vec<(String, Vec<(i64, i64)>)>,
    other: Vec<String>,
}

pub fn run(args: &DumpArgs) -> ExitCode {
    if args.files.is_empty() {
        eprintln!("logferry dump: no files given; see 'logferry dump --help'");
        return ExitCode::from(2);
    }
    let stdout = io::stdout();
    let mut out = io::BufWriter::new(stdout.lock());
    let mut reports = Reports::default();
    let mut failed = false;
    for path in &args.files {
        if let Err(e) = dump_file(path, args.deep, &mut out, &mut reports) {
            let _ = out.flush();
            eprintln!("logferry dump: {}: {e}", path.display());
            failed = true;
        }
    }
    let _ = out.flush();
    for (file, list) in &reports.index_mismatches {
        eprintln!("Mismatches in :{file}");
        for (index_offset, log_offset) in list.iter().rev() {
            eprintln!("  Index offset: {index_offset}, log offset: {log_offset}");
        }
    }
    for (file, list) in &reports.non_consecutive {
        eprintln!("Non-consecutive offsets in {file}");
        for (a, b) in list.iter().rev() {
            eprintln!("  {a} is followed by {b}");
        }
    }
    for line in &reports.other {
        eprintln!("{line}");
    }
    if failed {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    }
}

fn base_offset_of(path: &Path) -> io::Result<i64> {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    name.split('.')
        .next()
        .and_then(|s| s.parse::<i64>().ok())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "file name does not start with a base offset"))
}

fn absolute(path: &Path) -> String {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf()).display().to_string()
}

fn dump_file(path: &Path, deep: bool, out: &mut impl Write, reports: &mut Reports) -> io::Result<()> {
    writeln!(out, "Dumping {}", path.display())?;
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    let suffix = name.rfind('.').map(|i| &name[i..]).unwrap_or("");
    match suffix {
        ".log" => dump_log(path, deep, out, reports),
        ".index" => dump_index(path, out, reports),
        ".timeindex" => dump_time_index(path, out),
        ".txnindex" => dump_txn_index(path, out),
        _ => {
            out.flush()?;
            eprintln!("Ignoring unknown file {}", path.display());
            Ok(())
        }
    }
}

fn timestamp_type(h: &BatchHeader) -> &'static str {
    if h.magic == 0 {
        "NoTimestampType"
    } else if h.log_append_time() {
        "LogAppendTime"
    } else {
        "CreateTime"
    }
}

/// The batch line, as `DumpLogSegments.printBatchLevel` prints it.
pub fn batch_line(h: &BatchHeader, position: u64, valid: bool) -> String {
    let mut s = String::new();
    if h.magic >= 2 {
        let horizon = if h.has_delete_horizon() {
            format!("OptionalLong[{}]", h.base_timestamp)
        } else {
            "OptionalLong.empty".to_string()
        };
        let _ = write!(
            s,
            "baseOffset: {} lastOffset: {} count: {} baseSequence: {} lastSequence: {} producerId: {} producerEpoch: {} \
             partitionLeaderEpoch: {} isTransactional: {} isControl: {} deleteHorizonMs: {}",
            h.base_offset,
            h.last_offset(),
            h.records_count,
            h.base_sequence,
            h.last_sequence(),
            h.producer_id,
            h.producer_epoch,
            h.partition_leader_epoch,
            h.is_transactional(),
            h.is_control(),
            horizon
        );
    } else {
        let _ = write!(s, "offset: {}", h.last_offset());
    }
    let _ = write!(
        s,
        " position: {position} {}: {} size: {} magic: {} compresscodec: {} crc: {} isvalid: {valid}",
        timestamp_type(h),
        h.max_timestamp,
        h.size(),
        h.magic,
        h.compression().name(),
        h.crc,
    );
    s
}

fn control_suffix(r: &records::Record) -> String {
    let key = r.key.as_deref().unwrap_or(&[]);
    if key.len() < 4 {
        return " controlType: UNKNOWN(-1)".to_string();
    }
    let type_id = i16::from_be_bytes([key[2], key[3]]);
    match type_id {
        0 | 1 => {
            let v = r.value.as_deref().unwrap_or(&[]);
            let epoch = if v.len() >= 6 { i32::from_be_bytes([v[2], v[3], v[4], v[5]]) } else { -1 };
            let name = if type_id == 0 { "ABORT" } else { "COMMIT" };
            format!(" endTxnMarker: {name} coordinatorEpoch: {epoch}")
        }
        2 => " controlType: LEADER_CHANGE(2)".to_string(),
        other => format!(" controlType: UNKNOWN({other})"),
    }
}

fn dump_log(path: &Path, deep: bool, out: &mut impl Write, reports: &mut Reports) -> io::Result<()> {
    let base = base_offset_of(path)?;
    writeln!(out, "Log starting offset: {base}")?;
    let file = File::open(path)?;
    let len = ReadAt::len(&file)?;
    let mut scanner = Scanner::new(&file, 0, len, false);
    let mut valid_bytes = 0u64;
    let mut last_offset = -1i64;
    let mut non_consecutive = Vec::new();
    let mut buf = Vec::new();
    loop {
        match scanner.step() {
            Step::Batch { position, header } => {
                buf.resize(header.size() as usize, 0);
                let n = file.read_at(&mut buf, position)?;
                let valid = n == buf.len() && batch::check_crc(&header, &buf).is_ok();
                writeln!(out, "{}", batch_line(&header, valid_bytes, valid))?;
                if deep {
                    match records::decode(&header, &buf) {
                        Ok(recs) => {
                            for r in recs {
                                if last_offset != -1 && r.offset != last_offset + 1 {
                                    non_consecutive.push((last_offset, r.offset));
                                }
                                last_offset = r.offset;
                                let keys: Vec<&str> = r.headers.iter().map(|(k, _)| k.as_str()).collect();
                                write!(
                                    out,
                                    "| offset: {} {}: {} keySize: {} valueSize: {}",
                                    r.offset,
                                    timestamp_type(&header),
                                    r.timestamp,
                                    r.key.as_ref().map_or(-1, |k| k.len() as i64),
                                    r.value.as_ref().map_or(-1, |v| v.len() as i64),
                                )?;
                                write!(out, " sequence: {} headerKeys: [{}]", r.sequence, keys.join(","))?;
                                if header.is_control() {
                                    write!(out, "{}", control_suffix(&r))?;
                                }
                                writeln!(out)?;
                            }
                        }
                        Err(e) => reports
                            .other
                            .push(format!("{}: position {position}: records not decoded: {e}", path.display())),
                    }
                }
                valid_bytes += header.size();
            }
            Step::End(ScanEnd::Clean) | Step::End(ScanEnd::Incomplete { .. }) => break,
            Step::End(ScanEnd::Invalid { position, error }) => {
                reports.other.push(format!("{}: position {position}: {error}", path.display()));
                break;
            }
            Step::End(ScanEnd::Io { error, .. }) => return Err(error),
        }
    }
    let trailing = len - valid_bytes;
    if trailing > 0 {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        writeln!(out, "Found {trailing} invalid bytes at the end of {name}")?;
    }
    if !non_consecutive.is_empty() {
        reports.non_consecutive.push((absolute(path), non_consecutive));
    }
    Ok(())
}

fn log_file_for(path: &Path, base: i64) -> std::path::PathBuf {
    path.with_file_name(crate::log::meta::segment_file_name(base, "log"))
}

fn dump_index(path: &Path, out: &mut impl Write, reports: &mut Reports) -> io::Result<()> {
    let base = base_offset_of(path)?;
    let idx = OffsetIndex { base_offset: base, source: IndexSource::open(path, false)? };
    if idx.slots() == 0 {
        writeln!(out, "{} is empty.", path.display())?;
        return Ok(());
    }
    let log = File::open(log_file_for(path, base)).ok();
    let log_len = log.as_ref().map(|f| ReadAt::len(f).unwrap_or(0)).unwrap_or(0);
    let mut mismatches = Vec::new();
    for i in 0..idx.slots() {
        let Some(e) = idx.entry(i)? else { break };
        // A zero slot (relative offset 0 after the first entry) ends a sparse file.
        if e.offset == base && i > 0 {
            break;
        }
        let found = log.as_ref().and_then(|f| match Scanner::new(f, u64::from(e.position), log_len, false).step() {
            Step::Batch { header, .. } => Some(header.last_offset()),
            Step::End(_) => None,
        });
        match found {
            Some(o) if o == e.offset => {}
            Some(o) => mismatches.push((e.offset, o)),
            None => mismatches.push((e.offset, -1)),
        }
        writeln!(out, "offset: {} position: {}", e.offset, e.position)?;
    }
    if !mismatches.is_empty() {
        reports.index_mismatches.push((absolute(path), mismatches));
    }
    Ok(())
}

fn dump_time_index(path: &Path, out: &mut impl Write) -> io::Result<()> {
    let base = base_offset_of(path)?;
    let idx = TimeIndex { base_offset: base, source: IndexSource::open(path, false)? };
    for i in 0..idx.slots() {
        let Some(e) = idx.entry(i)? else { break };
        if e.offset == base && i > 0 {
            break;
        }
        writeln!(out, "timestamp: {} offset: {}", e.timestamp, e.offset)?;
    }
    Ok(())
}

fn dump_txn_index(path: &Path, out: &mut impl Write) -> io::Result<()> {
    let bytes = std::fs::read(path)?;
    for t in index::read_txn_index(&bytes) {
        writeln!(
            out,
            "version: {} producerId: {} firstOffset: {} lastOffset: {} lastStableOffset: {}",
            t.version, t.producer_id, t.first_offset, t.last_offset, t.last_stable_offset
        )?;
    }
    Ok(())
}
