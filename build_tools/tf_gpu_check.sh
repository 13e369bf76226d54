#!/usr/bin/env bash
# TensorFlow's GPU build running our ops on the GPU test machine: the steps a
# session runs there after the staged parts have arrived
# (build_tools/tf_gpu_env.sh stage prints the whole sequence of device calls;
# `build_tools/tf_gpu_check.sh plan` prints this part of it again).
#
#   OUT=/dir build_tools/tf_gpu_check.sh STEP...
#
# Steps (each idempotent; one device call holds 10 minutes, so a call runs a
# few of them):
#   install      reassemble the parts, install TF + wheels, link the CUDA
#                libraries, check TF lists the GPU        (tf_gpu_env.sh install)
#   build        build our op library there with nvcc against that TF
#   use-so       use the carried CI-built op library instead (stage --ci-so)
#   smoke        tests/tfgpu's op files only (the quick check after use-so)
#   tests        tests/tfgpu except NeurST and the sanitizer-heavy cases
#   memcheck     compute-sanitizer memcheck over the in-process tests
#   neurst       NeurST's CLI accelerated vs native, NeurST's own tests (GPU)
#   bench-base   benchmarks/tf_gpu_neurst_train.py --model base
#   bench-big    benchmarks/tf_gpu_neurst_train.py --model big
#   bench-decode benchmarks/tf_gpu_neurst_decode.py
#   bench-layers benchmarks/tf_gpu_layers.py (builds the harness too)
# The log, the JUnit XML of each pytest step and benchmarks.tar (JSON + PNG)
# go to $OUT.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-build/tf_gpu_out}"
ROOT="${TFGPU_ROOT:-/tmp/tfgpu}"
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
log="$OUT/tf_gpu_check.log"
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
env_ready() {
  [ -f "$ROOT/env.sh" ] || { echo "no $ROOT/env.sh: run the install step first" | tee -a "$log"; exit 1; }
  # shellcheck disable=SC1091
  . "$ROOT/env.sh"
}
pytest_step() {  # pytest_step NAME ARGS...
  local name="$1"; shift
  step "$name" "$PYTHON" -m pytest tests/tfgpu -q -p no:cacheprovider -rs \
    --junitxml="$OUT/$name.xml" "$@"
}
bench() {  # bench NAME SCRIPT ARGS...
  local name="$1" script="$2"; shift 2
  mkdir -p "$OUT/bench"
  step "$name" "$PYTHON" "benchmarks/$script" --out "$OUT/bench" "$@"
  # One file back for all records (the device tool returns <= 8 files).
  tar -C "$OUT/bench" -cf "$OUT/benchmarks.tar" .
}

if [ "${1:-}" = plan ]; then
  sed -n '/^# -- plan/,/^# -- end/p' "$0" | sed 's/^# \{0,1\}//'
  exit 0
fi
[ $# -gt 0 ] || { sed -n '2,26p' "$0"; exit 2; }
{ nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader; nvcc --version | tail -1; } \
  2>&1 | tee -a "$log"
for s in "$@"; do
  case "$s" in
    install) step install build_tools/tf_gpu_env.sh install || exit 1 ;;
    build) step build build_tools/tf_gpu_env.sh build || exit 1 ;;
    use-so) step use-so build_tools/tf_gpu_env.sh use-so || exit 1 ;;
    smoke) env_ready; pytest_step smoke -m "not neurst and not slow" tests/tfgpu/test_gpu_ops.py \
             tests/tfgpu/test_gpu_whole_layers.py ;;
    tests) env_ready; pytest_step tests -m "not neurst" ;;
    memcheck)
      env_ready
      # TF's own allocator hands out pieces of one big cudaMalloc, inside which
      # memcheck sees no bounds; the stream-ordered allocator gives every
      # tensor its own allocation. Our kernels only (names contain
      # "lightseq"): TF's kernels are not ours to check, and instrumenting
      # them multiplies the run time.
      step memcheck env TF_GPU_ALLOCATOR=cuda_malloc_async compute-sanitizer --tool memcheck \
        --kernel-name kns=lightseq --error-exitcode 3 --print-limit 20 --target-processes all \
        "$PYTHON" -m pytest tests/tfgpu -q -p no:cacheprovider -x -m "not neurst and not slow" ;;
    neurst) env_ready; pytest_step neurst -m neurst ;;
    bench-base) env_ready; bench bench-base tf_gpu_neurst_train.py --model base ;;
    bench-big) env_ready; bench bench-big tf_gpu_neurst_train.py --model big ;;
    bench-decode) env_ready; bench bench-decode tf_gpu_neurst_decode.py ;;
    bench-layers)
      env_ready
      [ -d build/harness ] || step harness build_tools/build_harness.sh build/harness || exit 1
      bench bench-layers tf_gpu_layers.py ;;
    *) echo "unknown step $s" | tee -a "$log"; exit 2 ;;
  esac
done
echo "tf_gpu_check: $([ $status -eq 0 ] && echo PASS || echo FAIL)" | tee -a "$log"
exit $status

# -- plan (estimates, not measurements: nothing here has run on a GPU yet)
# After the parts (tf_gpu_env.sh stage prints those calls), with the machine
# still warm (it is given back 30 s after a call ends, and /tmp with it):
#   call A  "build_tools/tf_gpu_env.sh receive && OUT=$OUT build_tools/tf_gpu_check.sh install use-so smoke build tests"
#           unpack ~20 s, wheels ~20 s, TF's first GPU start (PTX of its kernels
#           compiled for sm_90) ~1-2 min, CI .so smoke ~1 min, nvcc build
#           (sm_90, 16 jobs) ~1 min, tests ~4 min                  [~8-9 min]
#   call B  "OUT=$OUT build_tools/tf_gpu_check.sh memcheck"                    [~6-8 min]
#   call C  "OUT=$OUT build_tools/tf_gpu_check.sh neurst"                      [~6-8 min]
# Device time: ~4 min of parts + ~23 min: one session's 30 minutes. The
# benchmarks need a second session (parts again, then):
#   call D  "... receive && OUT=$OUT build_tools/tf_gpu_check.sh install build bench-base"   [~7-9 min]
#   call E  "OUT=$OUT build_tools/tf_gpu_check.sh bench-big"                  [~8-9 min]
#   call F  "OUT=$OUT build_tools/tf_gpu_check.sh bench-decode bench-layers"  [~6-8 min]
# Each call: timeout_s=600. Bring back $OUT (log, *.xml, benchmarks.tar).
# -- end
