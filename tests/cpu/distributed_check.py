"""tf.distribute over two logical CPU devices (run as a script by
test_distributed.py: logical devices must be set before TensorFlow starts).
`mirrored` (default): MirroredStrategy. LSTransformer (whole-layer ops and composed), its fused
cross-entropy and LSAdam (its fused op once per replica) train 3 steps with the batch split across the two
replicas; the weights must equal a single-device run on the whole batch.
Then, with dropout on, the replicas draw different masks and a fixed global
seed reproduces the run. `worker OUT` (with TF_CONFIG set): one worker of a
MultiWorkerMirroredStrategy, each worker one replica; `single OUT INIT`: the
one-device reference on the whole batch from INIT's weights. Both save the
start and final weights to OUT (.npz) for the test to compare."""
import os
import sys

import numpy as np
import tensorflow as tf

if sys.argv[1:2] != ["worker"]:  # a worker is one replica on its one CPU
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lightseq_tf  # noqa: E402
from lightseq_tf.layers import _transformer  # noqa: E402

B, L, V, STEPS = 8, 6, 20, 3


def config(rate):
    return lightseq_tf.LSTransformer.get_config(
        max_batch_tokens=256, max_seq_len=16, vocab_size=V, padding_idx=0, num_encoder_layer=2,
        num_decoder_layer=2, hidden_size=32, intermediate_size=64, nhead=4,
        attn_prob_dropout_ratio=rate, activation_dropout_ratio=rate, hidden_dropout_ratio=rate,
        pre_layer_norm=True, activation_fn="relu")


def batches():
    rng = np.random.default_rng(0)
    out = []
    for _ in range(STEPS):
        src = rng.integers(3, V, (B, L)).astype(np.int32)
        src[::3, -2:] = 0  # some padding
        tgt = rng.integers(3, V, (B, L + 1)).astype(np.int32)
        tgt[1::3, -3:] = 0
        out.append((src, tgt[:, :-1], tgt[:, 1:]))
    return out


def loss_of(model, src, tin, tout, total_tokens):
    """Summed label-smoothed CE over this replica's tokens / all tokens of the
    global batch: the replicas' summed gradients are the full batch's."""
    logits = model((src, tin), training=True)
    loss, _ = model.criterion.__class__(model.config.cross_entropy(), reduction="sum")(
        logits, tout)
    return loss / total_tokens


def train(strategy, rate, init=None, seed=None):
    if seed is not None:
        tf.keras.utils.set_random_seed(seed)
    with strategy.scope():
        model = lightseq_tf.LSTransformer(config(rate))
        model((tf.ones([1, 2], tf.int32), tf.ones([1, 2], tf.int32)))
        if init is not None:
            for v, w in zip(model.weights, init):
                v.assign(w)
        opt = lightseq_tf.LSAdam(1e-2)
        # Slots before tracing (Keras cannot create them inside a replica's
        # tf.function under a strategy).
        if hasattr(opt, "build"):
            opt.build(model.trainable_variables)
        else:
            opt._create_all_weights(model.trainable_variables)
    start = [w.numpy() for w in model.weights]
    n = strategy.num_replicas_in_sync

    @tf.function
    def step(src, tin, tout, total):
        def replica(src, tin, tout):
            with tf.GradientTape() as tape:
                loss = loss_of(model, src, tin, tout, total)
            grads = tape.gradient(loss, model.trainable_variables)
            opt.apply_gradients(zip(grads, model.trainable_variables))
            return loss
        per = B // n
        shard = lambda t: strategy.experimental_distribute_values_from_function(
            lambda ctx: t[ctx.replica_id_in_sync_group * per:(ctx.replica_id_in_sync_group + 1)
                          * per])
        return strategy.reduce("SUM", strategy.run(replica, args=(shard(src), shard(tin),
                                                                    shard(tout))), axis=None)

    losses = []
    for src, tin, tout in batches():
        total = tf.constant(float(np.count_nonzero(tout)))
        args = (tf.constant(src), tf.constant(tin), tf.constant(tout), total)
        losses.append(float(step(*args)))
    graph = step.get_concrete_function(*args).graph.as_graph_def()
    ops = [n.op for n in graph.node] + [n.op for f in graph.library.function for n in f.node_def]
    assert ops.count("LightseqMultiTensorAdam") >= len(strategy.extended.worker_devices), \
        "LSAdam did not take its fused path under %s" % type(strategy).__name__
    return start, [w.numpy() for w in model.weights], losses


def save(path, start, final, losses):
    np.savez(path, losses=np.array(losses), **{"start_%d" % i: w for i, w in enumerate(start)},
             **{"final_%d" % i: w for i, w in enumerate(final)})


def main():
    if sys.argv[1:2] == ["worker"]:
        # The two workers start from the same seeded initial values (and the
        # strategy broadcasts worker 0's anyway).
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
        save(sys.argv[2], *train(strategy, 0.0, seed=11))
        print("WORKER OK", flush=True)
        return
    if sys.argv[1:2] == ["single"]:
        init = np.load(sys.argv[3])
        weights = [init["start_%d" % i]
                   for i in range(sum(f.startswith("start_") for f in init.files))]
        save(sys.argv[2], *train(tf.distribute.OneDeviceStrategy("/cpu:0"), 0.0, init=weights))
        print("SINGLE OK", flush=True)
        return
    mirrored = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    single = tf.distribute.OneDeviceStrategy("/cpu:0")
    for path in ("always", "never"):
        _transformer.TransformerLayerBase.whole_layer_op = path
        init, got, got_losses = train(mirrored, 0.0)
        _, want, want_losses = train(single, 0.0, init=init)
        np.testing.assert_allclose(got_losses, want_losses, rtol=2e-5)
        # Adam's first steps move every weight by ~lr whatever the gradient's
        # size, so weights agree to float32 rounding of the gradients.
        for a, b in zip(got, want):
            np.testing.assert_allclose(a, b, rtol=1e-4, atol=2e-5)
        print("mirrored == single device:", path, "losses", np.round(got_losses, 5), flush=True)
    from lightseq_tf.layers import _keras
    seeds = mirrored.experimental_local_results(
        tf.function(lambda: mirrored.run(_keras.draw_seed))())
    assert seeds[0].numpy() != seeds[1].numpy(), seeds  # each replica its own dropout masks
    _, a, _ = train(mirrored, 0.2, seed=5)
    _, b, _ = train(mirrored, 0.2, seed=5)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    print("dropout run reproducible under a fixed seed", flush=True)
    print("DISTRIBUTED OK")


if __name__ == "__main__":
    main()
