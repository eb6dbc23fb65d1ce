"""Start and stop `logferry serve` for the end-to-end tests: port 0, the bound address read from
its start-up line, bounded waits, killed on every exit path."""
import atexit
import contextlib
import os
import resource
import subprocess
import tempfile
import threading

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.environ.get("LOGFERRY_BIN") or os.path.join(ROOT, "target", "release", "logferry")


class Ferry:
    def __init__(self, log_dirs, extra=(), rust_log="info", listen="127.0.0.1:0", state_dir=None, nofile=None):
        """NOFILE: the open-files limit (soft and hard) logferry runs with, if not the test's."""
        if not os.path.exists(BIN):
            raise RuntimeError(f"logferry binary missing at {BIN}: run cargo build --release")
        if state_dir is None:
            self._state = tempfile.TemporaryDirectory(prefix="logferry-state-")
            state_dir = self._state.name
        self.state_dir = state_dir
        cmd = [BIN, "serve", "--listen", listen, "--state-dir", state_dir]
        for d in log_dirs:
            cmd += ["--log-dir", d]
        cmd += list(extra)
        limit = None
        if nofile is not None:
            def limit():
                resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))
        self.proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, env={**os.environ, "RUST_LOG": rust_log},
                                     preexec_fn=limit)
        self.log = []
        # (protocol, HOST:PORT) per --listen, in order.
        self.listeners = []
        ready = threading.Event()
        self.bootstrap = None

        def read():
            for raw in self.proc.stderr:
                line = raw.decode(errors="replace").rstrip()
                self.log.append(line)
                if self.bootstrap is None and "serving on " in line:
                    # "serving on [PROTO://]HOST:PORT (advertised ..), [PROTO://]HOST:PORT (..); node .."
                    spec = line.split("serving on ")[1].split(";")[0]
                    for entry in spec.split("), "):
                        addr = entry.split()[0]
                        proto, _, hp = addr.rpartition("://")
                        self.listeners.append((proto or "PLAINTEXT", hp))
                    self.bootstrap = self.listeners[0][1]
                    ready.set()

        threading.Thread(target=read, daemon=True).start()
        atexit.register(self.stop)
        if not ready.wait(30):
            self.stop()
            raise TimeoutError("logferry serve did not print its address within 30 s:\n" + "\n".join(self.log[-20:]))

    def kill(self):
        """SIGKILL: no drain, no clean-up; what a crash looks like."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(15)
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)

    def warnings(self):
        return [l for l in self.log if " WARN " in l or " ERROR " in l]
