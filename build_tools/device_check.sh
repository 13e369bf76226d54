#!/usr/bin/env bash
# The one command for the GPU test machine (no TensorFlow there): build the
# harness for sm_90, run tests/gpu, run them again under compute-sanitizer
# memcheck, racecheck, synccheck and initcheck, run the GPU benchmarks; the
# log and benchmarks.tar (JSON + PNG records, for benchmarks/results/) go to
# $OUT. The machine's per-command limit is 10 minutes, so the steps can be
# chosen: STEPS (default: all of them) and BENCH (benchmark scripts, default
# every benchmarks/gpu_*.py).
#   OUT=/some/dir [STEPS="tests memcheck"] [BENCH="gpu_decoder_layer"] build_tools/device_check.sh
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-build/device_out}"
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
log="$OUT/device_check.log"
status=0
step() {  # step NAME CMD... : run, tee into the log, remember failure
  local name="$1"; shift
  echo "=== $name: $*" | tee -a "$log"
  local t0=$SECONDS
  "$@" 2>&1 | tee -a "$log"
  local rc=${PIPESTATUS[0]}
  echo "=== $name: rc=$rc in $((SECONDS - t0)) s" | tee -a "$log"
  [ "$rc" -eq 0 ] || status=1
  return "$rc"
}

# The per-test device-memory baseline (tests/gpu/conftest.py) is checked in
# the plain run; the sanitizers' instrumentation changes first-use allocations.
sanitized() { LIGHTSEQ_NO_MEMORY_BASELINE=1 compute-sanitizer "$@"; }
steps=" ${STEPS:-tests memcheck racecheck synccheck initcheck bench} "
want() { [[ "$steps" == *" $1 "* ]]; }
{ nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader; nvcc --version | tail -1;
  python3 -c 'import torch; print("torch", torch.__version__)'; } 2>&1 | tee -a "$log"

step build build_tools/build_harness.sh build/harness || { echo "build failed"; exit 1; }
want tests && step tests python3 -m pytest tests/gpu -q -p no:cacheprovider
want memcheck && step memcheck sanitized --tool memcheck --error-exitcode 3 \
  --print-limit 20 python3 -m pytest tests/gpu -q -p no:cacheprovider -x
# racecheck and synccheck instrument our kernels only (names contain
# "lightseq"): PyTorch's own float64 reduction kernel, used by the references,
# reports hazards of its warp-synchronous shared-memory code that are not ours
# to fix. racecheck stops with an "Internal Sanitizer Error ... hardware
# exception" inside cuBLAS's sm90 half-precision GEMMs, so the whole-layer
# files run their float32 cases (and their kernel / rejection cases) under
# it; every kernel the layers call is racechecked in every dtype by its own
# tests, and memcheck runs the layer tests in full.
layer_files=(tests/gpu/test_encoder_layer.py tests/gpu/test_decoder_layer.py
             tests/gpu/test_decoder_step.py)
want racecheck && step racecheck sanitized --tool racecheck --kernel-name kns=lightseq \
  --error-exitcode 3 --print-limit 20 python3 -m pytest tests/gpu -q -p no:cacheprovider -x \
  "${layer_files[@]/#/--ignore=}" --ignore=tests/gpu/test_device_memory.py
want racecheck && step racecheck_layers sanitized --tool racecheck \
  --kernel-name kns=lightseq --error-exitcode 3 --print-limit 20 python3 -m pytest \
  "${layer_files[@]}" -q -p no:cacheprovider -x -k "float32 or kernel or reject or empty"
want synccheck && step synccheck sanitized --tool synccheck --kernel-name kns=lightseq \
  --error-exitcode 3 --print-limit 20 python3 -m pytest tests/gpu -q -p no:cacheprovider -x
want initcheck && step initcheck env LIGHTSEQ_NO_MEMORY_BASELINE=1 JOBS=9 build_tools/initcheck_per_file.sh 380
if want bench; then
  mkdir -p "$OUT/bench"
  for b in ${BENCH:-$(cd benchmarks && ls gpu_*.py | sed 's/\.py$//')}; do
    [ "$b" = gpu_common ] && continue
    step "bench $b" python3 "benchmarks/$b.py" --out "$OUT/bench"
  done
  # One file back for all JSON + PNG records (the device tool returns <= 8 files).
  tar -C "$OUT/bench" -cf "$OUT/benchmarks.tar" . && rm -rf "$OUT/bench"
fi
echo "device_check: $([ $status -eq 0 ] && echo PASS || echo FAIL)" | tee -a "$log"
exit $status
