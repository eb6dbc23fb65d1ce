package logferry.harness;

import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.ArrayList;
import java.util.List;
import org.apache.kafka.common.header.Header;
import org.apache.kafka.common.header.Headers;

/** The canonical record line every harness client prints:
 *  {@code topic partition offset timestamp key-hex value-sha256 headers}.
 *  A null key or value prints {@code null}; no headers print {@code -};
 *  headers print as {@code keyhex=valuehex} joined by commas (null value: {@code keyhex=null}). */
final class Canon {
    private Canon() {}

    /** SASL and TLS client settings from {@code LOGFERRY_SASL=MECHANISM:USER:PASSWORD} and
     *  {@code LOGFERRY_TLS_CA=PEM} (with {@code LOGFERRY_TLS_CERT} and {@code LOGFERRY_TLS_KEY}
     *  for a client certificate); unset: PLAINTEXT. */
    static void sasl(java.util.Properties p) {
        String spec = System.getenv("LOGFERRY_SASL");
        String ca = System.getenv("LOGFERRY_TLS_CA");
        boolean sasl = spec != null && !spec.isEmpty();
        boolean tls = ca != null && !ca.isEmpty();
        if (sasl) {
            String[] f = spec.split(":", 3);
            String module = f[0].equals("PLAIN")
                ? "org.apache.kafka.common.security.plain.PlainLoginModule"
                : "org.apache.kafka.common.security.scram.ScramLoginModule";
            p.put("sasl.mechanism", f[0]);
            p.put("sasl.jaas.config", module + " required username=\"" + f[1] + "\" password=\"" + f[2] + "\";");
        }
        if (tls) {
            p.put("ssl.truststore.type", "PEM");
            p.put("ssl.truststore.location", ca);
            String cert = System.getenv("LOGFERRY_TLS_CERT");
            if (cert != null && !cert.isEmpty()) {
                try {
                    p.put("ssl.keystore.type", "PEM");
                    p.put("ssl.keystore.certificate.chain", java.nio.file.Files.readString(java.nio.file.Path.of(cert)));
                    p.put("ssl.keystore.key",
                        java.nio.file.Files.readString(java.nio.file.Path.of(System.getenv("LOGFERRY_TLS_KEY"))));
                } catch (java.io.IOException e) {
                    throw new java.io.UncheckedIOException(e);
                }
            }
        }
        if (sasl || tls) p.put("security.protocol", (sasl ? "SASL_" : "") + (tls ? "SSL" : "PLAINTEXT"));
    }

    static String hex(byte[] b) {
        if (b == null) return "null";
        StringBuilder s = new StringBuilder(b.length * 2);
        for (byte x : b) s.append(String.format("%02x", x & 0xff));
        return s.toString();
    }

    static String sha256(byte[] b) {
        if (b == null) return "null";
        try {
            return hex(MessageDigest.getInstance("SHA-256").digest(b));
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
    }

    static String headers(Headers hs) {
        List<String> parts = new ArrayList<>();
        for (Header h : hs) parts.add(hex(h.key().getBytes(StandardCharsets.UTF_8)) + "=" + hex(h.value()));
        return parts.isEmpty() ? "-" : String.join(",", parts);
    }

    static String line(String topic, int partition, long offset, long timestamp, byte[] key, byte[] value, Headers hs) {
        return topic + " " + partition + " " + offset + " " + timestamp + " " + hex(key) + " " + sha256(value) + " " + headers(hs);
    }
}
