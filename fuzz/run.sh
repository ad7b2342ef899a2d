#!/usr/bin/env bash
# Runs one fuzz target under afl for SECONDS (default 3600): fuzz/run.sh TARGET [SECONDS] [OUT]
# Build first with `cargo afl build --release` in fuzz/. Findings land in OUT/default/{crashes,hangs}.
set -euo pipefail
cd "$(dirname "$0")"
target=$1 secs=${2:-3600} out=${3:-target/afl/$1}
mkdir -p "$out"
export AFL_SKIP_CPUFREQ=1 AFL_NO_AFFINITY=1 AFL_NO_UI=1 AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1 AFL_AUTORESUME=1
# A small tensor limit keeps legitimate-but-large inputs fast; the limit itself is under test.
export TINYQ_MAX_TENSOR_MB=${TINYQ_MAX_TENSOR_MB:-64}
exec cargo afl fuzz -V "$secs" -m 2048 -t 2000 -i "corpus/$target" -o "$out" "target/release/$target"
