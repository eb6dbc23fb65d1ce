"""Soak (a benchmark, not a test; issue 17): a live 3-node cluster with one logferry beside each
broker (the fleet), producers of plain, transactional, compacted and fast-retention topics, group
members of all four client stacks reading through logferry while members leave and rejoin, and
one broker restarted every few minutes. Every record each consumer receives is checked against
what the cluster's producers wrote (and, at the end, every stack's full read of every topic
through logferry against the same read from the brokers).

Reported (docs/soak.md, docs/bench-soak.png): records checked, mismatches (must be 0), and per
logferry RSS, open files and loop iteration time (mean and p99 over each 5 s sample, from the
`loop_iteration_seconds` histogram) over the run.

Run: bash benches/install.sh && python3 benches/soak.py [--minutes 20] [--consumers 20]
     [--restart-s 180] [--churn-s 20]
"""
import argparse
import datetime
import os
import platform
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "harness"))
import clients  # noqa: E402
import cluster as kcluster  # noqa: E402

STACKS = ["kcat", "java", "franz-go", "kafka-python"]
# topic -> (workload, records per round, replica assignment, configs)
TOPICS = {
    "soak-plain": ("plain", 1500, [[1, 2], [2, 3], [3, 1]], {"segment.bytes": str(1 << 20)}),
    "soak-txn": ("txn", 300, [[2, 3], [3, 1], [1, 2]], {"segment.ms": "2000"}),
    "soak-compact": ("compacted", 1000, [[3, 1], [1, 2], [2, 3]],
                     {"cleanup.policy": "compact", "segment.ms": "2000", "min.cleanable.dirty.ratio": "0.01",
                      "delete.retention.ms": "3600000", "file.delete.delay.ms": "2000"}),
    "soak-retention": ("plain", 1500, [[1, 3], [2, 1], [3, 2]],
                       {"segment.ms": "2000", "retention.ms": "20000", "file.delete.delay.ms": "2000"}),
}


def scrape(addr):
    with urllib.request.urlopen(f"http://{addr}/metrics", timeout=10) as r:
        return r.read().decode()


def loop_histogram(text):
    """(sum, count, [(le, cumulative count)]) of logferry_loop_iteration_seconds."""
    total, count, buckets = 0.0, 0, []
    for line in text.splitlines():
        if line.startswith("logferry_loop_iteration_seconds_sum"):
            total = float(line.split()[-1])
        elif line.startswith("logferry_loop_iteration_seconds_count"):
            count = int(float(line.split()[-1]))
        elif line.startswith("logferry_loop_iteration_seconds_bucket"):
            le = line.split('le="')[1].split('"')[0]
            buckets.append((float("inf") if le == "+Inf" else float(le), int(float(line.split()[-1]))))
    return total, count, buckets


def p99_between(before, after):
    """The upper bound of the bucket holding the 99th percentile of the iterations in between."""
    n = after[1] - before[1]
    if n <= 0:
        return 0.0
    prev = dict(before[2])
    for le, c in after[2]:
        if c - prev.get(le, 0) >= 0.99 * n:
            return le
    return float("inf")


def proc_stats(pid):
    with open(f"/proc/{pid}/status") as f:
        rss = next(int(l.split()[1]) * 1024 for l in f if l.startswith("VmRSS:"))
    return rss, len(os.listdir(f"/proc/{pid}/fd"))


