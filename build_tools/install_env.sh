# Sourced by .ci/run and build_tools/neurst_demo.sh: a fresh virtual
# environment at .venv with the pinned dependencies (requirements/), NeurST,
# and this package built and installed against that environment's
# TensorFlow. The .pth that arms the NeurST hook comes with the install.
# Honours LIGHTSEQ_TF_CUDA (see README: Build options) and PYTHON.
t0=${t0:-$SECONDS}
rm -rf .venv build
"${PYTHON:-python3}" -m venv .venv
# shellcheck disable=SC1091
. .venv/bin/activate
python -m pip install -q --upgrade pip
python -m pip install -q -r requirements/ci.txt
python -m pip install -q --no-deps -r requirements/keras2.txt  # see keras2.txt
python -m pip install -q -r requirements/neurst.txt
echo "== deps installed in $((SECONDS - t0)) s"
mkdir -p build
if ! python -m pip install -v --no-build-isolation . > build/pip_install.log 2>&1; then
  tail -60 build/pip_install.log
  return 1 2>/dev/null || exit 1
fi
grep "lightseq_tf build" build/pip_install.log || true
(cd /tmp && python -c "import lightseq_tf; print('built:', lightseq_tf.build_info())")
echo "== op library built in $((SECONDS - t0)) s"
