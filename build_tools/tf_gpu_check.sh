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
# go to $OUT. The steps of one call share TFGPU_DEADLINE seconds (default
# 570: a device call is stopped at 600), so the log always says where a call
# ended.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-build/tf_gpu_out}"
ROOT="${TFGPU_ROOT:-/tmp/tfgpu}"
DEADLINE="${TFGPU_DEADLINE:-570}"
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
log="$OUT/tf_gpu_check.log"
status=0
step() {  # step NAME CMD... : run within the time left, tee into the log, remember failure
  local name="$1"; shift
  local left=$((DEADLINE - SECONDS))
  if [ "$left" -lt 30 ]; then
    echo "=== $name: not run, ${left} s left of TFGPU_DEADLINE=$DEADLINE" | tee -a "$log"
    status=1
    return 1
  fi
  echo "=== $name: $* (at most $left s)" | tee -a "$log"
  local t0=$SECONDS
  timeout -k 10 "$left" "$@" 2>&1 | tee -a "$log"
  local rc=${PIPESTATUS[0]}
  [ "$rc" -eq 124 ] && echo "=== $name: stopped at the deadline" | tee -a "$log"
  echo "=== $name: rc=$rc in $((SECONDS - t0)) s" | tee -a "$log"
  [ "$rc" -eq 0 ] || status=1
  return "$rc"
}
env_ready() {
  [ -f "$ROOT/env.sh" ] || { echo "no $ROOT/env.sh: run the install step first" | tee -a "$log"; exit 1; }
  # shellcheck disable=SC1091
  . "$ROOT/env.sh"
}
pytest_step() {  # pytest_step NAME PYTEST_ARGS...
  local name="$1"; shift
  step "$name" "$PYTHON" -m pytest -q -p no:cacheprovider -rs --durations=15 \
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
    tests) env_ready; pytest_step tests -m "not neurst" tests/tfgpu ;;
    memcheck)
      env_ready
      # TF's own allocator hands out pieces of one big cudaMalloc, inside which
      # memcheck sees no bounds; the stream-ordered allocator gives every
      # tensor its own allocation. Our kernels only (names contain
      # "lightseq"): TF's kernels are not ours to check, and instrumenting
      # them multiplies the run time.
      step memcheck env TF_GPU_ALLOCATOR=cuda_malloc_async compute-sanitizer --tool memcheck \
        --kernel-name kns=lightseq --error-exitcode 3 --print-limit 20 --target-processes all \
        "$PYTHON" -m pytest tests/tfgpu -q -p no:cacheprovider -x -m "not neurst and not slow" \
        --junitxml="$OUT/memcheck.xml" ;;
    neurst) env_ready; pytest_step neurst -m neurst tests/tfgpu ;;
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
# After the part calls that `tf_gpu_env.sh stage` prints (the last of which
# runs "install build smoke", or with stage --ci-so "install use-so smoke
# build", ~4-5 min: unpack ~20 s, wheels ~20 s, TF's first GPU start with
# the driver compiling TF's PTX for sm_90 ~1-2 min, nvcc build for sm_90
# ~1 min, smoke tests ~1 min),
# with the machine still warm (it is given back 30 s after a call ends, and
# /tmp with it), each call timeout_s=600, one right after the other:
#   A  build_tools/tf_gpu_check.sh tests        tests/tfgpu but NeurST   [~5-7 min]
#   B  build_tools/tf_gpu_check.sh memcheck     compute-sanitizer        [~6-9 min]
#   C  build_tools/tf_gpu_check.sh neurst       CLI e2e + own tests      [~5-8 min]
# ~4 min of part calls + ~25 min: one session's 30 minutes of device time.
# The benchmarks take a second session (the part calls again, the last one
# "install build"), then:
#   D  build_tools/tf_gpu_check.sh bench-base                            [~6-8 min]
#   E  build_tools/tf_gpu_check.sh bench-big    (3 NeurST runs)          [~8-9.5 min]
#   F  build_tools/tf_gpu_check.sh bench-decode bench-layers             [~7-9 min]
# What comes back: $OUT/tf_gpu_check.log, one JUnit XML per pytest step,
# benchmarks.tar (JSON + PNG for benchmarks/results/).
# -- end
