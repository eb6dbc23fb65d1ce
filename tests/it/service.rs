//! The service side of `logferry serve`, black box: sd_notify through a fake notify socket
//! (path and abstract), the watchdog interval, SIGTERM draining a response in flight, SIGHUP
//! picking up a new partition, `--broker-config`, and the metrics endpoint's HTTP behaviour.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::time::{Duration, Instant};

use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::offset_commit_request::{OffsetCommitRequestPartition, OffsetCommitRequestTopic};
use kafka_protocol::messages::{ApiVersionsRequest, GroupId, MetadataRequest, OffsetCommitRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::serve::{append_visible, fetch_req, list_offsets, serve, serve_with_env, topic, topic_id_of, Client};

/// Collects notify datagrams until `stop` says enough or the time runs out.
fn collect(
    sock: &UnixDatagram,
    timeout: Duration,
    stop: impl Fn(&[(Instant, String)]) -> bool,
) -> Vec<(Instant, String)> {
    sock.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
    let deadline = Instant::now() + timeout;
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline && !stop(&out) {
        if let Ok(n) = sock.recv(&mut buf) {
            out.push((Instant::now(), String::from_utf8_lossy(&buf[..n]).into_owned()));
        }
    }
    out
}

#[test]
fn notify_ready_status_watchdog_and_stopping() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&path).unwrap();
    let mut s = serve_with_env(&[], &[("NOTIFY_SOCKET", path.to_str().unwrap()), ("WATCHDOG_USEC", "200000")]);
    let got = collect(&sock, Duration::from_secs(10), |m| m.iter().filter(|(_, x)| x == "WATCHDOG=1").count() >= 6);
    let msgs: Vec<&str> = got.iter().map(|(_, m)| m.as_str()).collect();
    assert_eq!(msgs.first(), Some(&"READY=1"), "{msgs:?}");
    assert!(msgs.iter().any(|m| m.starts_with("STATUS=serving 19 partitions")), "{msgs:?}");
    let pings: Vec<Instant> = got.iter().filter(|(_, m)| m == "WATCHDOG=1").map(|(t, _)| *t).collect();
    assert!(pings.len() >= 6, "{msgs:?}");
    // WATCHDOG_USEC=200000: a ping every 100 ms, give or take scheduling on a loaded machine
    // (the upper bound still catches a loop that stops pinging; systemd would allow 200 ms).
    for w in pings.windows(2).skip(1) {
        let gap = w[1] - w[0];
        assert!(gap >= Duration::from_millis(60) && gap <= Duration::from_millis(1000), "watchdog gap {gap:?}");
    }
    kill(Pid::from_raw(s.pid()), Signal::SIGTERM).unwrap();
    let tail = collect(&sock, Duration::from_secs(10), |m| m.iter().any(|(_, x)| x == "STOPPING=1"));
    assert!(tail.iter().any(|(_, m)| m == "STOPPING=1"));
    assert_eq!(s.wait_exit(Duration::from_secs(15)), Some(0));
}

#[test]
fn notify_abstract_socket() {
    let name = format!("logferry-test-{}", std::process::id());
    let sock = UnixDatagram::bind_addr(&SocketAddr::from_abstract_name(name.as_bytes()).unwrap()).unwrap();
    let _s = serve_with_env(&[], &[("NOTIFY_SOCKET", &format!("@{name}"))]);
    let got = collect(&sock, Duration::from_secs(10), |m| !m.is_empty());
    assert_eq!(got.first().map(|(_, m)| m.as_str()), Some("READY=1"));
}

#[test]
fn sigterm_finishes_the_response_in_flight_then_exits_zero() {
    let mut s = serve(&["--visibility", "log-end", "--rescan-ms", "60000"]);
    let mut c = Client::connect(s.addr);
    let id = topic_id_of(&mut c, "plain");
    let end = list_offsets(&mut c, 5, "plain", 2, -1, -1, 0).offset;
    let big = crate::util::batch(end, 1, 1_800_000_000_000, 32 << 20, 3);
    append_visible(&s, &mut c, 2, &big);
    let mut req = fetch_req("plain", id, 2, end, 0);
    req.topics[0].partitions[0].partition_max_bytes = 64 << 20;
    let f = c.frame(12, &req);
    c.s.write_all(&f).unwrap();
    // Read a little, then signal while most of the 32 MiB is still to be written.
    let mut first = [0u8; 4096];
    c.s.read_exact(&mut first).unwrap();
    kill(Pid::from_raw(s.pid()), Signal::SIGTERM).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let size = i32::from_be_bytes([first[0], first[1], first[2], first[3]]) as usize;
    let mut rest = vec![0u8; size + 4 - first.len()];
    c.s.read_exact(&mut rest).expect("the whole response arrives after SIGTERM");
    let mut all = first.to_vec();
    all.extend(rest);
    assert!(all.ends_with(&[0, 0, 0]), "frame ends with the partition, topic and response tag sections");
    assert!(all.windows(64).any(|w| w == &big[..64]), "the batch is in the response");
    assert_eq!(s.wait_exit(Duration::from_secs(15)), Some(0));
    // New connections are refused once draining started.
    assert!(TcpStream::connect(s.addr).is_err() || { Client::connect(s.addr).closed() });
}

