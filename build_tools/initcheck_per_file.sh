#!/usr/bin/env bash
# compute-sanitizer initcheck over tests/gpu (or the files given after the
# two numbers), one pytest process per file (the whole suite in one process
# ran past the GPU machine's per-command limit). Every kernel is
# instrumented: with --kernel-name kns=lightseq, initcheck does not see the
# writes of PyTorch's kernels that fill the test inputs and reports them as
# uninitialized (seen: torch.randint targets read by our CE kernel). Each
# file gets PER_FILE seconds; no new file starts after DEADLINE seconds.
# Prints one summary line per file: rc (0 clean, 3 errors found, 124 timed
# out) and the error count.
#   build_tools/initcheck_per_file.sh [PER_FILE=240] [DEADLINE=100000] [files...]
set -uo pipefail
cd "$(dirname "$0")/.."
per_file="${1:-240}"
deadline="${2:-100000}"
shift 2 2>/dev/null || shift $#
files=("$@")
[ ${#files[@]} -eq 0 ] && files=(tests/gpu/test_*.py)
status=0
for f in "${files[@]}"; do
  if [ "$SECONDS" -ge "$deadline" ]; then
    echo "initcheck $f: not run (deadline)"
    status=1
    continue
  fi
  t0=$SECONDS
  out="$(timeout "$per_file" compute-sanitizer --tool initcheck \
    --error-exitcode 3 --print-limit 10 python3 -m pytest "$f" -q -p no:cacheprovider -x 2>&1)"
  rc=$?
  errors="$(printf '%s\n' "$out" | grep -Eo 'ERROR SUMMARY: [0-9]+' | tail -1)"
  echo "initcheck $f: rc=$rc ${errors:-no summary} ($((SECONDS - t0)) s)"
  if [ "$rc" -ne 0 ]; then
    printf '%s\n' "$out" | grep -v '^\s*$' | head -60
    status=1
  fi
done
exit $status
