package logferry.harness;

import java.io.PrintStream;
import java.io.FileOutputStream;
import java.io.FileDescriptor;
import java.time.Duration;
import java.util.List;
import java.util.Properties;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.common.errors.WakeupException;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;

/**
 * A Java group member of the harness: subscribes to TOPIC in GROUP (classic protocol, the
 * cooperative-sticky assignor, auto commit every second, 6 s session; or, with the environment
 * variable LOGFERRY_GROUP_PROTOCOL=consumer, KIP-848's consumer protocol), prints one canonical
 * line per record as soon as poll returns it (flushed, so a SIGKILL loses no printed line), and
 * runs until SIGTERM (then closes: final commit and LeaveGroup) or TIMEOUT_S.
 *
 * <p>Usage: {@code GroupConsume BOOTSTRAP TOPIC GROUP [TIMEOUT_S]}
 */
public final class GroupConsume {
    public static void main(String[] args) throws Exception {
        if (args.length < 3) {
            System.err.println("usage: GroupConsume BOOTSTRAP TOPIC GROUP [TIMEOUT_S]");
            System.exit(2);
        }
        Properties p = new Properties();
        p.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, args[0]);
        Canon.sasl(p);
        p.put(ConsumerConfig.GROUP_ID_CONFIG, args[2]);
        p.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
        p.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
        p.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
        p.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "true");
        p.put(ConsumerConfig.AUTO_COMMIT_INTERVAL_MS_CONFIG, "1000");
        if ("consumer".equals(System.getenv("LOGFERRY_GROUP_PROTOCOL"))) {
            // KIP-848: the coordinator sets session timeout, heartbeat interval and assignment.
            p.put(ConsumerConfig.GROUP_PROTOCOL_CONFIG, "consumer");
        } else {
            p.put(ConsumerConfig.SESSION_TIMEOUT_MS_CONFIG, "6000");
            p.put(ConsumerConfig.HEARTBEAT_INTERVAL_MS_CONFIG, "1000");
            p.put(ConsumerConfig.PARTITION_ASSIGNMENT_STRATEGY_CONFIG,
                    "org.apache.kafka.clients.consumer.CooperativeStickyAssignor");
        }
        long deadline = System.currentTimeMillis() + 1000L * (args.length > 3 ? Integer.parseInt(args[3]) : 300);
        PrintStream out = new PrintStream(new FileOutputStream(FileDescriptor.out), true);
        KafkaConsumer<byte[], byte[]> c = new KafkaConsumer<>(p);
        Thread main = Thread.currentThread();
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            c.wakeup();
            try {
                main.join(20_000);
            } catch (InterruptedException ignored) {
            }
        }));
        try {
            c.subscribe(List.of(args[1]));
            while (System.currentTimeMillis() < deadline) {
                for (ConsumerRecord<byte[], byte[]> r : c.poll(Duration.ofMillis(200))) {
                    out.println(Canon.line(r.topic(), r.partition(), r.offset(), r.timestamp(), r.key(), r.value(), r.headers()));
                }
            }
        } catch (WakeupException e) {
            // SIGTERM: fall through to close.
        } finally {
            c.close(Duration.ofSeconds(10));
        }
    }
}
