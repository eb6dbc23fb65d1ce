// Command franzconsume is the franz-go consumer of the test harness: it assigns every partition
// of a topic from the start, reads up to the end offsets seen at start, and prints one canonical
// line per record: "topic partition offset timestamp key-hex value-sha256 headers".
//
// Usage: franzconsume BOOTSTRAP TOPIC [read_committed|read_uncommitted] [TIMEOUT_S] [START]
// START: beginning (default), ts:MILLIS (from the first record at or after that time, up to the
// end offsets seen at start), end:N (from the end until N new records arrived) or group:NAME (a
// member of consumer group NAME: subscribes, cooperative-sticky balancer, autocommit every
// second, 6 s session; prints each record as it arrives and runs until SIGTERM or the timeout).
package main

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"
)

func hexOrNull(b []byte) string {
	if b == nil {
		return "null"
	}
	return hex.EncodeToString(b)
}

func shaOrNull(b []byte) string {
	if b == nil {
		return "null"
	}
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func main() {
	if len(os.Args) < 3 {
		fmt.Fprintln(os.Stderr, "usage: franzconsume BOOTSTRAP TOPIC [ISOLATION] [TIMEOUT_S]")
		os.Exit(2)
	}
	bootstrap, topic := os.Args[1], os.Args[2]
	isolation := kgo.ReadUncommitted()
	if len(os.Args) > 3 && os.Args[3] == "read_committed" {
		isolation = kgo.ReadCommitted()
	}
	timeout := 60 * time.Second
	if len(os.Args) > 4 {
		n, err := strconv.Atoi(os.Args[4])
		if err != nil {
			fmt.Fprintln(os.Stderr, "bad timeout:", err)
			os.Exit(2)
		}
		timeout = time.Duration(n) * time.Second
	}
	start := "beginning"
	if len(os.Args) > 5 {
		start = os.Args[5]
	}
	if strings.HasPrefix(start, "group:") {
		runGroup(bootstrap, topic, start[len("group:"):], isolation, timeout)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()

	admin, err := kgo.NewClient(saslOpt(), tlsOpt(), kgo.SeedBrokers(bootstrap))
	if err != nil {
		fmt.Fprintln(os.Stderr, "client:", err)
		os.Exit(1)
	}
	adm := kadm.NewClient(admin)
	var ends kadm.ListedOffsets
	if isolation == kgo.ReadCommitted() {
		ends, err = adm.ListCommittedOffsets(ctx, topic)
	} else {
		ends, err = adm.ListEndOffsets(ctx, topic)
	}
	if err != nil || ends.Error() != nil {
		fmt.Fprintln(os.Stderr, "list end offsets:", err, ends.Error())
		os.Exit(1)
	}
	pos := map[int32]int64{}
	want := map[int32]int64{}
	assign := map[string]map[int32]kgo.Offset{topic: {}}
	wantRecords := int64(-1)
	var starts kadm.ListedOffsets
	if strings.HasPrefix(start, "ts:") {
		ms, err := strconv.ParseInt(start[3:], 10, 64)
		if err != nil {
			fmt.Fprintln(os.Stderr, "bad start:", err)
			os.Exit(2)
		}
		starts, err = adm.ListOffsetsAfterMilli(ctx, ms, topic)
		if err != nil || starts.Error() != nil {
			fmt.Fprintln(os.Stderr, "list offsets after milli:", err, starts.Error())
			os.Exit(1)
		}
	} else if strings.HasPrefix(start, "end:") {
		n, err := strconv.ParseInt(start[4:], 10, 64)
		if err != nil {
			fmt.Fprintln(os.Stderr, "bad start:", err)
			os.Exit(2)
		}
		wantRecords = n
	}
	admin.Close()
	ends.Each(func(o kadm.ListedOffset) {
		want[o.Partition] = o.Offset
		switch {
		case starts != nil:
			s, _ := starts.Lookup(topic, o.Partition)
			assign[topic][o.Partition] = kgo.NewOffset().At(s.Offset)
			pos[o.Partition] = s.Offset
		case wantRecords >= 0:
			assign[topic][o.Partition] = kgo.NewOffset().At(o.Offset)
		default:
			assign[topic][o.Partition] = kgo.NewOffset().AtStart()
		}
	})
	if wantRecords >= 0 {
		fmt.Fprintln(os.Stderr, "READY")
	}
	cl, err := kgo.NewClient(saslOpt(), tlsOpt(), kgo.SeedBrokers(bootstrap), kgo.ConsumePartitions(assign), kgo.FetchIsolationLevel(isolation),
		kgo.KeepControlRecords())
	if err != nil {
		fmt.Fprintln(os.Stderr, "client:", err)
		os.Exit(1)
	}
	defer cl.Close()
	var out strings.Builder
	got := int64(0)
	done := func() bool {
		if wantRecords >= 0 {
			return got >= wantRecords
		}
		for p, end := range want {
			if pos[p] < end {
				return false
			}
		}
		return true
	}
	for !done() {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			fmt.Print(out.String())
			fmt.Fprintln(os.Stderr, "timed out before reaching the end offsets", want, pos)
			os.Exit(1)
		}
		fs.EachError(func(t string, p int32, err error) {
			fmt.Fprintf(os.Stderr, "fetch error %s/%d: %v\n", t, p, err)
		})
		fs.EachRecord(func(r *kgo.Record) {
			pos[r.Partition] = r.Offset + 1
			if r.Attrs.IsControl() {
				return // kept only so the position passes transaction markers
			}
			got++
			out.WriteString(line(r))
		})
	}
	fmt.Print(out.String())
}

// saslOpt is the client's SASL from LOGFERRY_SASL=MECHANISM:USER:PASSWORD (unset: PLAINTEXT;
// kgo.SASL with no mechanism is a no-op).
func saslOpt() kgo.Opt {
	f := strings.SplitN(os.Getenv("LOGFERRY_SASL"), ":", 3)
	if len(f) != 3 {
		return kgo.SASL()
	}
	switch f[0] {
	case "PLAIN":
		return kgo.SASL(plain.Auth{User: f[1], Pass: f[2]}.AsMechanism())
	case "SCRAM-SHA-256":
		return kgo.SASL(scram.Auth{User: f[1], Pass: f[2]}.AsSha256Mechanism())
	case "SCRAM-SHA-512":
		return kgo.SASL(scram.Auth{User: f[1], Pass: f[2]}.AsSha512Mechanism())
	}
	fmt.Fprintf(os.Stderr, "LOGFERRY_SASL: unknown mechanism %q\n", f[0])
	os.Exit(2)
	return nil
}

// tlsOpt is the client's TLS from LOGFERRY_TLS_CA=PEM (with LOGFERRY_TLS_CERT and
// LOGFERRY_TLS_KEY for a client certificate); unset: plaintext (an empty SASL option, a no-op).
func tlsOpt() kgo.Opt {
	ca := os.Getenv("LOGFERRY_TLS_CA")
	if ca == "" {
		return kgo.SASL()
	}
	pem, err := os.ReadFile(ca)
	if err != nil {
		fmt.Fprintln(os.Stderr, "LOGFERRY_TLS_CA:", err)
		os.Exit(2)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		fmt.Fprintln(os.Stderr, "LOGFERRY_TLS_CA: no certificate in", ca)
		os.Exit(2)
	}
	cfg := &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	if cert := os.Getenv("LOGFERRY_TLS_CERT"); cert != "" {
		pair, err := tls.LoadX509KeyPair(cert, os.Getenv("LOGFERRY_TLS_KEY"))
		if err != nil {
			fmt.Fprintln(os.Stderr, "LOGFERRY_TLS_CERT:", err)
			os.Exit(2)
		}
		cfg.Certificates = []tls.Certificate{pair}
	}
	return kgo.DialTLSConfig(cfg)
}

func line(r *kgo.Record) string {
	hs := make([]string, 0, len(r.Headers))
	for _, h := range r.Headers {
		hs = append(hs, hex.EncodeToString([]byte(h.Key))+"="+hexOrNull(h.Value))
	}
	h := "-"
	if len(hs) > 0 {
		h = strings.Join(hs, ",")
	}
	return fmt.Sprintf("%s %d %d %d %s %s %s\n", r.Topic, r.Partition, r.Offset, r.Timestamp.UnixMilli(),
		hexOrNull(r.Key), shaOrNull(r.Value), h)
}

// runGroup is the group:NAME mode. Each record's line is written to stdout (unbuffered) before
// the next poll, and autocommit only commits what a poll returned, so a killed member never
// has a committed record it did not print.
func runGroup(bootstrap, topic, group string, isolation kgo.IsolationLevel, timeout time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	opts := []kgo.Opt{saslOpt(), tlsOpt(), kgo.SeedBrokers(bootstrap), kgo.ConsumerGroup(group), kgo.ConsumeTopics(topic),
		kgo.FetchIsolationLevel(isolation), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.SessionTimeout(6 * time.Second), kgo.HeartbeatInterval(time.Second),
		kgo.AutoCommitInterval(time.Second)}
	if os.Getenv("LOGFERRY_GROUP_PROTOCOL") == "consumer" {
		// KIP-848 (ConsumerGroupHeartbeat v1, the server's "uniform" assignor).
		opts = append(opts, kgo.ServerSideBalancer())
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		fmt.Fprintln(os.Stderr, "client:", err)
		os.Exit(1)
	}
	for ctx.Err() == nil {
		fs := cl.PollFetches(ctx)
		fs.EachError(func(t string, p int32, err error) {
			if ctx.Err() == nil {
				fmt.Fprintf(os.Stderr, "fetch error %s/%d: %v\n", t, p, err)
			}
		})
		fs.EachRecord(func(r *kgo.Record) {
			os.Stdout.WriteString(line(r))
		})
	}
	// Close commits what was polled and leaves the group.
	cl.Close()
}
