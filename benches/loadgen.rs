//! Load generator (not a test): N consumers reading one partition of any Kafka server (logferry
//! or a broker) from offset 0 to its end, each on its own connection and thread, speaking
//! Fetch v12 like a real consumer and discarding the record bytes.
//!
//! Run: `cargo bench --bench loadgen -- BOOTSTRAP TOPIC PARTITION END_OFFSET [CONNECTIONS]
//! [PARTITION_MAX_BYTES]`. Prints one line: `bytes=… seconds=… gbps=…` (aggregate).
//! PARTITION `all:N` makes each consumer fetch partitions 0..N in every request, up to the high
//! watermarks the server reports (END_OFFSET is then ignored): the many-partitions scenario.

#[path = "common.rs"]
mod common;

use std::time::Instant;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| a != "--bench").collect();
    if args.len() < 4 {
        eprintln!("usage: loadgen BOOTSTRAP TOPIC PARTITION END_OFFSET [CONNECTIONS] [PARTITION_MAX_BYTES]");
        std::process::exit(2);
    }
    let addr = args[0].clone();
    let topic = args[1].clone();
    let all: Option<i32> = args[2].strip_prefix("all:").map(|n| n.parse().expect("all:N"));
    let partition: i32 = if all.is_some() { 0 } else { args[2].parse().expect("partition") };
    let end: i64 = args[3].parse().expect("end offset");
    let connections: usize = args.get(4).map_or(1, |s| s.parse().expect("connections"));
    let pmb: i32 = args.get(5).map_or(1 << 20, |s| s.parse().expect("partition max bytes"));
    let t = Instant::now();
    let handles: Vec<_> = (0..connections)
        .map(|_| {
            let (addr, topic) = (addr.clone(), topic.clone());
            std::thread::spawn(move || match all {
                Some(n) => common::consume_all(&addr, &topic, n, pmb),
                None => common::consume(&addr, &topic, partition, end, pmb),
            })
        })
        .collect();
    let mut bytes = 0u64;
    for h in handles {
        bytes += h.join().expect("consumer thread").1;
    }
    let secs = t.elapsed().as_secs_f64();
    println!("bytes={bytes} seconds={secs:.3} gbps={:.3}", bytes as f64 / secs / 1e9);
}
