//! Replays the committed fuzz corpora and regression inputs on the stable toolchain, through the
//! same code the fuzz targets drive: nothing may panic or abort. The test binary uses the same
//! process allocator as `logferry` (declared in `main.rs`), which is what makes the huge-array
//! regressions harmless.

use std::path::PathBuf;
use std::time::Instant;

use bytes::Bytes;
use logferry::groups::{GroupConfig, Groups, OffsetLimits, Waiter};
use logferry::log::scan::{Scanner, Step};
use logferry::log::{records, LogView};
use logferry::protocol::{check_frame, handle_request, Context, Origin, Outcome, ServeConfig, Visibility};

fn files(dir: &str) -> Vec<PathBuf> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(dir);
    let mut out: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap_or_else(|e| panic!("{}: {e}", root.display()))
        .map(|e| e.unwrap().path())
        .collect();
    out.sort();
    out
}

#[test]
fn request_corpus_and_regressions() {
    let mut view =
        LogView::open(&[PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/logdir")], 64).unwrap();
    let config = ServeConfig {
        node_id: 1,
        advertised_host: "127.0.0.1".into(),
        advertised_port: 9192,
        cluster_id: "replay".into(),
        visibility: Visibility::LogEnd,
        fetch_wait_ms_max: 0,
        response_bytes_max: 1 << 20,
        partitions_per_request_max: 1000,
        groups_upstream: false,
        upstream_api_ranges: Vec::new(),
        broker_properties: Default::default(),
        fleet: Default::default(),
    };
    let state = tempfile::tempdir().unwrap();
    let mut groups =
        Groups::open(state.path(), GroupConfig::default(), OffsetLimits::default(), Instant::now()).unwrap();
    let mut inputs = files("fuzz/corpus/request");
    let regressions = files("fuzz/regressions/request");
    assert!(!regressions.is_empty());
    inputs.extend(regressions.iter().cloned());
    assert!(inputs.len() > 100);
    let mut sessions = logferry::protocol::fetch_session::FetchSessions::new(16, 1000, 1);
    for path in &inputs {
        let data = std::fs::read(path).unwrap();
        let _ = check_frame(&data, 1 << 20);
        let mut ctx = Context {
            view: &mut view,
            config: &config,
            groups: &mut groups,
            origin: Origin { waiter: Waiter { conn: 0, serial: 1 }, client_host: "/127.0.0.1".into() },
            errors: Vec::new(),
            auth: None,
            sessions: &mut sessions,
        };
        let (_, outcome) = handle_request(Bytes::from(data), &mut ctx, Instant::now());
        if regressions.contains(path) {
            assert!(matches!(outcome, Outcome::Close(_)), "{} must close the connection", path.display());
        }
    }
}

#[test]
fn batch_scan_corpus() {
    let inputs = files("fuzz/corpus/batch_scan");
    assert!(inputs.len() > 10);
    for path in inputs {
        let file = std::fs::read(&path).unwrap();
        let mut s = Scanner::new(&file, 0, file.len() as u64, true);
        while let Step::Batch { position, header } = s.step() {
            let end = (position + header.size()) as usize;
            let _ = records::decode(&header, &file[position as usize..end]);
        }
    }
}

#[test]
fn metadata_log_corpus() {
    use logferry::cluster::{records as mdrec, MetadataLog, METADATA_DIR_NAME};
    let inputs = files("fuzz/corpus/metadata_log");
    assert!(inputs.len() > 10);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join(METADATA_DIR_NAME);
    std::fs::create_dir_all(&dir).unwrap();
    let log = dir.join("00000000000000000000.log");
    for path in inputs {
        let data = std::fs::read(&path).unwrap();
        let _ = mdrec::decode(&data);
        std::fs::write(&log, &data[..data.len() / 2]).unwrap();
        let mut m = MetadataLog::open(&dir).unwrap();
        std::fs::write(&log, &data).unwrap();
        m.refresh().unwrap();
        std::fs::write(&log, &data[..data.len() / 3]).unwrap();
        m.refresh().unwrap();
    }
}

#[test]
fn sasl_session_corpus() {
    let inputs = files("fuzz/corpus/sasl_session");
    assert!(inputs.len() >= 8);
    let mut fed = 0;
    for path in inputs {
        fed += logferry::auth::sasl::fuzz_frames(&std::fs::read(&path).unwrap());
    }
    // The seeds are well-formed exchanges: most of their frames reach the session.
    assert!(fed >= 20, "{fed}");
}

#[test]
fn tls_records_corpus() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tls");
    let config = logferry::auth::tls::server_config_from_pem(
        &std::fs::read(root.join("server.pem")).unwrap(),
        &std::fs::read(root.join("server.key")).unwrap(),
    )
    .unwrap();
    let inputs = files("fuzz/corpus/tls_records");
    assert!(inputs.len() >= 9);
    for path in inputs {
        let data = std::fs::read(&path).unwrap();
        // No input here completes a handshake: no plaintext may come out of any of them.
        assert_eq!(logferry::server::transport::fuzz_records(&config, &data), 0, "{}", path.display());
    }
    // A bad key is an error, not a panic.
    assert!(logferry::auth::tls::server_config_from_pem(b"junk", b"junk").is_err());
}

#[test]
fn upstream_login_corpus() {
    let mut logins = Vec::new();
    for path in files("fuzz/corpus/upstream_login").into_iter().chain(files("fuzz/regressions/upstream_login")) {
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        logins.push((name, logferry::server::upstream_conn::fuzz_login(&std::fs::read(&path).unwrap())));
    }
    assert!(logins.len() >= 8);
    // Of the hand-made seeds only the well-formed PLAIN exchanges log in; refusals, forgeries
    // and bad frames do not (the fuzzer's own finds just run).
    let seeds = [
        ("plain-ok", 1),
        ("split-reads", 1),
        ("plain-refused", 0),
        ("mechanism-not-offered", 0),
        ("scram256-first", 0),
        ("scram512-forged-final", 0),
        ("scram-huge-iterations", 0),
        ("wrong-correlation", 0),
        // The first long run's find: a mechanism list claiming 2^31 - 1 names (lazily reserved).
        ("huge-mechanism-count", 0),
    ];
    for (seed, want) in seeds {
        let got = logins.iter().find(|(n, _)| n == seed).map(|(_, k)| *k);
        assert_eq!(got, Some(want), "{seed}");
    }
}

#[test]
fn consumer_group_corpus_and_random_runs() {
    let inputs = files("fuzz/corpus/consumer_group");
    assert!(inputs.len() >= 4);
    for path in inputs {
        logferry::groups::consumer::fuzz_heartbeats(&std::fs::read(&path).unwrap());
    }
    // And 300 pseudo-random runs of 200 steps (xorshift, fixed seed): the rules hold in each.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for _ in 0..300 {
        let run: Vec<u8> = (0..600)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 24) as u8
            })
            .collect();
        logferry::groups::consumer::fuzz_heartbeats(&run);
    }
}
