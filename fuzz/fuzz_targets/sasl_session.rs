//! Fuzzes one connection's SASL session (`logferry::auth::sasl`): the input is a run of
//! frames, each a big-endian u16 length and that many bytes, fed in order with a listener that
//! offers PLAIN and both SCRAMs. Nothing may panic, whatever the frames; the session's answer to
//! each is a decision, and a close or failure ends the run as it would end the connection.
#![no_main]

use libfuzzer_sys::fuzz_target;
use logferry::auth::sasl::fuzz_frames;

fuzz_target!(|data: &[u8]| {
    fuzz_frames(data);
});
