//! Produce (key 0, v3–13): implemented as a refusal, because logferry is read-only.
//!
//! Why it is advertised at all: librdkafka (kcat, confluent-kafka) enables message format v2 —
//! and with it Fetch v4 and later — only when a broker advertises Produce v3 *and* Fetch v4
//! (its `MSGVER2` feature). Without Produce in ApiVersions those clients fall back to Fetch
//! v0–3, which Kafka 4 removed, and cannot consume at all. So this is a departure from "write
//! APIs are not advertised": Produce is advertised and implemented, and its implementation
//! answers every partition with TOPIC_AUTHORIZATION_FAILED (29, non-retriable in the Java,
//! librdkafka and franz-go producers, so a producer fails fast) and, from v8, the error message
//! "logferry is a read-only replica". A request with `acks = 0` expects no response; the
//! connection is closed with a log line instead, so that producer fails too.

use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse};
use kafka_protocol::protocol::StrBytes;

use super::{respond, Outcome, RequestMeta};

pub const TOPIC_AUTHORIZATION_FAILED: i16 = 29;
pub const READ_ONLY_MESSAGE: &str = "logferry is a read-only replica: produce to the Kafka broker instead";

pub fn handle(meta: &RequestMeta, req: &ProduceRequest) -> Outcome {
    if req.acks == 0 {
        return Outcome::Close("Produce with acks=0 refused: logferry is a read-only replica".into());
    }
    let topics = req
        .topic_data
        .iter()
        .map(|t| {
            let partitions = t
                .partition_data
                .iter()
                .map(|p| {
                    PartitionProduceResponse::default()
                        .with_index(p.index)
                        .with_error_code(TOPIC_AUTHORIZATION_FAILED)
                        .with_base_offset(-1)
                        .with_log_append_time_ms(-1)
                        .with_log_start_offset(-1)
                        .with_error_message(
                            (meta.api_version >= 8).then(|| StrBytes::from_static_str(READ_ONLY_MESSAGE)),
                        )
                })
                .collect();
            TopicProduceResponse::default()
                .with_name(t.name.clone())
                .with_topic_id(t.topic_id)
                .with_partition_responses(partitions)
        })
        .collect();
    log::debug!("Produce refused (client {}): read-only", meta.client_id.as_deref().unwrap_or("-"));
    respond(meta, &ProduceResponse::default().with_responses(topics))
}
