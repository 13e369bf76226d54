#!/usr/bin/env bash
# Checks a wheel from build_tools/make_wheel.sh the way a GPU user installs it:
# a fresh virtual environment holding only TensorFlow's GPU package
# (`tensorflow`, not -cpu) and tf_keras, then the wheel; outside the source
# tree: import, the recorded build info, a whole Transformer layer forward and
# backward under Keras 3 and tf_keras, the NeurST hook armed by the .pth.
#   build_tools/check_wheel.sh dist/lightseq_tf-*.whl [venv_dir]
# On a machine without a GPU (ours) TensorFlow runs the CPU twins; the GPU
# kernels of this wheel run in the TF GPU tests (tests/tfgpu), not here.
set -euo pipefail
wheel="$(realpath "$1")"
venv="$(realpath -m "${2:-build/wheel_check}")"
here="$(cd "$(dirname "$0")/.." && pwd)"
t0=$SECONDS
rm -rf "$venv"
"${PYTHON:-python3}" -m venv "$venv"
"$venv/bin/python" -m pip install -q --upgrade pip
"$venv/bin/python" -m pip install -q tensorflow==2.21.0 tf-keras==2.21.0 "$wheel"
echo "== fresh venv with tensorflow 2.21.0 + tf-keras + the wheel in $((SECONDS - t0)) s"
"$venv/bin/python" -m pip list 2>/dev/null | grep -iE "^(tensorflow|tensorflow-cpu|tf.keras|lightseq)[- ]" || true
cd "$(mktemp -d)"  # nothing of the source tree on sys.path
for legacy in 0 1; do
  TF_CPP_MIN_LOG_LEVEL=2 TF_USE_LEGACY_KERAS=$legacy "$venv/bin/python" \
    "$here/build_tools/wheel_smoke.py" || { echo "== wheel check FAILED"; exit 1; }
done
"$venv/bin/python" -c "import lightseq_tf; print(lightseq_tf.build_info())" 2>/dev/null
echo "== wheel check passed in $((SECONDS - t0)) s"
