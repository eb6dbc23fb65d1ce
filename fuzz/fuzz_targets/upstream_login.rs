//! Fuzzes logferry's login on its upstream connection (`logferry::server::upstream_conn`): the
//! input's first byte picks PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512, the rest is a run of reads
//! (big-endian u16 length, bytes) standing for the broker's answers to SaslHandshake v1 and
//! SaslAuthenticate v2. Nothing may panic or spin: bad frames, wrong correlation ids, hostile
//! SCRAM challenges (foreign nonces, huge iteration counts, forged server signatures).
#![no_main]

use libfuzzer_sys::fuzz_target;

// The binary's allocator: huge array capacities claimed on the wire are reserved lazily (see
// `logferry::alloc`), as in production.
#[global_allocator]
static ALLOC: logferry::alloc::GuardedAlloc = logferry::alloc::GuardedAlloc;

fuzz_target!(|data: &[u8]| {
    logferry::server::upstream_conn::fuzz_login(data);
});
