#!/usr/bin/env bash
# compute-sanitizer initcheck over the GPU tests of our kernels, one pytest
# process per target, JOBS targets at a time (each process is mostly host-
# bound under the sanitizer, so they share the GPU well; the whole suite in
# one process ran past the GPU machine's per-command limit).
#
# Every kernel is instrumented: with --kernel-name kns=lightseq, initcheck
# does not see the writes of PyTorch's kernels that fill the test inputs and
# reports them as uninitialized (seen: torch.randint targets read by our CE
# kernel). The targets are the tests whose kernels read no cuBLAS output:
# initcheck does not see cuBLAS's sm_90 GEMM stores and reports every later
# read of them (tests/gpu/initcheck_gemm_probe.py shows it with torch's own
# matmul), so on the whole-layer tests it is no evidence either way; memcheck
# and racecheck cover those.
#
# A target is a test file, or FILE@EXPR to run `pytest FILE -k EXPR`.
# Prints one line per target: rc (0 clean, 3 errors found, 124 timed out)
# and the error count, then the first reports of any target that failed.
#   JOBS=4 build_tools/initcheck_per_file.sh [PER_TARGET_S=240] [targets...]
set -uo pipefail
cd "$(dirname "$0")/.."
per_target="${1:-240}"
shift $(( $# > 0 ? 1 : 0 ))
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  targets=(tests/gpu/test_layer_norm.py tests/gpu/test_fused_dropout.py
           tests/gpu/test_softmax.py tests/gpu/test_heads.py tests/gpu/test_cross_entropy.py
           tests/gpu/test_embedding.py tests/gpu/test_adam.py
           "tests/gpu/test_decoder_step.py@kernel"
           "tests/gpu/test_bad_input.py@softmax or layer_norm or cross_entropy or zero_size or rejects")
fi
logs="$(mktemp -d)"

one() {  # one TARGET INDEX LOGDIR PER_TARGET
  local target="$1" i="$2" dir="$3" limit="$4" file expr t0=$SECONDS
  file="${target%%@*}"
  expr=()
  [ "$file" != "$target" ] && expr=(-k "${target#*@}")
  timeout "$limit" compute-sanitizer --tool initcheck --error-exitcode 3 --print-limit 10 \
    python3 -m pytest "$file" "${expr[@]}" -q -p no:cacheprovider -x >"$dir/$i.log" 2>&1
  local rc=$?
  local errors
  errors="$(grep -Eo 'ERROR SUMMARY: [0-9]+' "$dir/$i.log" | tail -1)"
  echo "initcheck $target: rc=$rc ${errors:-no summary} ($((SECONDS - t0)) s)" >"$dir/$i.sum"
  echo "$rc" >"$dir/$i.rc"
}
export -f one

for i in "${!targets[@]}"; do printf '%s\0%s\0' "${targets[$i]}" "$i"; done |
  xargs -0 -n 2 -P "${JOBS:-1}" bash -c 'one "$0" "$1" "'"$logs"'" "'"$per_target"'"'

status=0
for i in "${!targets[@]}"; do
  cat "$logs/$i.sum"
  if [ "$(cat "$logs/$i.rc")" -ne 0 ]; then
    grep -v '^\s*$' "$logs/$i.log" | head -60
    status=1
  fi
done
rm -rf "$logs"
exit $status
