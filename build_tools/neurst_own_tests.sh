#!/usr/bin/env bash
# NeurST's own layer, beam-search and Transformer-model tests (from its PyPI
# sdist: the wheel does not ship them), run twice on the installed NeurST:
# natively (LIGHTSEQ_TF_NEURST=0) and with our layers forced on (=1, the CPU
# twin here). Both runs must pass.
#
#   build_tools/neurst_own_tests.sh [WORKDIR]
#
# The test files are copied into one flat folder: in the sdist they sit in a
# package named `neurst` (tests/neurst/...), which would shadow the real one.
# Left out: multi_head_attention_pt_test.py (needs PyTorch and NeurST's
# PyTorch port). Our hook is armed through sitecustomize, as the installed
# .pth does; TF_USE_LEGACY_KERAS=1 because the test files import TensorFlow
# before NeurST.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
work="${1:-$(mktemp -d)}"
mkdir -p "$work/sdist" "$work/tests" "$work/site"
work="$(cd "$work" && pwd)"  # the tests run from inside it
# An sdist already in WORKDIR/sdist is used as it is (machines without an index).
[ -f "$work/sdist/neurst-0.1.2.tar.gz" ] ||
  python -m pip download -q --no-deps --no-binary :all: "neurst==0.1.2" -d "$work/sdist"
tar xzf "$work"/sdist/neurst-0.1.2.tar.gz -C "$work/sdist"
src="$work/sdist/neurst-0.1.2/tests/neurst"
find "$src/layers" "$src/models/transformer_test.py" -name '*_test.py' ! -name '*_pt_test.py' \
  -exec cp {} "$work/tests/" \;
echo "import lightseq_tf_neurst_hook; lightseq_tf_neurst_hook.install()" > "$work/site/sitecustomize.py"
pythonpath="$work/site${PYTHONPATH:+:$PYTHONPATH}"
# A source checkout built in place (no installed package): test that tree.
(cd "$work" && python -c "import lightseq_tf_neurst_hook" 2>/dev/null) || pythonpath="$pythonpath:$here"
cd "$work/tests"
for mode in 0 1; do
  echo "== NeurST's own tests, LIGHTSEQ_TF_NEURST=$mode"
  if ! TF_USE_LEGACY_KERAS=1 LIGHTSEQ_TF_NEURST=$mode PYTHONPATH="$pythonpath" \
      python -m pytest -q -p no:cacheprovider -o log_cli=true --log-cli-level=INFO . \
      > "$work/mode$mode.log" 2>&1; then
    tail -60 "$work/mode$mode.log"
    exit 1
  fi
  # what ran accelerated, then pytest's summary line
  grep -oE "lightseq_tf: Transformer.*" "$work/mode$mode.log" | sort | uniq -c || true
  tail -1 "$work/mode$mode.log"
done
