#!/usr/bin/env bash
# Builds the pybind11 test harness (cuda/ launchers, no framework) with nvcc.
#   build_tools/build_harness.sh [out_dir] [gencode...]
# Default: build/harness, sm_90 (the GPU test machine). Extra nvcc flags: $NVCC_FLAGS.
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
ext="$("$py" -c 'import sysconfig; print(sysconfig.get_config_var("EXT_SUFFIX"))')"
# shellcheck disable=SC2046
# shellcheck disable=SC2086
"$nvcc_bin" -O3 -std=c++17 ${NVCC_FLAGS:-} "${gencode[@]}" -shared -Xcompiler -fPIC \
  -Icuda/include $("$py" -m pybind11 --includes) \
  cuda/harness/*.cc cuda/kernels/*.cu -o "$out/lightseq_cuda$ext"
echo "built $out/lightseq_cuda$ext"
