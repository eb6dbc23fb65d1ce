//! Fuzz target: the KRaft metadata log reader on arbitrary bytes. The input is decoded as one
//! metadata record value, then written as a metadata log segment (its first half, then all of
//! it, as a writer appending) and followed: opening, refreshing and rebuilding must end in an
//! image and counters, never a panic or an unbounded allocation.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use logferry::cluster::{records, MetadataLog, METADATA_DIR_NAME};

/// One directory for the whole run (a fresh one per input would cost more than the input).
fn dir() -> &'static std::path::Path {
    static DIR: OnceLock<(tempfile::TempDir, std::path::PathBuf)> = OnceLock::new();
    let (_, m) = DIR.get_or_init(|| {
        let d = tempfile::tempdir().unwrap();
        let m = d.path().join(METADATA_DIR_NAME);
        std::fs::create_dir_all(&m).unwrap();
        (d, m)
    });
    m
}

fuzz_target!(|data: &[u8]| {
    let _ = records::decode(data);
    let dir = dir();
    let log = dir.join("00000000000000000000.log");
    std::fs::write(&log, &data[..data.len() / 2]).unwrap();
    let Ok(mut m) = MetadataLog::open(dir) else { return };
    std::fs::write(&log, data).unwrap();
    let _ = m.refresh();
    // Shrunk under the reader: a rebuild.
    std::fs::write(&log, &data[..data.len() / 3]).unwrap();
    let _ = m.refresh();
});
