#!/usr/bin/env bash
# Installs everything the test suite needs, idempotently: Debian packages (kcat, systemd-analyze,
# zsh and fish for the completions, man-db), cargo-deb, Python
# packages (pytest, kafka-python with its codecs, prometheus parsing later), the Kafka broker
# and tool jars plus the harness's Java programs (Maven), and the franz-go consumer (Go).
# Safe to run again; each step is skipped when its result is already there.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)

debs=()
for pair in kcat:kcat systemd-analyze:systemd zsh:zsh fish:fish man:man-db; do
  command -v "${pair%%:*}" >/dev/null 2>&1 || debs+=("${pair#*:}")
done
if [ ${#debs[@]} -gt 0 ]; then
  echo "install: ${debs[*]} (Debian)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${debs[@]}" >/dev/null
fi

# The Debian package is built with cargo-deb (tests/e2e/test_package.py).
if [ "$(cargo deb --version 2>/dev/null)" != "cargo-deb 3.8.0" ]; then
  echo "install: cargo-deb (crates)"
  cargo install -q --locked cargo-deb --version 3.8.0
fi

echo "install: Python packages"
python3 -m pip install -q --disable-pip-version-check --root-user-action=ignore \
  -r "$here/requirements.txt"

if [ ! -f "$here/target/.built" ] || [ "$here/pom.xml" -nt "$here/target/.built" ] \
   || [ -n "$(find "$here/java" -newer "$here/target/.built" -name '*.java' 2>/dev/null)" ]; then
  echo "install: Kafka broker, tools and harness programs (Maven)"
  rm -rf "$here/target/lib"
  (cd "$here" && mvn -B -q package dependency:copy-dependencies -DskipTests)
  touch "$here/target/.built"
fi

if [ ! -x "$here/target/franzconsume" ] || [ -n "$(find "$here/go" -newer "$here/target/franzconsume" 2>/dev/null)" ]; then
  echo "install: franz-go consumer (Go)"
  (cd "$here/go" && go build -o "$here/target/franzconsume" .)
fi

for tool in kcat java go python3 systemd-analyze zsh fish man cargo-deb; do
  command -v "$tool" >/dev/null || { echo "install: $tool is still missing" >&2; exit 1; }
done
python3 -c "from kafka.codec import has_snappy, has_lz4, has_zstd; assert has_snappy() and has_lz4() and has_zstd(), 'kafka-python codecs missing'"
echo "install: harness ready"
