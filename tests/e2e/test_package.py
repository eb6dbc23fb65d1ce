"""The Debian package (cargo deb) installed into this machine with dpkg and removed again, and the
Grafana dashboard checked against a scrape of a running logferry.

This machine has no systemd as PID 1, so the installed unit is checked with systemd-analyze
verify (which loads it as systemd would) but not started."""
import gzip
import json
import os
import re
import shutil
import subprocess

import pytest
from prometheus_client.openmetrics.parser import text_string_to_metric_families
import urllib.request

import broker
import clients
from ferry import Ferry

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
FIXTURE = os.path.join(ROOT, "tests", "fixtures", "logdir")
DASHBOARD = os.path.join(ROOT, "contrib", "grafana", "logferry.json")


def run(*cmd, check=True, **kw):
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300, **kw)
    if check:
        assert r.returncode == 0, f"{cmd}: {r.returncode}\n{r.stdout}\n{r.stderr}"
    return r


def purge():
    run("dpkg", "--purge", "logferry", check=False)


@pytest.fixture(scope="module")
def deb(tmp_path_factory):
    out = tmp_path_factory.mktemp("deb")
    # The release binary the suite already built (tests/run.sh) is what goes in the package.
    assert os.path.exists(os.path.join(ROOT, "target", "release", "logferry"))
    run("cargo", "deb", "--no-build", "--output", str(out), cwd=ROOT)
    (path,) = [os.path.join(out, f) for f in os.listdir(out) if f.endswith(".deb")]
    return path


@pytest.fixture()
def installed(deb):
    purge()
    r = run("dpkg", "-i", deb)
    yield r
    purge()


def test_package_metadata(deb):
    info = run("dpkg-deb", "-f", deb, "Package", "Version", "Architecture", "Depends", "Description").stdout
    assert "Package: logferry" in info
    version = run(os.path.join(ROOT, "target", "release", "logferry"), "--version").stdout.split()[1]
    assert f"Version: {version}-1" in info
    assert "Depends: libc6" in info
    first_line = info.split("Description: ")[1].splitlines()[0]
    assert len(first_line) <= 80, first_line
    conffiles = run("dpkg-deb", "--ctrl-tarfile", deb)  # readable control archive
    assert conffiles.returncode == 0
    listing = run("dpkg-deb", "-c", deb).stdout
    for path in ["./usr/bin/logferry", "./etc/default/logferry", "./usr/share/man/man1/logferry.1.gz",
                 "./usr/lib/systemd/system/logferry.service",
                 "./usr/share/bash-completion/completions/logferry",
                 "./usr/share/zsh/vendor-completions/_logferry",
                 "./usr/share/fish/vendor_completions.d/logferry.fish",
                 "./usr/share/logferry/grafana/logferry.json"]:
        assert re.search(rf"\s{re.escape(path)}$", listing, re.M), f"{path} not in the package:\n{listing}"
    # Nothing world-writable, nothing setuid.
    for line in listing.splitlines():
        mode = line.split()[0]
        assert mode[8] != "w" and "s" not in mode, line


def test_installed_files_unit_and_binary(installed, tmp_path):
    st = os.stat("/usr/bin/logferry")
    assert oct(st.st_mode & 0o7777) == "0o755" and st.st_uid == 0
    assert oct(os.stat("/etc/default/logferry").st_mode & 0o777) == "0o644"
    # The installed binary is stripped (its debug info is in /usr/lib/debug) and runs.
    assert st.st_size < os.path.getsize(os.path.join(ROOT, "target", "release", "logferry"))
    v = run("/usr/bin/logferry", "--version").stdout
    assert re.fullmatch(r"logferry \d+\.\d+\.\d+\n", v), v
    conffiles = open("/var/lib/dpkg/info/logferry.conffiles").read().split()
    assert conffiles == ["/etc/default/logferry"]
    assert "LOGFERRY_ARGS=" in open("/etc/default/logferry").read()
    unit = open("/usr/lib/systemd/system/logferry.service").read()
    assert "ExecStart=/usr/bin/logferry serve $LOGFERRY_ARGS" in unit
    assert "User=kafka" in unit
    verify = run("systemd-analyze", "verify", "/usr/lib/systemd/system/logferry.service", check=False)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    # Not enabled or started by the install: the operator edits the flags first.
    assert not os.path.exists("/etc/systemd/system/multi-user.target.wants/logferry.service")
    # The postinst creates no user; it names the missing one.
    has_kafka = run("getent", "passwd", "kafka", check=False).returncode == 0
    said = installed.stdout + installed.stderr
    if has_kafka:
        assert "does not exist" not in said, said
    else:
        assert "user 'kafka' does not exist" in said, said
    assert run("getent", "passwd", "kafka", check=False).returncode == (0 if has_kafka else 2)
    # The man page renders without warnings and documents every serve flag.
    page = gzip.decompress(open("/usr/share/man/man1/logferry.1.gz", "rb").read()).decode()
    lint = run("groff", "-man", "-Tutf8", "-ww", "-z", input=page)
    assert lint.stderr == "", lint.stderr
    shown = run("man", "-P", "cat", "logferry", env={**os.environ, "MANWIDTH": "100"}).stdout
    for flag in ["--broker-config", "--metadata-log-dir", "--fetch-wait-ms-max", "--peer-port"]:
        assert flag in shown, flag


