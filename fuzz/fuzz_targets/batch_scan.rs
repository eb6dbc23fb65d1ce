//! Fuzz target: the batch scanner and record decoder on arbitrary file contents. Every step must
//! end in a batch or a stated reason, and decoding any batch the scanner accepts must not panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use logferry::log::records;
use logferry::log::scan::{Scanner, Step};

fuzz_target!(|data: &[u8]| {
    let file = data.to_vec();
    for verify in [true, false] {
        let mut s = Scanner::new(&file, 0, file.len() as u64, verify);
        loop {
            match s.step() {
                Step::Batch { position, header } => {
                    let end = (position + header.size()) as usize;
                    assert!(end <= file.len());
                    let _ = records::decode(&header, &file[position as usize..end]);
                }
                Step::End(_) => break,
            }
        }
    }
});
