//! Integration tests of the log model, in one test binary (ripgrep's layout): the committed real
//! fixture written by a Kafka broker, and the seeded simulation of a writer the tailer follows.

mod fixture;
mod serve;
mod sim;
mod util;
