"""Memory stays flat over a long run: 2,000 training steps of a small
LSTransformer (whole-layer ops and composed) in a fresh process, RSS sampled
after warm-up; the least-squares slope must stay under 1 KiB per step (a
leak of one small tensor per op per step would be far above it)."""
import os
import subprocess
import sys

import pytest

from subprocess_env import subprocess_env

SCRIPT = r'''
import numpy as np, tensorflow as tf, sys
import lightseq_tf
from lightseq_tf.layers import _transformer
_transformer.TransformerLayerBase.whole_layer_op = sys.argv[1]
config = lightseq_tf.LSTransformer.get_config(
    max_batch_tokens=256, max_seq_len=16, vocab_size=50, padding_idx=0, num_encoder_layer=1,
    num_decoder_layer=1, hidden_size=32, intermediate_size=64, nhead=4, pre_layer_norm=True,
    activation_fn="relu", attn_prob_dropout_ratio=0.1, activation_dropout_ratio=0.1,
    hidden_dropout_ratio=0.1)
model = lightseq_tf.LSTransformer(config)
opt = lightseq_tf.LSAdam(1e-3)
rng = np.random.default_rng(0)
src = tf.constant(rng.integers(3, 50, (8, 10)), tf.int32)
tgt = tf.constant(rng.integers(3, 50, (8, 11)), tf.int32)

@tf.function
def step():
    with tf.GradientTape() as tape:
        loss = model.loss_function(tgt[:, 1:], model((src, tgt[:, :-1]), training=True))
    grads = tape.gradient(loss, model.trainable_variables)
    opt.apply_gradients(zip(grads, model.trainable_variables))
    return loss

def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096

samples = []
for i in range(2000):
    step()
    if i >= 400 and i % 50 == 0:
        samples.append((i, rss()))
x, y = np.array(samples, float).T
print("SLOPE", np.polyfit(x, y, 1)[0], "RSS_MB", y[-1] / 2**20)
'''


@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="needs Linux /proc")
@pytest.mark.parametrize("path", ["always", "never"], ids=["whole_op", "composed"])
def test_rss_is_flat_over_2000_steps(path, tmp_path):
    # Run from tmp_path: the working directory must not shadow the package.
    r = subprocess.run([sys.executable, "-c", SCRIPT, path], env=subprocess_env(), cwd=tmp_path,
                       capture_output=True,
                       text=True, timeout=600)
    line = [ln for ln in r.stdout.splitlines() if ln.startswith("SLOPE")]
    assert r.returncode == 0 and line, r.stdout[-2000:] + r.stderr[-4000:]
    slope = float(line[0].split()[1])
    assert slope < 1024, "RSS grows by %.0f bytes per step (%s)" % (slope, line[0])
