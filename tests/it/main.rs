//! Integration tests of the log model, in one test binary (ripgrep's layout): the committed real
//! fixture written by a Kafka broker, the seeded simulation of a writer the tailer follows, the
//! server as a black box, and the fuzz corpora replayed.

#[global_allocator]
static ALLOC: logferry::alloc::GuardedAlloc = logferry::alloc::GuardedAlloc;

mod cluster;
mod fixture;
mod flood;
mod fuzz_replay;
mod groups;
mod serve;
mod service;
mod sim;
mod tls;
mod txn;
mod util;
