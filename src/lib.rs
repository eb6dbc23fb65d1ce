//! logferry: a read-only Kafka read replica that serves consumers straight from a broker's log
//! directory.
//!
//! This crate is the library behind the `logferry` binary. Modules:
//! - [`log`]: the log model (log dirs, partitions, segments, batch headers, indexes) and the
//!   tailer that follows a broker writing them;
//! - [`protocol`], [`send`], [`server`]: the Kafka protocol, zero-copy responses, the event loop;
//! - [`cluster`]: the KRaft metadata log, followed into an image of the cluster (brokers,
//!   topics, partition leaders, users, ACLs) for the fleet presentation;
//! - [`groups`]: the consumer group coordinator and the committed-offsets store;
//! - [`alloc`]: the process allocator (lazy reservation of huge blocks, see there);
//! - [`cli`]: the command line (`serve`, `dump`, `verify`), kept here so it is testable; the
//!   binary only calls [`cli::main`].
//!
//! Glossary (used the same way in every module):
//! - **offset**: a Kafka logical offset (`i64`);
//! - **relative offset**: offset minus a segment's base offset (`u32`, index files only);
//! - **position**: a byte position in a segment file (`u64` here, `u32` in index files);
//! - **size** / **len**: bytes; **count**: records or batches;
//! - **base offset**: the first offset a segment may hold (its file name), a lower bound of its
//!   first batch's offset;
//! - **exposed end**: the end of the last complete, CRC-valid batch; nothing past it is served.

pub mod alloc;
pub mod auth;
pub mod cli;
pub mod cluster;
pub mod descriptors;
pub mod groups;
pub mod log;
pub mod metrics;
pub mod protocol;
pub mod send;
pub mod server;
pub mod systemd;
