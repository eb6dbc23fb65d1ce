package logferry.harness;

import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Properties;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;

/**
 * The Java consumer (kafka-clients, default settings) of the harness: assigns the partitions
 * of TOPIC, starts from the beginning, reads until every partition reaches its end offset as
 * seen at start, and prints one canonical line per record (see {@link Canon}).
 *
 * <p>Usage: {@code Consume BOOTSTRAP TOPIC [read_committed|read_uncommitted] [TIMEOUT_S] [START]}
 * where START is {@code beginning} (default), {@code ts:MILLIS} (first record at or after that
 * timestamp, up to the end offsets seen at start) or {@code end:N} (from the end, until N new
 * records arrived: a tailing consumer).
 */
public final class Consume {
    public static void main(String[] args) {
        if (args.length < 2) {
            System.err.println("usage: Consume BOOTSTRAP TOPIC [ISOLATION] [TIMEOUT_S]");
            System.exit(2);
        }
        Properties p = new Properties();
        p.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, args[0]);
        Canon.sasl(p);
        p.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
        p.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
        p.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
        p.put(ConsumerConfig.ISOLATION_LEVEL_CONFIG, args.length > 2 ? args[2] : "read_uncommitted");
        long timeoutMs = 1000L * (args.length > 3 ? Integer.parseInt(args[3]) : 60);
        String topic = args[1];
        String start = args.length > 4 ? args[4] : "beginning";
        try (KafkaConsumer<byte[], byte[]> c = new KafkaConsumer<>(p)) {
            List<TopicPartition> tps = new ArrayList<>();
            c.partitionsFor(topic, Duration.ofMillis(timeoutMs)).forEach(i -> tps.add(new TopicPartition(topic, i.partition())));
            c.assign(tps);
            var end = c.endOffsets(tps);
            long want = -1;
            if (start.startsWith("ts:")) {
                long ts = Long.parseLong(start.substring(3));
                java.util.Map<TopicPartition, Long> q = new java.util.HashMap<>();
                for (TopicPartition tp : tps) q.put(tp, ts);
                var found = c.offsetsForTimes(q);
                for (TopicPartition tp : tps) {
                    var o = found.get(tp);
                    c.seek(tp, o == null ? end.get(tp) : o.offset());
                }
            } else if (start.startsWith("end:")) {
                want = Long.parseLong(start.substring(4));
                c.seekToEnd(tps);
                for (TopicPartition tp : tps) c.position(tp);
                System.err.println("READY");
            } else {
                c.seekToBeginning(tps);
            }
            long deadline = System.currentTimeMillis() + timeoutMs;
            StringBuilder out = new StringBuilder();
            long got = 0;
            while (true) {
                boolean done = true;
                if (want >= 0) done = got >= want;
                else for (TopicPartition tp : tps) if (c.position(tp) < end.get(tp)) done = false;
                if (done) break;
                if (System.currentTimeMillis() > deadline) {
                    System.out.print(out);
                    System.err.println("timed out before reaching the end offsets " + end);
                    System.exit(1);
                }
                for (ConsumerRecord<byte[], byte[]> r : c.poll(Duration.ofMillis(200))) {
                    got++;
                    out.append(Canon.line(r.topic(), r.partition(), r.offset(), r.timestamp(), r.key(), r.value(), r.headers())).append('\n');
                }
            }
            System.out.print(out);
        }
    }
}
