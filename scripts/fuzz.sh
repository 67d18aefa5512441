#!/usr/bin/env bash
# Coverage-guided fuzzing of every native decoder (test/fuzz/targets.mjs lists them), one
# target after another, each for MINUTES at the lowest CPU priority (the machine is shared).
#
#   scripts/fuzz.sh MINUTES [TARGET...]     fuzz (0 = just replay the corpus), then coverage
#   FUZZ_RUNS=10000000 scripts/fuzz.sh 60   also stop a target after that many inputs
#   FUZZ_SEED=1234 ...                      libFuzzer's -seed (default: random, printed)
#   FUZZ_FLAGS='...' ...                    libFuzzer flags (default -use_value_profile=1: it
#                                           found a planted one-byte overflow in 6 of 6 runs,
#                                           3 of 5 without; FUZZ_FLAGS= turns it off)
#   FUZZ_MERGE=0 ...                        do not merge new coverage into test/fuzz/corpus
#   FUZZ_COVERAGE_FUNCTIONS=1 ...           also print coverage per function
#
# Each target starts from its seeds (the fixtures captured from the kernel,
# test/fixtures/<prefix>*.hex), the committed corpus (test/fuzz/corpus/TARGET) and the
# reproducers of past findings (test/fuzz/crashes/TARGET). New inputs collect in
# tmp/fuzz/corpus/TARGET; a crash is saved as tmp/fuzz/crashes/TARGET-crash-<sha1> and makes
# the script exit 1 (copy it to test/fuzz/crashes/TARGET/ once fixed: the unit tests replay it).
# The inputs that add coverage are merged into test/fuzz/corpus/TARGET for commit. Last, line
# and branch coverage per decoder from a coverage build replaying that corpus (llvm-cov-14).
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
if [[ $# -lt 1 || ! "$1" =~ ^[0-9]+$ ]]; then
  echo "usage: scripts/fuzz.sh MINUTES [TARGET...]  (targets: $(node "$ROOT/test/fuzz/targets.mjs" list | tr '\n' ' '))" >&2
  exit 2
fi
MINUTES="$1"
shift
mapfile -t TARGETS < <(if [[ $# -gt 0 ]]; then printf '%s\n' "$@"; else node "$ROOT/test/fuzz/targets.mjs" list; fi)
SEED="${FUZZ_SEED:-$((RANDOM * 32768 + RANDOM))}"
RUNS="${FUZZ_RUNS:--1}"
# Not under build/: node-gyp rebuild empties that. tmp/ is ignored by git.
OUT="$ROOT/tmp/fuzz"
mkdir -p "$OUT/bin" "$OUT/seeds" "$OUT/crashes" "$OUT/logs"

echo "fuzz: targets ${TARGETS[*]}, ${MINUTES} min each, runs ${RUNS}, seed ${SEED}"
node "$ROOT/test/fuzz/targets.mjs" build fuzz "$OUT/bin" "${TARGETS[@]}" >/dev/null
node "$ROOT/test/fuzz/targets.mjs" seeds "$OUT/seeds" "${TARGETS[@]}"

failed=0
summary=()
for t in "${TARGETS[@]}"; do
  corpus="$OUT/corpus/$t"
  committed="$ROOT/test/fuzz/corpus/$t"
  crashes="$ROOT/test/fuzz/crashes/$t"
  mkdir -p "$corpus" "$committed" "$crashes"
  log="$OUT/logs/$t.log"
  # shellcheck disable=SC2206
  args=(${FUZZ_FLAGS--use_value_profile=1} -seed="$SEED" -print_final_stats=1 -artifact_prefix="$OUT/crashes/$t-" -max_total_time=$((MINUTES * 60)) -runs="$RUNS")
  [[ "$MINUTES" == 0 ]] && args=(-runs=0 -print_final_stats=1)
  set +e
  nice -n 19 "$OUT/bin/fuzz-$t" "${args[@]}" "$corpus" "$OUT/seeds/$t" "$committed" "$crashes" >"$log" 2>&1
  rc=$?
  set -e
  execs="$(grep -Eo 'stat::number_of_executed_units: *[0-9]+' "$log" | awk '{print $2}' | tail -1)"
  secs="$(grep -Eo 'stat::average_exec_per_sec: *[0-9]+' "$log" | awk '{print $2}' | tail -1)"
  cov="$(grep -Eo 'cov: [0-9]+ ft: [0-9]+' "$log" | tail -1)"
  wall="$(grep -Eo 'Done [0-9]+ runs in [0-9]+ second' "$log" | awk '{print $5}' | tail -1)"
  if [[ $rc -ne 0 ]]; then
    failed=1
    summary+=("$t: CRASH after ${execs:-?} inputs (exit $rc): $(grep -m1 -E 'ERROR:|FUZZ_CHECK|runtime error' "$log" || true); see $log")
  else
    summary+=("$t: ${execs:-?} inputs in ${wall:-?} s (${secs:-?}/s), no crash, ${cov:-?}")
  fi
  if [[ "${FUZZ_MERGE:-1}" != 0 && $rc -eq 0 ]]; then
    nice -n 19 "$OUT/bin/fuzz-$t" -merge=1 "$committed" "$corpus" "$OUT/seeds/$t" >>"$log" 2>&1
  fi
done

echo
printf '%s\n' "${summary[@]}"

# Coverage of each decoder by the corpus (seeds + committed corpus + reproducers).
PROFDATA="$(command -v llvm-profdata-14 || command -v llvm-profdata || true)"
LLVMCOV="$(command -v llvm-cov-14 || command -v llvm-cov || true)"
if [[ -z "$PROFDATA" || -z "$LLVMCOV" ]]; then
  echo "coverage: skipped (install llvm-14 for llvm-profdata-14 and llvm-cov-14)"
  exit "$failed"
fi
node "$ROOT/test/fuzz/targets.mjs" build coverage "$OUT/bin" "${TARGETS[@]}" >/dev/null
objects=()
files=()
rm -f "$OUT"/*.profraw
for t in "${TARGETS[@]}"; do
  LLVM_PROFILE_FILE="$OUT/$t.profraw" nice -n 19 "$OUT/bin/fuzz-$t-coverage" -runs=0 \
    "$OUT/seeds/$t" "$ROOT/test/fuzz/corpus/$t" "$ROOT/test/fuzz/crashes/$t" >/dev/null 2>&1
  objects+=(-object "$OUT/bin/fuzz-$t-coverage")
  mapfile -t -O "${#files[@]}" files < <(node "$ROOT/test/fuzz/targets.mjs" covers "$t")
done
"$PROFDATA" merge -sparse "$OUT"/*.profraw -o "$OUT/fuzz.profdata"
mapfile -t files < <(printf '%s\n' "${files[@]}" | sort -u)
echo
echo "coverage of the corpus over all targets (llvm-cov report; -show-functions for detail):"
# Every target defines LLVMFuzzerTestOneInput: llvm-cov warns that those "have mismatched data".
"$LLVMCOV" report "${objects[@]:1}" -instr-profile="$OUT/fuzz.profdata" "${files[@]}" 2> >(grep -v 'mismatched data' >&2) |
  awk 'NR > 2 && $1 != "" && $1 !~ /^-/ {
    n = split($1, p, "/"); printf "  %-20s lines %4d/%-4d (%s)  branches %4d/%-4d (%s)\n", p[n], $8 - $9, $8, $10, $11 - $12, $11, $13 }'
if [[ -n "${FUZZ_COVERAGE_FUNCTIONS:-}" ]]; then
  "$LLVMCOV" report -show-functions "${objects[@]:1}" -instr-profile="$OUT/fuzz.profdata" "${files[@]}"
fi
exit "$failed"
