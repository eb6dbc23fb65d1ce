package logferry.harness;

import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Random;
import java.util.concurrent.Future;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.header.internals.RecordHeaders;
import org.apache.kafka.common.serialization.ByteArraySerializer;

/**
 * Writes one harness workload to a real broker with the real Java producer and prints, for every
 * record acknowledged, its canonical line (see {@link Canon}) prefixed by {@code C } (committed or
 * plain) or {@code A } (written inside a transaction that was aborted).
 *
 * <p>Usage: {@code Produce BOOTSTRAP WORKLOAD TOPIC COUNT [SEED]} where WORKLOAD is one of
 * plain, gzip, snappy, lz4, zstd, idempotent, txn, compacted, retention, large, many.
 */
public final class Produce {
    public static void main(String[] args) throws Exception {
        if (args.length < 4) {
            System.err.println("usage: Produce BOOTSTRAP WORKLOAD TOPIC COUNT [SEED]");
            System.exit(2);
        }
        String bootstrap = args[0], workload = args[1], topic = args[2];
        int count = Integer.parseInt(args[3]);
        long seed = args.length > 4 ? Long.parseLong(args[4]) : 1L;
        createTopic(bootstrap, workload, topic);
        Properties p = new Properties();
        p.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
        p.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
        p.put(ProducerConfig.LINGER_MS_CONFIG, "5");
        p.put(ProducerConfig.ACKS_CONFIG, "all");
        switch (workload) {
            case "gzip", "snappy", "lz4", "zstd" -> p.put(ProducerConfig.COMPRESSION_TYPE_CONFIG, workload);
            case "idempotent" -> p.put(ProducerConfig.ENABLE_IDEMPOTENCE_CONFIG, "true");
            case "txn" -> p.put(ProducerConfig.TRANSACTIONAL_ID_CONFIG, "harness-" + topic);
            case "large" -> p.put(ProducerConfig.MAX_REQUEST_SIZE_CONFIG, String.valueOf(4 << 20));
            case "plain", "compacted", "retention", "many", "grouped", "wide" -> { }
            default -> {
                System.err.println("unknown workload " + workload);
                System.exit(2);
            }
        }
        Random rnd = new Random(seed);
        try (KafkaProducer<byte[], byte[]> producer = new KafkaProducer<>(p)) {
            if (workload.equals("txn")) {
                transactional(producer, bootstrap, topic, count, rnd);
            } else {
                List<Future<RecordMetadata>> acks = new ArrayList<>();
                List<ProducerRecord<byte[], byte[]>> sent = new ArrayList<>();
                int partitions = partitionsOf(workload);
                for (int i = 0; i < count; i++) {
                    ProducerRecord<byte[], byte[]> r = record(workload, topic, i, partitions, rnd);
                    sent.add(r);
                    acks.add(producer.send(r));
                    if (workload.equals("grouped") && i % 50 == 49) {
                        // Paced: the broker keeps writing while group consumers read.
                        producer.flush();
                        Thread.sleep(100);
                    }
                    if (workload.equals("compacted") && i % 500 == 499) {
                        // Let segment.ms pass so the log rolls and the cleaner has sealed
                        // segments to compact.
                        producer.flush();
                        Thread.sleep(700);
                    }
                }
                producer.flush();
                for (int i = 0; i < acks.size(); i++) print("C", sent.get(i), acks.get(i).get());
            }
        }
    }

    static int partitionsOf(String workload) {
        return switch (workload) {
            case "many" -> 100;
            // More partitions than a 256-descriptor process can hold files for.
            case "wide" -> 1000;
            case "grouped" -> 6;
            default -> 3;
        };
    }

    static ProducerRecord<byte[], byte[]> record(String workload, String topic, int i, int partitions, Random rnd) {
        byte[] key;
        byte[] value;
        switch (workload) {
            case "compacted" -> {
                key = ("key-" + (i % 50)).getBytes(StandardCharsets.UTF_8);
                value = (i % 97 == 13) ? null : randomBytes(rnd, 200 + rnd.nextInt(400));
            }
            case "large" -> {
                key = ("big-" + i).getBytes(StandardCharsets.UTF_8);
                value = randomBytes(rnd, (i % 3 == 0) ? (1536 * 1024) : 1000 + rnd.nextInt(5000));
            }
            default -> {
                key = (i % 5 == 0) ? null : ("k" + i).getBytes(StandardCharsets.UTF_8);
                // Compressible text with some randomness so codecs do real work.
                StringBuilder s = new StringBuilder();
                int n = 20 + rnd.nextInt(300);
                for (int j = 0; j < n; j++) s.append("value-").append(i).append('-').append(rnd.nextInt(10));
                value = (i % 11 == 7) ? new byte[0] : s.toString().getBytes(StandardCharsets.UTF_8);
            }
        }
        RecordHeaders hs = new RecordHeaders();
        if (i % 3 == 1) hs.add("h1", ("hv" + i).getBytes(StandardCharsets.UTF_8));
        if (i % 7 == 2) { hs.add("trace", null); hs.add("h2", new byte[] {0, 1, 2, (byte) 255}); }
        Integer partition = (key == null || workload.equals("many") || workload.equals("wide")) ? (i % partitions) : null;
        return new ProducerRecord<>(topic, partition, null, key, value, hs);
    }

