#!/usr/bin/env bash
# README's main job: install (as .ci/run does, unless .venv already has this
# package), then NeurST trains, decodes with beam search and scores BLEU,
# accelerated and native (examples/neurst/demo.py). Arguments go to the
# demo, e.g. --steps 400. Results: build/neurst_demo/results.json.
set -euo pipefail
cd "$(dirname "$0")/.."
t0=$SECONDS
if ! { [ -x .venv/bin/python ] && (cd /tmp && "$OLDPWD/.venv/bin/python" -c \
       "import lightseq_tf_neurst_hook, lightseq_tf, neurst, subword_nmt" 2>/dev/null); }; then
  . build_tools/install_env.sh
else
  # shellcheck disable=SC1091
  . .venv/bin/activate
fi
echo "== environment ready in $((SECONDS - t0)) s"
python examples/neurst/demo.py --workdir build/neurst_demo "$@"
echo "== main job done in $((SECONDS - t0)) s"
