"""Run by build_tools/check_wheel.sh inside the fresh venv, outside the source
tree (lightseq_tf must be the venv's, not the tree's).

The installed wheel: its build info, the NeurST hook armed by its .pth, and a
Transformer encoder layer forward and backward with dropout, once as our
whole-layer op and once composed of our fused ops around TF's MatMul (same
seed, same masks: same function; float32 to 1e-5, tests/cpu's bound)."""
import os
import sys

import numpy as np
import tensorflow as tf

import lightseq_tf

assert os.path.realpath(lightseq_tf.__file__).startswith(os.path.realpath(sys.prefix) + os.sep), \
    (lightseq_tf.__file__, sys.prefix)
assert tf.sysconfig.get_build_info()["is_cuda_build"], "expected TensorFlow's GPU package"

info = lightseq_tf.build_info()
assert info["tf_version"] == tf.__version__, info
assert info["cuda_version"] and info["cuda_archs"] and info["cuda_min_driver"], info

# The .pth ran at interpreter start: the hook waits for `import neurst`.
assert any(type(f).__module__ == "lightseq_tf_neurst_hook" for f in sys.meta_path), sys.meta_path

H = 64
config = lightseq_tf.LSTransformerEncoderLayer.get_config(
    "transformer-base", max_batch_tokens=256, max_seq_len=16, hidden_size=H, intermediate_size=128,
    nhead=4, attn_prob_dropout_ratio=0.1, activation_dropout_ratio=0.1, hidden_dropout_ratio=0.1)
x = tf.random.stateless_normal([2, 16, H], [1, 2])
lengths = tf.constant([16, 9])
results = {}
for path in ("always", "never"):
    layer = lightseq_tf.LSTransformerEncoderLayer(config)
    layer.whole_layer_op = path
    layer(x, lengths=lengths)
    for i, v in enumerate(layer.trainable_weights):
        v.assign(tf.random.stateless_normal(v.shape, [7, i]) * 0.2 + (1.0 if "gamma" in v.name else 0.0))
    tf.random.set_seed(5)  # the layer draws its dropout seed from TF's global RNG
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = layer(x, lengths=lengths, training=True)
        loss = tf.reduce_sum(y * y)
    grads = tape.gradient(loss, [x] + layer.trainable_weights)
    assert all(g is not None and np.isfinite(g.numpy()).all() for g in grads)
    results[path] = [y.numpy()] + [g.numpy() for g in grads]
for a, b in zip(results["always"], results["never"]):
    err = np.abs(a - b).max() / max(np.abs(b).max(), 1e-30)
    assert err < 1e-5, err
keras = "tf_keras" if os.environ.get("TF_USE_LEGACY_KERAS") == "1" else "Keras 3"
print("wheel OK (%s): %s from %s; encoder layer fwd+bwd, whole op = composed, %d tensors"
      % (keras, info["cuda_version"], os.path.dirname(lightseq_tf.__file__), len(results["never"])))