    static byte[] randomBytes(Random rnd, int n) {
        byte[] b = new byte[n];
        rnd.nextBytes(b);
        return b;
    }

    static void transactional(KafkaProducer<byte[], byte[]> producer, String bootstrap, String topic, int count, Random rnd) throws Exception {
        Properties plainProps = new Properties();
        plainProps.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        plainProps.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
        plainProps.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
        try (KafkaProducer<byte[], byte[]> plain = new KafkaProducer<>(plainProps)) {
            producer.initTransactions();
            int i = 0;
            int txn = 0;
            while (i < count) {
                boolean abort = txn % 3 == 1;
                producer.beginTransaction();
                List<ProducerRecord<byte[], byte[]>> sent = new ArrayList<>();
                List<Future<RecordMetadata>> acks = new ArrayList<>();
                int n = 5 + rnd.nextInt(20);
                for (int j = 0; j < n && i < count; j++, i++) {
                    ProducerRecord<byte[], byte[]> r = record("txn", topic, i, 3, rnd);
                    sent.add(r);
                    acks.add(producer.send(r));
                }
                // Non-transactional writes interleaved with the open transaction.
                ProducerRecord<byte[], byte[]> np = record("txn", topic, i, 3, rnd);
                i++;
                RecordMetadata npm = plain.send(np).get();
                print("C", np, npm);
                producer.flush();
                List<RecordMetadata> metas = new ArrayList<>();
                for (Future<RecordMetadata> a : acks) metas.add(a.get());
                if (abort) producer.abortTransaction(); else producer.commitTransaction();
                for (int k = 0; k < sent.size(); k++) print(abort ? "A" : "C", sent.get(k), metas.get(k));
                txn++;
            }
        }
    }

    static void print(String tag, ProducerRecord<byte[], byte[]> r, RecordMetadata m) {
        System.out.println(tag + " " + Canon.line(m.topic(), m.partition(), m.offset(), m.timestamp(), r.key(), r.value(), r.headers()));
    }

    static void createTopic(String bootstrap, String workload, String topic) throws Exception {
        Properties ap = new Properties();
        ap.put("bootstrap.servers", bootstrap);
        try (Admin admin = Admin.create(ap)) {
            if (admin.listTopics().names().get().contains(topic)) return;
            int partitions = partitionsOf(workload);
            NewTopic t = new NewTopic(topic, partitions, (short) 1);
            switch (workload) {
                case "compacted" -> t.configs(Map.of("cleanup.policy", "compact", "segment.ms", "500",
                        "min.cleanable.dirty.ratio", "0.01", "delete.retention.ms", "600000"));
                case "retention" -> t.configs(Map.of("retention.bytes", String.valueOf(2 << 20), "segment.bytes", String.valueOf(1 << 20)));
                // Rolls while the transactions run, so some span segments (and the broker
                // writes a producer snapshot at each new segment base).
                case "txn" -> t.configs(Map.of("segment.ms", "300"));
                case "large" -> t.configs(Map.of("max.message.bytes", String.valueOf(4 << 20), "segment.bytes", String.valueOf(8 << 20)));
                default -> { }
            }
            admin.createTopics(List.of(t)).all().get();
            // The controller has committed the topic; wait (bounded) until the broker serves a
            // leader for every partition so the first produce requests do not race creation.
            long deadline = System.currentTimeMillis() + 60_000;
            while (true) {
                var d = admin.describeTopics(List.of(topic)).allTopicNames().get().get(topic);
                if (d.partitions().size() == partitions && d.partitions().stream().allMatch(x -> x.leader() != null && x.leader().id() >= 0)) break;
                if (System.currentTimeMillis() > deadline) throw new IllegalStateException("topic " + topic + " has no leaders after 60 s");
                Thread.sleep(100);
            }
            try (var probe = new org.apache.kafka.clients.consumer.KafkaConsumer<byte[], byte[]>(Map.of(
                    "bootstrap.servers", bootstrap,
                    "key.deserializer", org.apache.kafka.common.serialization.ByteArrayDeserializer.class.getName(),
                    "value.deserializer", org.apache.kafka.common.serialization.ByteArrayDeserializer.class.getName()))) {
                var tps = new ArrayList<org.apache.kafka.common.TopicPartition>();
                for (int i = 0; i < partitions; i++) tps.add(new org.apache.kafka.common.TopicPartition(topic, i));
                probe.endOffsets(tps, java.time.Duration.ofSeconds(60));
            }
        }
    }
}
