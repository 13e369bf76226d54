#!/usr/bin/env bash
# The wheel GPU and CPU users install, in one command:
#
#   build_tools/make_wheel.sh [out_dir]        # default dist/; prints the wheel's path
#
# Run it in a Python environment holding the TensorFlow the wheel is for
# (tensorflow or tensorflow-cpu 2.21: same C++ ABI) plus setuptools, wheel and
# requirements/wheel.txt. The op library is compiled against that TensorFlow
# with CUDA 12.4 (build_tools/cuda12_toolchain.sh, fetched once; or
# LIGHTSEQ_TF_CUDA_HOME), SASS for sm_60..sm_90 + PTX, linked with CUDA's
# static runtime: the wheel runs on R525+ drivers and on machines without CUDA.
# `pip wheel` makes the wheel, `auditwheel repair` checks its dependencies and
# symbol versions and gives it the manylinux tag they allow. TensorFlow's own
# libraries are left out of it (they come from the user's tensorflow).
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-dist}"
py="${PYTHON:-python}"
export LIGHTSEQ_TF_CUDA=1
export LIGHTSEQ_TF_CUDA_HOME="${LIGHTSEQ_TF_CUDA_HOME:-$(build_tools/cuda12_toolchain.sh)}"
raw=build/wheel_raw
rm -rf "$raw" && mkdir -p "$raw" "$out"
# Objects already compiled by an earlier build with the same commands (e.g.
# CI's pip install) are reused from build/temp.*; only the link is redone.
"$py" -m pip wheel -q --no-build-isolation --no-deps -w "$raw" . >&2
# The op library needs libtensorflow_framework.so.2 (and nothing else of
# TensorFlow's): it must stay the one the user's TensorFlow loads.
"$py" -m auditwheel repair --exclude 'libtensorflow*' -w "$out" "$raw"/*.whl >&2
wheel="$(ls -t "$out"/lightseq_tf-*manylinux*.whl | head -1)"
"$py" -m auditwheel show "$wheel" >&2
echo "$wheel"
