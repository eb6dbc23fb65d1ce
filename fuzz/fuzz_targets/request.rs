//! Fuzz target: request framing and decoding, then the handler, over the committed real fixture.
//! Any input must produce a frame decision and an outcome (respond, park or close); never a
//! panic, an abort or an unbounded allocation.
#![no_main]

use std::cell::RefCell;
use std::path::PathBuf;
use std::time::Instant;

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use logferry::groups::{GroupConfig, Groups, OffsetLimits, Waiter};
use logferry::log::LogView;
use logferry::protocol::fetch_session::FetchSessions;
use logferry::protocol::{check_frame, handle_request, Context, Origin, ServeConfig, Visibility};

#[global_allocator]
static ALLOC: logferry::alloc::GuardedAlloc = logferry::alloc::GuardedAlloc;

thread_local! {
    static SESSIONS: RefCell<FetchSessions> = RefCell::new(FetchSessions::new(16, 1000, 1));
    static STATE: tempfile::TempDir = tempfile::tempdir().expect("state dir");
    static GROUPS: RefCell<Groups> = RefCell::new(STATE.with(|d| {
        Groups::open(d.path(), GroupConfig::default(), OffsetLimits::default(), Instant::now()).expect("offsets store")
    }));
    static VIEW: RefCell<LogView> = RefCell::new(
        LogView::open(&[PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/logdir")], 64).expect("fixture"),
    );
}

fn config() -> ServeConfig {
    ServeConfig {
        node_id: 1,
        advertised_host: "127.0.0.1".into(),
        advertised_port: 9192,
        cluster_id: "fuzz".into(),
        visibility: Visibility::LogEnd,
        fetch_wait_ms_max: 0,
        response_bytes_max: 1 << 20,
        partitions_per_request_max: 1000,
        groups_upstream: false,
        upstream_api_ranges: Vec::new(),
        broker_properties: Default::default(),
        fleet: Default::default(),
    }
}

fuzz_target!(|data: &[u8]| {
    // The framing decision on the raw stream...
    let _ = check_frame(data, 1 << 20);
    // ...and the whole request path on the bytes as a frame body.
    let config = config();
    VIEW.with(|v| {
        GROUPS.with(|g| {
            let mut view = v.borrow_mut();
            let mut groups = g.borrow_mut();
            let mut sessions = SESSIONS.with(|s| std::mem::replace(&mut *s.borrow_mut(), FetchSessions::new(0, 0, 1)));
            let mut ctx = Context {
                view: &mut view,
                config: &config,
                groups: &mut groups,
                origin: Origin { waiter: Waiter { conn: 0, serial: 1 }, client_host: "/127.0.0.1".into() },
                errors: Vec::new(),
                auth: None,
                sessions: &mut sessions,
            };
            let _ = handle_request(Bytes::copy_from_slice(data), &mut ctx, Instant::now());
            // Sessions live on across inputs (ids from a fixed seed), as across requests.
            SESSIONS.with(|s| *s.borrow_mut() = sessions);
            // Keep the store from growing without bound across millions of inputs.
            let _ = groups.store.sync();
            groups.coordinator.tick(Instant::now());
        });
    });
});
