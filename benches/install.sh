#!/usr/bin/env bash
# What the benchmarks need beyond the test harness: gnuplot for the PNG plots.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bash "$here/../tests/harness/install.sh"
if ! command -v gnuplot >/dev/null; then
  echo "install: gnuplot (Debian)"
  apt-get update -qq
  apt-get install -y -qq gnuplot-nox >/dev/null
fi
(cd "$here/.." && cargo build --release --benches)
