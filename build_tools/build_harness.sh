#!/usr/bin/env bash
# Builds the pybind11 test harness (cuda/ launchers, no framework) with nvcc.
#   build_tools/build_harness.sh [out_dir] [gencode...]
# Default: build/harness, sm_90 (the GPU test machine). Extra nvcc flags: $NVCC_FLAGS.
# Toolkit: $LIGHTSEQ_TF_CUDA_HOME (default /usr/local/cuda); LIGHTSEQ_TF_WERROR=1:
# warnings in our sources are errors (CI).
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-build/harness}"
shift || true
gencode=("$@")
[ ${#gencode[@]} -eq 0 ] && gencode=(-gencode arch=compute_90,code=sm_90)
nvcc_bin="${LIGHTSEQ_TF_CUDA_HOME:-/usr/local/cuda}/bin/nvcc"
command -v "$nvcc_bin" >/dev/null || nvcc_bin=nvcc
py="${PYTHON:-python3}"
mkdir -p "$out"
# The whole-layer code (cuda/layers) needs cuBLAS: the GPU test machine's
# toolkit has it; a toolkit without it (e.g. an nvcc-only install) builds the
# kernels alone, and tests/gpu for the layers then fail by design.
cuda_home="$(dirname "$(dirname "$(command -v "$nvcc_bin")")")"
sources=(cuda/harness/*.cc cuda/kernels/*.cu)
libs=()
defines=()
if [ -f "$cuda_home/include/cublas_v2.h" ] || [ -n "${LIGHTSEQ_TF_CUBLAS_INCLUDE:-}" ]; then
  sources+=(cuda/layers/*.cc)
  libs=(-lcublas)
  [ -n "${LIGHTSEQ_TF_CUBLAS_INCLUDE:-}" ] && defines+=(-I"$LIGHTSEQ_TF_CUBLAS_INCLUDE")
else
  defines=(-DLIGHTSEQ_NO_CUBLAS)
  echo "build_harness: no cublas_v2.h under $cuda_home/include: building without cuda/layers"
fi
ext="$("$py" -c 'import sysconfig; print(sysconfig.get_config_var("EXT_SUFFIX"))')"
# One object per source, compiled in parallel (JOBS, default: every core),
# then linked: one nvcc over all sources compiles them one after another.
objs="$out/obj"
rm -rf "$objs" && mkdir -p "$objs"
werror=()
[ "${LIGHTSEQ_TF_WERROR:-0}" = 1 ] && werror=(-Werror all-warnings -Xcompiler -Werror)
# Python's and pybind11's headers are system headers: -Wall judges ours only.
# shellcheck disable=SC2046
flags=(-O3 -std=c++17 ${NVCC_FLAGS:-} "${gencode[@]}" -Xcompiler -fPIC,-Wall "${werror[@]}"
       -Icuda/include $("$py" -m pybind11 --includes | sed 's/-I/-isystem /g') "${defines[@]}")
printf '%s\n' "${sources[@]}" | xargs -P "${JOBS:-$(nproc)}" -I{} sh -c \
  'f="$1"; shift; o="$0/$(echo "$f" | tr / _).o"; "$@" -c "$f" -o "$o" || exit 255' \
  "$objs" {} "$nvcc_bin" "${flags[@]}" || { echo "build_harness: compile failed"; exit 1; }
"$nvcc_bin" "${gencode[@]}" -shared "$objs"/*.o "${libs[@]}" -o "$out/lightseq_cuda$ext"
echo "built $out/lightseq_cuda$ext"
