#!/usr/bin/env bash
# Coverage-guided fuzzing of mixscope's parsers with cargo-fuzz (libFuzzer): the events readers,
# the mixture SPEC parser and the config loader (fuzz/fuzz_targets/). A manual tool, not part
# of CI (tests/it/fuzz.rs holds the bounded property tests CI runs).
#
#   scripts/fuzz.sh                       # every target, 60 s each
#   FUZZ_SECONDS=600 scripts/fuzz.sh events config
#
# Environment:
#   FUZZ_SECONDS      seconds per target (default 60)
#   FUZZ_SANITIZER    address (default; falls back to none when the ASan build fails) or none
#   FUZZ_ARGS         more libFuzzer flags, e.g. "-fork=1 -ignore_crashes=1" to go on past a
#                     crash and collect the distinct ones
#   CARGO_TARGET_DIR  where cargo builds (default fuzz/target)
#
# cargo-fuzz needs nightly flags (-Z...): RUSTC_BOOTSTRAP=1 lets a stable toolchain take them.
# Seeds (fuzz/seeds/<target>/) are copied into fuzz/corpus/<target>/, which the runs grow;
# crashes land in fuzz/artifacts/<target>/ (replay: cargo fuzz run <target> <file>; minimise:
# cargo fuzz tmin <target> <file>), logs in fuzz/artifacts/<target>.log. Exits nonzero when a
# target crashed.
set -euo pipefail
cd "$(dirname "$0")/.."

ALL_TARGETS=(events mixture config)
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=("${ALL_TARGETS[@]}")
seconds="${FUZZ_SECONDS:-60}"
sanitizer="${FUZZ_SANITIZER:-address}"
export RUSTC_BOOTSTRAP=1
export CARGO_TERM_COLOR=never

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "== installing cargo-fuzz"
  cargo install cargo-fuzz --locked
fi
echo "== $(cargo fuzz --version), $(rustc --version)"

# The same dependency versions as the main build (the fuzz crate's lockfile is not tracked).
[ -f fuzz/Cargo.lock ] || cp Cargo.lock fuzz/Cargo.lock

echo "== building the fuzz targets (sanitizer: $sanitizer)"
if ! cargo fuzz build --fuzz-dir fuzz --sanitizer "$sanitizer"; then
  [ "$sanitizer" != none ] || exit 1
  echo "!! the build with --sanitizer $sanitizer failed: falling back to --sanitizer none" >&2
  sanitizer=none
  cargo fuzz build --fuzz-dir fuzz --sanitizer none
fi

crashed=()
summary=()
for t in "${targets[@]}"; do
  [ -f "fuzz/fuzz_targets/$t.rs" ] || { echo "no fuzz target '$t' (have: ${ALL_TARGETS[*]})" >&2; exit 2; }
  corpus="fuzz/corpus/$t"
  artifacts="fuzz/artifacts/$t"
  log="fuzz/artifacts/$t.log"
  mkdir -p "$corpus" "$artifacts"
  if [ -d "fuzz/seeds/$t" ]; then
    cp -n fuzz/seeds/"$t"/* "$corpus"/ 2>/dev/null || true
  fi
  marker="$artifacts/.start"
  touch "$marker"
  echo "== fuzzing $t for ${seconds} s (corpus $(find "$corpus" -type f | wc -l) files; log $log)"
  start=$(date +%s)
  rc=0
  cargo fuzz run --fuzz-dir fuzz --sanitizer "$sanitizer" "$t" "$corpus" -- \
    -max_total_time="$seconds" -print_final_stats=1 -timeout=20 ${FUZZ_ARGS:-} >"$log" 2>&1 || rc=$?
  took=$(( $(date +%s) - start ))
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | tail -1 | grep -o '[0-9]*$' || true)
  size=$(find "$corpus" -type f | wc -l)
  found=$(find "$artifacts" -type f ! -name .start -newer "$marker" | head -1)
  rm -f "$marker"
  if [ "$rc" -ne 0 ] || [ -n "$found" ]; then
    crashed+=("$t")
    line="$t: CRASH after ${took} s, ${execs:-?} executions, corpus $size files, exit $rc${found:+, input $found}"
    grep -m1 -E "panicked at|ERROR: (libFuzzer|AddressSanitizer)" "$log" | sed 's/^/    /' >&2 || true
  else
    line="$t: no crash in ${took} s, ${execs:-?} executions, corpus $size files"
  fi
  echo "$line"
  summary+=("$line")
done

echo "== summary (sanitizer: $sanitizer)"
printf '%s\n' "${summary[@]}"
if [ ${#crashed[@]} -gt 0 ]; then
  echo "crashed: ${crashed[*]} (logs and inputs in fuzz/artifacts/)" >&2
  exit 1
fi
