//! Fuzzes the KIP-848 coordinator (`logferry::groups::consumer`): the input is a run of steps
//! eight simulated clients take against one group (join, heartbeat, wrong epochs, leave,
//! subscription and assignor changes, time passing, new topics). Nothing may panic, and after
//! every step no partition is held by two members and no live client owns what the
//! coordinator does not say it holds (see `fuzz_heartbeats`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use logferry::groups::consumer::fuzz_heartbeats;

fuzz_target!(|data: &[u8]| {
    fuzz_heartbeats(data);
});
