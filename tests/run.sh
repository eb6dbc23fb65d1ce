#!/usr/bin/env bash
# The whole test suite, as CI runs it: install what the tests need, then
#   1. cargo test: unit tests, golden bytes, the tailer simulation, the committed real fixture;
#   2. the end-to-end suite (pytest): a real Kafka broker, the Java producer, and kcat, the Java
#      consumer, franz-go and kafka-python, with logferry reading the broker's live log dir.
# Every service is started and stopped by the tests themselves.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

bash tests/harness/install.sh
cargo build --release --locked
cargo test --release --locked
LOGFERRY_BIN="$root/target/release/logferry" python3 -m pytest -q -p no:cacheprovider tests/e2e "$@"
