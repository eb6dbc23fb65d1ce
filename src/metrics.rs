//! Metrics: what the server counts, and the `/metrics` + `/healthz` HTTP endpoint that exposes it.
//!
//! Owns the metric families (names below, Prometheus/OpenMetrics text via the
//! `prometheus-client` crate) and the tiny HTTP side: requests are parsed with `httparse`, served
//! from the same event loop, one response per connection, bounded (`METRICS_CONNECTIONS_MAX`
//! connections, `METRICS_REQUEST_BYTES_MAX` per request). Per-partition gauges are refreshed from
//! the log view at scrape time, so their cost is paid only when scraped. Cardinality: one series
//! per (API, version), per error code, and per partition served.

use std::time::Duration;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use crate::log::LogView;

pub const METRICS_CONNECTIONS_MAX: usize = 16;
pub const METRICS_REQUEST_BYTES_MAX: usize = 8 << 10;

type Labels = Vec<(String, String)>;

pub struct Metrics {
    registry: Registry,
    pub requests: Family<Labels, Counter>,
    pub errors: Family<Labels, Counter>,
    pub protocol_violations: Counter,
    pub request_timeouts: Counter,
    pub sent_bytes: Family<Labels, Counter>,
    pub fetch_wait_seconds: Histogram,
    pub fetch_send_seconds: Histogram,
    pub parked_fetches: Gauge,
    pub fetch_sessions: Gauge,
    pub fetch_session_evictions: Counter,
    pub fetch_sessions_opened: Counter,
    pub connections: Gauge,
    pub connections_accepted: Counter,
    pub file_shrunk: Counter,
    pub open_files: Gauge,
    pub descriptor_exhaustions: Counter,
    pub descriptors_max: Gauge,
    pub loop_iteration_seconds: Histogram,
    pub groups: Gauge,
    pub group_members: Gauge,
    pub offsets_sync_seconds: Histogram,
    pub offsets_store_bytes: Gauge,
    pub buffered_request_bytes: Gauge,
    pub upstream_connected: Gauge,
    pub upstream_reconnects: Counter,
    pub upstream_fallbacks: Counter,
    pub upstream_responses: Counter,
    pub request_memory_waits: Counter,
    pub requests_refused_memory: Counter,
    pub authentications: Counter,
    pub authentication_failures: Counter,
    pub tls_handshakes: Counter,
    pub tls_handshake_failures: Counter,
    metadata_offset: Gauge,
    metadata_commit_bound: Gauge,
    metadata_brokers: Gauge,
    metadata_partitions: Gauge,
    metadata_records_unknown: Counter,
    metadata_records_invalid: Counter,
    metadata_rebuilds: Counter,
    exposed_end: Family<Labels, Gauge>,
    unexposed_bytes: Family<Labels, Gauge>,
    visibility_lag: Family<Labels, Gauge>,
    checkpoint_age_seconds: Family<Labels, Gauge>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("logferry");
        let m = Metrics {
            requests: Family::default(),
            errors: Family::default(),
            protocol_violations: Counter::default(),
            request_timeouts: Counter::default(),
            sent_bytes: Family::default(),
            fetch_wait_seconds: Histogram::new(exponential_buckets(0.0005, 2.0, 16)),
            fetch_send_seconds: Histogram::new(exponential_buckets(0.00005, 2.0, 18)),
            parked_fetches: Gauge::default(),
            fetch_sessions: Gauge::default(),
            fetch_session_evictions: Counter::default(),
            fetch_sessions_opened: Counter::default(),
            connections: Gauge::default(),
            connections_accepted: Counter::default(),
            file_shrunk: Counter::default(),
            open_files: Gauge::default(),
            descriptor_exhaustions: Counter::default(),
            descriptors_max: Gauge::default(),
            loop_iteration_seconds: Histogram::new(exponential_buckets(0.00001, 2.0, 18)),
            groups: Gauge::default(),
            group_members: Gauge::default(),
            offsets_sync_seconds: Histogram::new(exponential_buckets(0.00002, 2.0, 18)),
            offsets_store_bytes: Gauge::default(),
            buffered_request_bytes: Gauge::default(),
            upstream_connected: Gauge::default(),
            metadata_offset: Gauge::default(),
            metadata_commit_bound: Gauge::default(),
            metadata_brokers: Gauge::default(),
            metadata_partitions: Gauge::default(),
            metadata_records_unknown: Counter::default(),
            metadata_records_invalid: Counter::default(),
            metadata_rebuilds: Counter::default(),
            upstream_reconnects: Counter::default(),
            upstream_fallbacks: Counter::default(),
            upstream_responses: Counter::default(),
            request_memory_waits: Counter::default(),
            requests_refused_memory: Counter::default(),
            authentications: Counter::default(),
            authentication_failures: Counter::default(),
            tls_handshakes: Counter::default(),
            tls_handshake_failures: Counter::default(),
            exposed_end: Family::default(),
            unexposed_bytes: Family::default(),
            visibility_lag: Family::default(),
            checkpoint_age_seconds: Family::default(),
            registry: Registry::default(),
        };
        registry.register("requests", "Requests handled, by API and version", m.requests.clone());
        registry.register(
            "response_errors",
            "Error codes returned (per partition or request), by code",
            m.errors.clone(),
        );
        registry.register(
            "protocol_violations",
            "Connections closed for bad input or unsupported requests",
            m.protocol_violations.clone(),
        );
        registry.register(
            "request_timeouts",
            "Connections closed because a request did not arrive within request_ms_max (slow senders)",
            m.request_timeouts.clone(),
        );
        registry.register(
            "sasl_authentications",
            "SASL exchanges that succeeded (first authentications and re-authentications)",
            m.authentications.clone(),
        );
        registry.register(
            "sasl_authentication_failures",
            "SASL exchanges that failed (bad credentials, unknown user or mechanism, principal change)",
            m.authentication_failures.clone(),
        );
        registry.register("tls_handshakes", "TLS handshakes completed", m.tls_handshakes.clone());
        registry.register(
            "tls_handshake_failures",
            "TLS sessions that failed before or during the handshake (bad records, plaintext on a TLS port, \
             bad or missing client certificates, stalls past tls_handshake_ms_max, peers closing mid-handshake)",
            m.tls_handshake_failures.clone(),
        );
        registry.register(
            "sent_bytes",
            "Bytes written to clients: path=sendfile (zero copy), copy (memory) or tls (copied and encrypted)",
            m.sent_bytes.clone(),
        );
        registry.register(
            "fetch_wait_seconds",
            "Time a Fetch waited (long poll) before its response was ready",
            m.fetch_wait_seconds.clone(),
        );
        registry.register(
            "fetch_send_seconds",
            "Time from a Fetch response being ready to its last byte written",
            m.fetch_send_seconds.clone(),
        );
        registry.register("parked_fetches", "Fetches waiting for data", m.parked_fetches.clone());
        registry.register(
            "fetch_sessions",
            "Incremental fetch sessions in the cache (KIP-227)",
            m.fetch_sessions.clone(),
        );
        registry.register(
            "fetch_session_evictions",
            "Fetch sessions evicted to make room for a new one",
            m.fetch_session_evictions.clone(),
        );
        registry.register("fetch_sessions_opened", "Fetch sessions opened", m.fetch_sessions_opened.clone());
        registry.register("connections", "Open client connections", m.connections.clone());
        registry.register("connections_accepted", "Client connections accepted", m.connections_accepted.clone());
        registry.register(
            "file_shrunk",
            "Connections closed because a file shrank under their response",
            m.file_shrunk.clone(),
        );
        registry.register("open_files", "Segment files held open by the log model", m.open_files.clone());
        registry.register(
            "descriptor_exhaustions",
            "Accepts and segment opens that failed for want of a file descriptor (EMFILE, ENFILE)",
            m.descriptor_exhaustions.clone(),
        );
        registry.register(
            "descriptors_max",
            "The open-files limit (RLIMIT_NOFILE) logferry runs with",
            m.descriptors_max.clone(),
        );
        registry.register(
            "loop_iteration_seconds",
            "Event loop work per iteration (excluding the wait in poll)",
            m.loop_iteration_seconds.clone(),
        );
        registry.register("groups", "Consumer groups with live members", m.groups.clone());
        registry.register("group_members", "Members of all consumer groups", m.group_members.clone());
        registry.register(
            "offsets_sync_seconds",
            "Writing and fdatasync of one loop turn's committed offsets (responses wait for it)",
            m.offsets_sync_seconds.clone(),
        );
        registry.register("offsets_store_bytes", "Size of the committed-offsets file", m.offsets_store_bytes.clone());
        registry.register(
            "buffered_request_bytes",
            "Request bytes held for all connections (bounded by buffered_request_bytes_max)",
            m.buffered_request_bytes.clone(),
        );
        registry.register(
            "metadata_offset",
            "Next offset of the KRaft metadata log to apply (-1 without a metadata log)",
            m.metadata_offset.clone(),
        );
        registry.register(
            "metadata_commit_bound",
            "The metadata quorum's high watermark the image is held below (-1: not known, complete batches)",
            m.metadata_commit_bound.clone(),
        );
        registry.register("metadata_brokers", "Brokers registered in the metadata image", m.metadata_brokers.clone());
        registry.register(
            "metadata_partitions",
            "Partitions of the cluster in the metadata image",
            m.metadata_partitions.clone(),
        );
        registry.register(
            "metadata_records_unknown",
            "Metadata records of a type or version this build does not know (skipped)",
            m.metadata_records_unknown.clone(),
        );
        registry.register(
            "metadata_records_invalid",
            "Metadata records that did not decode (skipped)",
            m.metadata_records_invalid.clone(),
        );
        registry.register(
            "metadata_rebuilds",
            "Image rebuilds after the metadata log was truncated or replaced under the reader",
            m.metadata_rebuilds.clone(),
        );
        registry.register(
            "upstream_connected",
            "1 while the watch of the co-located broker's high watermarks runs (--upstream)",
            m.upstream_connected.clone(),
        );
        registry.register(
            "upstream_reconnects",
            "Connections to the upstream broker that ended (refused, closed, slow, bad answers)",
            m.upstream_reconnects.clone(),
        );
        registry.register(
            "upstream_fallbacks",
            "Times the upstream watch stopped and visibility fell back to the checkpoint",
            m.upstream_fallbacks.clone(),
        );
        registry.register(
            "upstream_responses",
            "Responses from the upstream broker (each one a high-watermark wake-up or a timeout)",
            m.upstream_responses.clone(),
        );
        registry.register(
            "request_memory_waits",
            "Times a connection stopped being read until request memory was released",
            m.request_memory_waits.clone(),
        );
        registry.register(
            "requests_refused_memory",
            "Connections closed because their request could never fit buffered_request_bytes_max",
            m.requests_refused_memory.clone(),
        );
        registry.register(
            "partition_exposed_end_offset",
            "Offset after the last complete, CRC-valid batch",
            m.exposed_end.clone(),
        );
        registry.register(
            "partition_unexposed_bytes",
            "Bytes in the active segment past the last complete batch (a write in progress, or a torn tail)",
            m.unexposed_bytes.clone(),
        );
        registry.register(
            "partition_visibility_lag_offsets",
            "Log end offset minus the offset consumers may read up to (the high watermark)",
            m.visibility_lag.clone(),
        );
        registry.register(
            "checkpoint_age_seconds",
            "Age of the broker's replication-offset-checkpoint, per log dir",
            m.checkpoint_age_seconds.clone(),
        );
        Metrics { registry, ..m }
    }

    pub fn request(&self, api: &str, version: i16) {
        self.requests.get_or_create(&vec![("api".into(), api.into()), ("version".into(), version.to_string())]).inc();
    }

    pub fn error(&self, code: i16) {
        self.errors.get_or_create(&vec![("code".into(), code.to_string())]).inc();
    }

    pub fn sent(&self, sent: crate::send::Sent) {
        if sent.file_bytes > 0 {
            self.sent_bytes.get_or_create(&vec![("path".into(), "sendfile".into())]).inc_by(sent.file_bytes);
        }
        if sent.mem_bytes > 0 {
            self.sent_bytes.get_or_create(&vec![("path".into(), "copy".into())]).inc_by(sent.mem_bytes);
        }
        if sent.tls_bytes > 0 {
            self.sent_bytes.get_or_create(&vec![("path".into(), "tls".into())]).inc_by(sent.tls_bytes);
        }
    }

    /// Refreshes per-partition gauges from the view, then renders everything.
    pub fn render(&self, view: &LogView, visibility: crate::protocol::Visibility) -> String {
        for (tp, p) in &view.partitions {
            let labels = vec![("topic".into(), tp.topic.clone()), ("partition".into(), tp.partition.to_string())];
            let end = p.log_end_offset();
            self.exposed_end.get_or_create(&labels).set(end);
            let unexposed = p
                .segments
                .values()
                .next_back()
                .map_or(0, |s| s.len.saturating_sub(s.scanned.map_or(0, |x| x.end_position)));
            self.unexposed_bytes.get_or_create(&labels).set(unexposed as i64);
            let hw = crate::protocol::visible_high_watermark(p, visibility);
            self.visibility_lag.get_or_create(&labels).set(end - hw);
        }
        for d in &view.dirs {
            let age = std::fs::metadata(d.path.join("replication-offset-checkpoint"))
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .map_or(-1, |a: Duration| a.as_secs() as i64);
            self.checkpoint_age_seconds.get_or_create(&vec![("log_dir".into(), d.path.display().to_string())]).set(age);
        }
        self.open_files.set(view.cache.open_count() as i64);
        match &view.cluster {
            Some(c) => {
                self.metadata_offset.set(c.next_offset);
                self.metadata_commit_bound.set(c.commit_bound.unwrap_or(-1));
                self.metadata_brokers.set(c.image.brokers.len() as i64);
                self.metadata_partitions.set(c.image.partition_count() as i64);
                for (counter, total) in [
                    (&self.metadata_records_unknown, c.stats.records_unknown),
                    (&self.metadata_records_invalid, c.stats.records_invalid),
                    (&self.metadata_rebuilds, c.stats.rebuilds),
                ] {
                    counter.inc_by(total.saturating_sub(counter.get()));
                }
            }
            None => {
                self.metadata_offset.set(-1);
            }
        }
        let mut out = String::new();
        if encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

/// What an HTTP request to the metrics listener asks for.
#[derive(Debug, PartialEq, Eq)]
pub enum HttpAsk {
    Incomplete,
    Metrics,
    Health,
    NotFound,
    Bad,
}

/// Parses a (possibly partial) HTTP/1.x request.
pub fn parse_http(buf: &[u8]) -> HttpAsk {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut req = httparse::Request::new(&mut headers);
    match req.parse(buf) {
        Ok(httparse::Status::Partial) if buf.len() < METRICS_REQUEST_BYTES_MAX => HttpAsk::Incomplete,
        Ok(httparse::Status::Partial) | Err(_) => HttpAsk::Bad,
        Ok(httparse::Status::Complete(_)) => match (req.method, req.path.map(|p| p.split('?').next().unwrap_or(p))) {
            (Some("GET"), Some("/metrics")) => HttpAsk::Metrics,
            (Some("GET"), Some("/healthz")) => HttpAsk::Health,
            _ => HttpAsk::NotFound,
        },
    }
}

/// A whole HTTP/1.1 response that closes the connection.
pub fn http_response(status: &str, content_type: &str, body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_requests() {
        assert_eq!(parse_http(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"), HttpAsk::Metrics);
        assert_eq!(parse_http(b"GET /healthz HTTP/1.0\r\n\r\n"), HttpAsk::Health);
        assert_eq!(parse_http(b"GET /metrics HTTP/1.1\r\nHost"), HttpAsk::Incomplete);
        assert_eq!(parse_http(b"POST /metrics HTTP/1.1\r\n\r\n"), HttpAsk::NotFound);
        assert_eq!(parse_http(b"\x00\x01garbage\r\n\r\n"), HttpAsk::Bad);
        assert_eq!(parse_http(&vec![b'a'; METRICS_REQUEST_BYTES_MAX + 1]), HttpAsk::Bad);
    }

    #[test]
    fn renders_open_metrics_text() {
        let m = Metrics::new();
        m.request("Fetch", 12);
        m.error(1);
        m.sent(crate::send::Sent { mem_bytes: 20, file_bytes: 100, tls_bytes: 0 });
        m.sent(crate::send::Sent { mem_bytes: 0, file_bytes: 0, tls_bytes: 7 });
        let d = tempfile::tempdir().unwrap();
        let view = LogView::open(&[d.path().to_path_buf()], 4).unwrap();
        let text = m.render(&view, crate::protocol::Visibility::LogEnd);
        assert!(text.contains("logferry_requests_total{api=\"Fetch\",version=\"12\"} 1"), "{text}");
        assert!(text.contains("logferry_sent_bytes_total{path=\"sendfile\"} 100"));
        assert!(text.contains("logferry_sent_bytes_total{path=\"tls\"} 7"), "{text}");
        assert!(text.contains("logferry_response_errors_total{code=\"1\"} 1"));
        assert!(text.ends_with("# EOF\n"));
    }
}
