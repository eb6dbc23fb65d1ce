//! Request memory under a flood (issue 11 §2): a thousand connections that each declare an
//! 8 MiB request and feed its body slowly must not grow logferry past a bounded RSS, a real
//! consumer (kcat) must still read whole partitions meanwhile, and the memory must come back
//! when the flood ends.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::serve::serve;

fn rss_bytes(pid: i32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("VmRSS");
    kb * 1024
}

/// A connection that declared an 8 MiB request and sends its body in small pieces, never the
/// whole of it (it stops 1 MiB short), the way a slow or hostile client holds memory.
struct Slow {
    s: TcpStream,
    sent: usize,
}

const DECLARED_BYTES: usize = 8 << 20;
const BODY_SENT_MAX: usize = 7 << 20;

impl Slow {
    fn open(addr: SocketAddr) -> Self {
        let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        // Small kernel buffers: what the server does not read stays in a few KiB per socket.
        sock.set_send_buffer_size(32 << 10).unwrap();
        sock.connect(&addr.into()).unwrap();
        let mut s: TcpStream = sock.into();
        s.write_all(&(DECLARED_BYTES as i32).to_be_bytes()).unwrap();
        s.set_nonblocking(true).unwrap();
        Slow { s, sent: 0 }
    }

    /// Sends up to `n` more body bytes without blocking.
    fn feed(&mut self, n: usize) {
        let chunk = [0x5au8; 16 << 10];
        let mut left = n.min(BODY_SENT_MAX - self.sent);
        while left > 0 {
            match self.s.write(&chunk[..left.min(chunk.len())]) {
                Ok(w) => {
                    self.sent += w;
                    left -= w;
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(_) => return,
            }
        }
    }
}

fn kcat_offsets(addr: SocketAddr) -> Vec<String> {
    let out = Command::new("kcat")
        .args(["-b", &addr.to_string(), "-C", "-t", "plain", "-o", "beginning", "-e", "-q", "-f", "%p %o\n"])
        .output()
        .expect("kcat is installed by tests/harness/install.sh");
    assert!(out.status.success(), "kcat failed: {}", String::from_utf8_lossy(&out.stderr));
    let mut lines: Vec<String> = String::from_utf8_lossy(&out.stdout).lines().map(str::to_string).collect();
    lines.sort();
    lines
}

#[test]
fn a_flood_of_slow_large_requests_stays_bounded_and_others_are_served() {
    let s = serve(&[]);
    let pid = s.pid();
    let expected = kcat_offsets(s.addr);
    assert_eq!(expected.len(), 90, "the fixture's plain topic");
    let baseline = rss_bytes(pid);

    let mut flood: Vec<Slow> = (0..1000).map(|_| Slow::open(s.addr)).collect();
    let mut peak = 0;
    let mut consumer_reads = Vec::new();
    let start = Instant::now();
    // Feed slowly for a while, reading whole partitions with kcat in between.
    while start.elapsed() < Duration::from_secs(8) {
        for c in flood.iter_mut() {
            c.feed(256 << 10);
        }
        peak = peak.max(rss_bytes(pid));
        let t = Instant::now();
        assert_eq!(kcat_offsets(s.addr), expected, "a consumer reads every partition during the flood");
        consumer_reads.push(t.elapsed());
        peak = peak.max(rss_bytes(pid));
    }
    let held: usize = flood.iter().map(|c| c.sent).sum();
    eprintln!(
        "flood: 1000 connections pushed {} MiB of request bodies; logferry RSS baseline {} MiB, peak {} MiB; kcat read the topic {} times, slowest {:?}",
        held >> 20,
        baseline >> 20,
        peak >> 20,
        consumer_reads.len(),
        consumer_reads.iter().max().unwrap()
    );
    assert!(held > 100 << 20, "the flood offered more than the bound ({} bytes)", held);
    assert!(peak < 256 << 20, "RSS peaked at {peak} bytes");

    // The flood ends: the memory it held is given back.
    drop(flood);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let now = rss_bytes(pid);
        if now < baseline + (16 << 20) {
            break;
        }
        assert!(Instant::now() < deadline, "RSS {now} did not return near the baseline {baseline}");
        std::thread::sleep(Duration::from_millis(100));
    }
    // And the server still answers.
    let mut c = crate::serve::Client::connect(s.addr);
    let f = c.frame(3, &kafka_protocol::messages::ApiVersionsRequest::default());
    c.s.write_all(&f).unwrap();
    let mut size = [0u8; 4];
    c.s.read_exact(&mut size).unwrap();
}