#[test]
fn sighup_picks_up_a_new_partition() {
    // inotify off and the periodic rescan at ten minutes: only SIGHUP can show the new topic.
    let s = serve(&["--no-inotify", "--rescan-ms", "600000"]);
    let mut c = Client::connect(s.addr);
    let ask = |c: &mut Client| {
        let r = c.call(
            12,
            &MetadataRequest::default()
                .with_topics(Some(vec![MetadataRequestTopic::default().with_name(Some(topic("fresh")))])),
        );
        r.topics[0].error_code
    };
    assert_eq!(ask(&mut c), 3);
    std::fs::create_dir(s.logdir().join("fresh-0")).unwrap();
    std::fs::copy(
        s.logdir().join("plain-0/00000000000000000000.log"),
        s.logdir().join("fresh-0/00000000000000000000.log"),
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(ask(&mut c), 3, "without inotify or a rescan the new dir is not seen yet");
    kill(Pid::from_raw(s.pid()), Signal::SIGHUP).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while ask(&mut c) != 0 {
        assert!(Instant::now() < deadline, "SIGHUP did not add the partition");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn broker_config_gives_log_dirs_and_node_id() {
    let tmp = tempfile::tempdir().unwrap();
    let logdir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/logdir");
    let props = tmp.path().join("server.properties");
    std::fs::write(
        &props,
        format!("# broker config\nprocess.roles=broker,controller\nnode.id=42\nlog.dirs={}\n", logdir.display()),
    )
    .unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_logferry"))
        .args(["serve", "--broker-config", props.to_str().unwrap(), "--listen", "127.0.0.1:0"])
        .args(["--state-dir", tmp.path().join("state").to_str().unwrap()])
        .env("RUST_LOG", "info")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = child.stderr.take().unwrap();
    let mut buf = vec![0u8; 4096];
    let mut line = String::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !line.contains("serving on") && Instant::now() < deadline {
        let n = err.read(&mut buf).unwrap();
        line.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(line.contains("node 42"), "{line}");
    assert!(line.contains(&logdir.display().to_string()), "{line}");
    assert!(line.contains("19 partitions"), "{line}");
    std::fs::write(&props, "process.roles=broker\n").unwrap();
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_logferry"))
        .args(["serve", "--broker-config", props.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("no log.dirs"));
}

pub fn http_get(addr: &str, path: &str) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

#[test]
fn metrics_endpoint_http() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let addr = format!("127.0.0.1:{port}");
    let s = serve(&["--metrics-listen", &addr]);
    let mut c = Client::connect(s.addr);
    assert_eq!(c.call(3, &ApiVersionsRequest::default()).error_code, 0);
    let health = http_get(&addr, "/healthz");
    assert!(health.starts_with("HTTP/1.1 200 OK") && health.ends_with("ok\n"), "{health}");
    let m = http_get(&addr, "/metrics");
    assert!(m.starts_with("HTTP/1.1 200 OK"));
    assert!(m.contains("logferry_requests_total{api=\"ApiVersions\",version=\"3\"} 1"), "{m}");
    assert!(m.contains("logferry_partition_exposed_end_offset{topic=\"plain\",partition=\"0\"}"));
    assert!(m.contains("logferry_groups 0"), "{m}");
    // A commit is synced (and timed) before it is answered.
    let commit = OffsetCommitRequest::default()
        .with_group_id(GroupId(StrBytes::from_static_str("g")))
        .with_generation_id_or_member_epoch(-1)
        .with_topics(vec![OffsetCommitRequestTopic::default()
            .with_name(TopicName(StrBytes::from_static_str("plain")))
            .with_partitions(vec![OffsetCommitRequestPartition::default()
                .with_partition_index(0)
                .with_committed_offset(1)])]);
    assert_eq!(c.call(9, &commit).topics[0].partitions[0].error_code, 0);
    let m = http_get(&addr, "/metrics");
    assert!(m.contains("logferry_offsets_sync_seconds_count 1"), "{m}");
    assert!(http_get(&addr, "/nope").starts_with("HTTP/1.1 404"));
    // Garbage on the metrics port gets a 400 and costs nothing else.
    let mut g = TcpStream::connect(&addr).unwrap();
    g.write_all(b"\x16\x03\x01garbage\r\n\r\n").unwrap();
    let mut out = String::new();
    let _ = g.read_to_string(&mut out);
    assert!(out.starts_with("HTTP/1.1 400"), "{out}");
    assert_eq!(c.call(3, &ApiVersionsRequest::default()).error_code, 0);
}
