#!/usr/bin/env bash
# README's main job: install (as .ci/run does, unless .venv already has this
# package), then NeurST trains, decodes with beam search and scores BLEU,
# accelerated and native. Arguments go to the demo, e.g. --steps 400.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! { [ -x .venv/bin/python ] && (cd /tmp && "$OLDPWD/.venv/bin/python" -c \
       "import lightseq_tf_neurst_hook, lightseq_tf, neurst" 2>/dev/null); }; then
  . build_tools/install_env.sh
else
  # shellcheck disable=SC1091
  . .venv/bin/activate
fi
mkdir -p build && cd build
python -m lightseq_tf.integrations.neurst.demo --workdir neurst_demo "$@"