class Producers(threading.Thread):
    """Rounds of the four workloads, in parallel, until stopped; keeps every line written
    (committed and aborted: read_uncommitted members see both)."""

    def __init__(self, bootstrap):
        super().__init__(daemon=True)
        self.bootstrap = bootstrap
        self.written = {t: set() for t in TOPICS}
        self.rounds, self.failures = 0, []
        self.done = threading.Event()

    def run(self):
        seed = 1000
        while not self.done.is_set():
            running = {}
            for topic, (workload, count, _, _) in TOPICS.items():
                seed += 1
                running[topic] = clients.Producing(self.bootstrap, workload, topic, count, seed=seed)
            for topic, p in running.items():
                try:
                    committed, aborted = p.result(timeout_s=300)
                    self.written[topic].update(committed + aborted)
                except clients.ClientError as e:
                    # (A broker restart can fail a round; what was acked before is still kept
                    # by the records the members saw being checked only against acked lines.)
                    self.failures.append(f"{topic}: {e}")
            self.rounds += 1
            self.done.wait(1.0)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--minutes", type=float, default=20)
    ap.add_argument("--consumers", type=int, default=20)
    ap.add_argument("--restart-s", type=float, default=180, help="a broker restarted this often")
    ap.add_argument("--churn-s", type=float, default=20, help="a group member leaves and rejoins this often")
    args = ap.parse_args()
    # SIGTERM (a timeout, an operator) still stops the cluster and the fleet in `finally`.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    rnd = random.Random(17)
    tmp = tempfile.mkdtemp(prefix="logferry-soak-")
    c = kcluster.Cluster(tmp)
    c.start()
    fleet = None
    members = []
    samples = []  # (t, node, rss, files, loop mean s, loop p99 s)
    deaths = []  # (stack, exit code, last stderr line) of members that exited by themselves
    producers = None
    try:
        for topic, (_, _, assignment, configs) in TOPICS.items():
            c.create_topic(topic, assignment, configs)
        fleet = kcluster.Fleet(c, tmp)
        producers = Producers(c.bootstrap)
        producers.start()
        for i in range(args.consumers):
            stack, topic = STACKS[i % 4], list(TOPICS)[(i // 4) % 4]
            via = fleet.bootstrap(1 + i % 3)
            # kafka-python's assignors (range, roundrobin: eager) share no protocol with the
            # others' cooperative-sticky; in one group the coordinator (the broker's too) refuses
            # it with INCONSISTENT_GROUP_PROTOCOL, so its members have groups of their own.
            group = f"soak-{topic}-eager" if stack == "kafka-python" else f"soak-{topic}"
            m = clients.GroupMember(stack, via, topic, group, os.path.join(tmp, f"member{i}.out"),
                                    timeout_s=int(args.minutes * 60 + 600))
            m.stack, m.topic = stack, topic
            members.append(m)
        t0 = time.monotonic()
        end = t0 + args.minutes * 60
        next_restart, next_churn, restarts, churns = t0 + args.restart_s, t0 + args.churn_s, 0, 0
        last = {n: loop_histogram(scrape(f.metrics)) for n, f in fleet.ferries.items()}
        while time.monotonic() < end:
            time.sleep(5)
            now = time.monotonic()
            for n, f in fleet.ferries.items():
                assert f.proc.poll() is None, f"logferry {n} died:\n" + "\n".join(f.log[-20:])
                h = loop_histogram(scrape(f.metrics))
                mean = (h[0] - last[n][0]) / max(1, h[1] - last[n][1])
                rss, files = proc_stats(f.proc.pid)
                samples.append((now - t0, n, rss, files, mean, p99_between(last[n], h)))
                last[n] = h
            if now >= next_churn:
                m = rnd.choice(members)
                m.stop()
                m.restart()
                churns += 1
                next_churn += args.churn_s
            if now >= next_restart:
                node = c.node(1 + restarts % 3)
                node.stop()
                node.start(timeout_s=120)
                restarts += 1
                next_restart += args.restart_s
            for m in members:
                if not m.alive():
                    tail = m.stderr_tail().strip().splitlines()
                    deaths.append((m.stack, m.proc.returncode, tail[-1][:200] if tail else ""))
                    m.restart()
        producers.done.set()
        producers.join(600)
        time.sleep(10)  # the members catch up with the last round
        for m in members:
            m.stop()

        checked, mismatches, examples = 0, 0, []
        for m in members:
            want = set(clients.expected_for(m.stack, sorted(producers.written[m.topic])))
            got = m.lines()
            bad = [l for l in got if l not in want]
            checked += len(got)
            mismatches += len(bad)
            examples += [f"{m.stack} member of {m.topic}: {l[:120]}" for l in bad[:2]]
        finals = []
        for topic in TOPICS:
            # Retention empties the fast-retention topic once writes stop; the Java, franz-go and
            # kafka-python harness readers wait for the end offsets they saw at start and would
            # hang on a partition emptied under them, so kcat alone reads it (the members of all
            # four stacks were checked on it above).
            for stack in (["kcat"] if topic == "soak-retention" else STACKS):
                via, direct, error = [], None, None
                for attempt in range(5):
                    try:
                        via = clients.consume(stack, fleet.bootstrap(1 + attempt % 3), topic, timeout_s=180)
                        # (One broker: franz-go's harness takes a single bootstrap address.)
                        direct = clients.consume(stack, c.node(1 + attempt % 3).bootstrap, topic, timeout_s=180)
                    except clients.ClientError as e:
                        error = str(e)[:300]
                        continue
                    if sorted(via) == sorted(direct):
                        break
                    time.sleep(5)  # compaction or retention ran between the two reads
                want = set(clients.expected_for(stack, sorted(producers.written[topic])))
                bad = [l for l in via if l not in want]
                equal = direct is not None and sorted(via) == sorted(direct)
                checked += len(via)
                mismatches += len(bad) + (0 if equal else 1)
                finals.append((topic, stack, len(via), equal))
                if not equal and error:
                    examples.append(f"{stack} full read of {topic} failed: {error}")
        held = {n: deleted_held(f.proc.pid, [c.node(n).log_dir]) for n, f in fleet.ferries.items()}
        report(args, samples, checked, mismatches, examples, finals, producers, restarts, churns, members, deaths,
               held)
        return 0 if mismatches == 0 else 1
    finally:
        if producers:
            producers.done.set()
        for m in members:
            if m.alive():
                m.stop()
        if fleet:
            fleet.stop()
        c.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def deleted_held(pid, dirs):
    """How many of the files process PID holds open are deleted files under DIRS."""
    roots = tuple(os.path.realpath(d).rstrip("/") + "/" for d in dirs)
    n = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except FileNotFoundError:
            continue
        n += target.endswith(" (deleted)") and target.startswith(roots)
    return n


def report(args, samples, checked, mismatches, examples, finals, producers, restarts, churns, members, deaths,
           held):
    docs = os.path.join(ROOT, "docs")
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    nodes = sorted({s[1] for s in samples})
    lines = [
        "# Soak: the fleet under a live cluster (benches/soak.py)",
        "",
        f"Run {datetime.date.today()} on {platform.node()} ({os.cpu_count()} cores, {cpu}): "
        f"`python3 benches/soak.py --minutes {args.minutes:g} --consumers {args.consumers} "
        f"--restart-s {args.restart_s:g} --churn-s {args.churn_s:g}`.",
        "",
        f"- Producer rounds: {producers.rounds} (records written: "
        + ", ".join(f"{t} {len(w)}" for t, w in producers.written.items())
        + f"); failed producer runs: {len(producers.failures)}",
        f"- Group members: {len(members)} ({', '.join(sorted({m.stack for m in members}))}), "
        f"{churns} leave/rejoin; members that exited by themselves and were restarted: {len(deaths)}"
        + "".join(f", {k} {sum(1 for d in deaths if d[0] == k)}" for k in sorted({d[0] for d in deaths}))
        + f"; broker restarts: {restarts}",
        "- Deleted files under its broker's log dir held open by each logferry at the end: "
        + ", ".join(f"logferry {n}: {k}" for n, k in sorted(held.items())),
        f"- **Records checked: {checked}; mismatches: {mismatches}**",
        "",
        "| logferry | RSS MiB first / max / last | open files first / max / last | loop mean ms (max of samples) | loop p99 ms (max of samples) |",
        "|---|---|---|---|---|",
    ]
    for n in nodes:
        s = [x for x in samples if x[1] == n]
        lines.append(
            f"| {n} | {s[0][2] >> 20} / {max(x[2] for x in s) >> 20} / {s[-1][2] >> 20} "
            f"| {s[0][3]} / {max(x[3] for x in s)} / {s[-1][3]} "
            f"| {max(x[4] for x in s) * 1e3:.3f} | {max(x[5] for x in s) * 1e3:g} |")
    lines += ["", "Final full reads through logferry against the brokers (records, equal):", ""]
    lines += [f"- {t} {stack}: {n} {'equal' if eq else 'DIFFERENT'}" for t, stack, n, eq in finals]
    if examples:
        lines += ["", "Mismatches (first ones):", ""] + [f"- `{e}`" for e in examples]
    if deaths:
        lines += ["", "Members that exited by themselves (first of each stack: exit code, last stderr line):", ""]
        for k in sorted({d[0] for d in deaths}):
            d = next(d for d in deaths if d[0] == k)
            lines.append(f"- {k}: exit {d[1]}: `{d[2]}`")
    if producers.failures:
        lines += ["", "Failed producer runs (their records are not in the written set):", ""]
        lines += [f"- {f[:200]}" for f in producers.failures[:5]]
    lines += ["", "Plot: `docs/bench-soak.png` (RSS, open files and loop p99 per logferry over the run)."]
    with open(os.path.join(docs, "soak.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))
    dat = os.path.join(docs, "soak.dat")
    with open(dat, "w") as f:
        for n in nodes:
            for t, node, rss, files, mean, p99 in samples:
                if node == n:
                    f.write(f"{t:.1f} {rss / 2**20:.1f} {files} {mean * 1e3:.4f} {min(p99, 10) * 1e3:.3f}\n")
            f.write("\n\n")
    plots = []
    for col, label in ((2, "RSS MiB"), (3, "open files"), (5, "loop p99 ms")):
        plots.append(f"set ylabel '{label}'\nplot " + ", ".join(
            f"'{dat}' index {k} using 1:{col} with lines title 'logferry {n}'" for k, n in enumerate(nodes)))
    script = (f"set terminal pngcairo size 900,900 noenhanced\nset output '{os.path.join(docs, 'bench-soak.png')}'\n"
              "set multiplot layout 3,1 title 'soak: the fleet over the run (seconds)'\nset key top left\n"
              "set yrange [0:*]\n" + "\n".join(plots) + "\nunset multiplot\n")
    subprocess.run(["gnuplot"], input=script, text=True, check=True, timeout=60)
    os.remove(dat)


if __name__ == "__main__":
    sys.exit(main())