#[test]
fn a_small_pool_admits_one_large_request_and_keeps_serving_small_ones() {
    // 4 MiB of request memory admits frames up to 3.5 MiB (--request-bytes-max must fit in it;
    // a combination that does not is refused at start-up, see serve.rs).
    let s = serve(&["--buffered-request-bytes-max", "4194304", "--request-bytes-max", "3000000"]);
    let mut big = TcpStream::connect(s.addr).unwrap();
    big.write_all(&2_999_000i32.to_be_bytes()).unwrap();
    big.write_all(&[0u8; 1 << 16]).unwrap();
    let mut ok = crate::serve::Client::connect(s.addr);
    let f = ok.frame(3, &kafka_protocol::messages::ApiVersionsRequest::default());
    ok.s.write_all(&f).unwrap();
    let mut size = [0u8; 4];
    ok.s.read_exact(&mut size).unwrap();
    // The large one is admitted (it fits) and, being garbage, closed as a protocol violation
    // once whole; either way the process lives and others are served.
    big.write_all(&vec![0u8; 2_999_000 - (1 << 16)]).unwrap();
    big.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut b = [0u8; 1];
    assert!(matches!(big.read(&mut b), Ok(0) | Err(_)));
    let f = ok.frame(3, &kafka_protocol::messages::ApiVersionsRequest::default());
    ok.s.write_all(&f).unwrap();
    ok.s.read_exact(&mut size).unwrap();
}

/// Opens `n` connections that each send the 4-byte size of a 60-byte request and nothing more.
fn slow_senders(addr: SocketAddr, n: usize) -> Vec<TcpStream> {
    (0..n)
        .map(|_| {
            let mut s = TcpStream::connect(addr).unwrap();
            s.write_all(&60i32.to_be_bytes()).unwrap();
            s.set_nonblocking(true).unwrap();
            s
        })
        .collect()
}

/// How many of `conns` the server has closed (EOF or reset), without blocking.
fn closed_count(conns: &mut [TcpStream]) -> usize {
    let mut b = [0u8; 1];
    conns
        .iter()
        .filter(|&s| match { s }.read(&mut b) {
            Ok(0) => true,
            Ok(_) => false,
            Err(e) => e.kind() != ErrorKind::WouldBlock,
        })
        .count()
}

#[test]
fn slow_senders_are_closed_after_request_ms_max_and_others_are_served() {
    let m = crate::tls::metrics_addr();
    let s = serve(&["--request-ms-max", "2000", "--metrics-listen", &m]);
    let expected = kcat_offsets(s.addr);
    // Quiet connections are the idle timeout's business, not this limit's.
    let mut quiet = TcpStream::connect(s.addr).unwrap();
    // A client that sends a whole request slowly, but within the limit, gets its answer.
    let mut patient = crate::serve::Client::connect(s.addr);
    let f = patient.frame(3, &kafka_protocol::messages::ApiVersionsRequest::default());

    // 500 slowloris connections: a byte every 400 ms, so never idle, never a whole request.
    let start = Instant::now();
    let mut slow = slow_senders(s.addr, 500);
    let mut reads = 0;
    let mut sent_patient = 0;
    while start.elapsed() < Duration::from_millis(1500) {
        for c in slow.iter_mut() {
            let _ = c.write(&[0]);
        }
        if sent_patient < f.len() {
            let n = (f.len() / 3).max(1).min(f.len() - sent_patient);
            patient.s.write_all(&f[sent_patient..sent_patient + n]).unwrap();
            sent_patient += n;
        }
        assert_eq!(kcat_offsets(s.addr), expected, "a consumer reads every partition meanwhile");
        reads += 1;
        std::thread::sleep(Duration::from_millis(400));
    }
    patient.s.write_all(&f[sent_patient..]).unwrap();
    assert!(!patient.read_frame().unwrap().is_empty(), "the patient client is answered");
    assert_eq!(closed_count(&mut slow), 0, "closed before request_ms_max");
    // Keep trickling: every one of them is closed soon after 2 s from its first byte.
    let deadline = Instant::now() + Duration::from_secs(8);
    let mut closed = 0;
    while closed < slow.len() {
        assert!(Instant::now() < deadline, "{closed} of {} slow senders closed", slow.len());
        for c in slow.iter_mut() {
            let _ = c.write(&[0]);
        }
        std::thread::sleep(Duration::from_millis(400));
        closed = closed_count(&mut slow);
    }
    assert!(start.elapsed() >= Duration::from_millis(2000), "closed before the limit: {:?}", start.elapsed());
    assert_eq!(crate::tls::metric(&m, "logferry_request_timeouts_total"), 500);
    eprintln!("slowloris: 500 closed after {:?}; kcat read the topic {reads} times meanwhile", start.elapsed());
    // The quiet connection and the patient one are still open and served.
    quiet.set_nonblocking(true).unwrap();
    assert_eq!(closed_count(std::slice::from_mut(&mut quiet)), 0, "a quiet connection was closed");
    let f = patient.frame(3, &kafka_protocol::messages::ApiVersionsRequest::default());
    patient.s.write_all(&f).unwrap();
    assert!(!patient.read_frame().unwrap().is_empty());
    assert_eq!(kcat_offsets(s.addr), expected);
}