def test_completions_complete(installed):
    bash = run("bash", "-c", 'source /usr/share/bash-completion/completions/logferry\n'
               'COMP_WORDS=(logferry serve --vis); COMP_CWORD=2; _logferry; echo "${COMPREPLY[*]}"\n'
               'COMP_WORDS=(logferry serve --visibility ""); COMP_CWORD=3; _logferry; echo "${COMPREPLY[*]}"\n'
               'COMP_WORDS=(logferry ve); COMP_CWORD=1; _logferry; echo "${COMPREPLY[*]}"\n'
               'COMP_WORDS=(logferry generate ""); COMP_CWORD=2; _logferry; echo "${COMPREPLY[*]}"').stdout.splitlines()
    assert bash == ["--visibility", "auto log-end checkpoint upstream", "verify", "man bash zsh fish"], bash
    fish = run("fish", "-c", "complete -C'logferry serve --vis'; complete -C'logferry serve --groups '; complete -C'logferry ta'").stdout
    assert re.search(r"^--visibility\t", fish, re.M), fish
    assert re.search(r"^upstream\t", fish, re.M) and re.search(r"^local\t", fish, re.M), fish
    assert re.search(r"^tail\t", fish, re.M), fish
    zsh = run("zsh", "-n", "/usr/share/zsh/vendor-completions/_logferry", check=False)
    assert zsh.returncode == 0, zsh.stderr


def test_remove_keeps_the_edited_conffile_and_purge_removes_it(installed):
    with open("/etc/default/logferry", "a") as f:
        f.write("# edited by the operator\n")
    run("dpkg", "--remove", "logferry")
    assert not os.path.exists("/usr/bin/logferry")
    assert not os.path.exists("/usr/lib/systemd/system/logferry.service")
    assert "# edited by the operator" in open("/etc/default/logferry").read()
    run("dpkg", "--purge", "logferry")
    assert not os.path.exists("/etc/default/logferry")


def families(addr):
    with urllib.request.urlopen(f"http://{addr}/metrics", timeout=10) as r:
        text = r.read().decode()
    return {f.name: f for f in text_string_to_metric_families(text)}


SUFFIXES = {"counter": ["_total"], "histogram": ["_bucket", "_sum", "_count"], "gauge": [""]}


def test_dashboard_names_only_metrics_a_scrape_has(tmp_path):
    dash = json.load(open(DASHBOARD))
    targets = [t for p in dash["panels"] for t in p.get("targets", [])]
    assert len(targets) >= 20
    logdir = tmp_path / "logdir"
    shutil.copytree(FIXTURE, logdir)
    port = broker.free_port()
    f = Ferry([str(logdir)], extra=["--metrics-listen", f"127.0.0.1:{port}"])
    try:
        assert len(clients.consume("kcat", f.bootstrap, "gzip")) == 300
        # An offset past the end: an OFFSET_OUT_OF_RANGE answer, so the error family has a sample.
        subprocess.run(["kcat", "-b", f.bootstrap, "-C", "-t", "gzip", "-p", "0", "-o", "1000000", "-e", "-q"],
                       capture_output=True, timeout=60)
        fams = families(f"127.0.0.1:{port}")
    finally:
        f.stop()
    named = set()
    for t in targets:
        for name in re.findall(r"\blogferry_[a-z_]+", t["expr"]):
            named.add(name)
            family = next((fam for fam in fams.values()
                           for suffix in SUFFIXES.get(fam.type, [""])
                           if fam.name + suffix == name), None)
            assert family is not None, f"{name} (in {t['expr']!r}) is in no scrape"
            # Labels the legend uses are labels the metric has (where it has samples yet).
            for label in re.findall(r"\{\{(\w+)\}\}", t["legendFormat"]):
                if label == "instance" or not family.samples:
                    continue
                assert all(label in s.labels for s in family.samples), (name, label)
    # Every family logferry exports has a panel.
    missing = [n for n, fam in fams.items()
               if not any(n + s in named for s in SUFFIXES.get(fam.type, [""]))]
    assert missing == [], f"metrics without a panel: {missing}"
    # The instance variable's query names an exported metric too.
    for var in dash["templating"]["list"]:
        q = var.get("definition", "")
        for name in re.findall(r"\blogferry_[a-z_]+", q):
            assert name in fams, q
