//! Fuzzes the TLS record path of a client connection (`logferry::server::transport`): the input
//! is a run of reads, each a big-endian u16 length and that many bytes, fed to a server-side
//! rustls session behind logferry's `Transport` with a fixed test certificate
//! (`tests/fixtures/tls`). Nothing may panic or spin, whatever the bytes: garbage, plaintext
//! Kafka, truncated or oversized records, real ClientHellos cut anywhere.
#![no_main]

use std::sync::{Arc, OnceLock};

use libfuzzer_sys::fuzz_target;

fn config() -> &'static Arc<rustls::ServerConfig> {
    static CONFIG: OnceLock<Arc<rustls::ServerConfig>> = OnceLock::new();
    CONFIG.get_or_init(|| {
        logferry::auth::tls::server_config_from_pem(
            include_bytes!("../../tests/fixtures/tls/server.pem"),
            include_bytes!("../../tests/fixtures/tls/server.key"),
        )
        .expect("the committed test certificate")
    })
}

fuzz_target!(|data: &[u8]| {
    logferry::server::transport::fuzz_records(config(), data);
});
