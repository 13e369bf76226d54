"""What TensorFlow's dispatch costs our whole-layer ops: the encoder and the
decoder layer, forward + backward, fp16, dropout 0.1, pre-LN ReLU, as
TensorFlow runs them in graph mode on the GPU, against the harness's time
for the same layer (cuda/layers called through the pybind11 module on
PyTorch's stream: the CUDA code alone) in the same call. Target (issue 16):
TF's dispatch costs <= 15 %.

TF: one tf.function per case holding a stack of K layers sharing weights
(forward chain, then its gradient: what a model's graph holds), timed
wall-clock over back-to-back calls ended by one read; per layer = / K. Also a
single layer per call (TF's per-call overhead included). Harness: as called
(CUDA events over back-to-back calls, gpu_common.median_ms) and device time
(CUDA-graph replay, gpu_common.graph_ms), in a subprocess (no PyTorch in the
TensorFlow process: two CUDA runtimes, two allocators).

    python benchmarks/tf_gpu_layers.py [--out DIR] [--profile]

--profile writes TensorFlow's profiler trace of the K-layer step to
OUT/tf_gpu_layers_profile.tar (host-side op dispatch; device kernels only
where TF finds CUPTI).
"""
import json
import os
import subprocess
import sys
import time

import tf_gpu_common as tc

# name, kind, batch, length, hidden, heads, ffn (gpu_encoder_layer / gpu_decoder_layer's sizes)
CASES = [("encoder_big", "encoder", 64, 64, 1024, 16, 4096),
         ("encoder_base", "encoder", 64, 64, 512, 8, 2048),
         ("decoder_big", "decoder", 64, 64, 1024, 16, 4096),
         ("decoder_base", "decoder", 64, 64, 512, 8, 2048)]
P = 0.1
K = 6


def harness_times(out_json):
    """Runs in the subprocess: the harness's times per case (torch + harness only)."""
    sys.path.insert(0, os.path.join(tc.ROOT, "tests", "gpu"))
    import torch

    import gpu_common as gc
    import ls_torch_layers as lt
    rows = {}
    dt = torch.float16
    for name, kind, b, length, h, heads, ff in CASES:
        x = torch.randn(b, length, h, device="cuda", dtype=dt)
        dy = torch.randn_like(x)
        lens = torch.full((b,), length, device="cuda", dtype=torch.int32)
        y, dx = torch.empty_like(x), torch.empty_like(x)
        if kind == "encoder":
            p = lt.make_params(h, ff, dt)
            layer = lt.EncoderLayer(b, length, h, heads, ff, True, "relu", dt, P, P, P)
            grads = {n: torch.empty_like(v) for n, v in p.items()}

            def call():
                layer.forward(p, x, lens, 11, out=y)
                layer.backward(p, x, lens, dy, 11, out=(dx, grads))
        else:
            p = lt.make_decoder_params(h, ff, dt)
            memory = torch.randn_like(x)
            dmem = torch.empty_like(x)
            layer = lt.DecoderLayer(b, length, length, h, heads, ff, True, "relu", dt, P, P, P)
            grads = {n: torch.empty_like(v) for n, v in p.items()}

            def call():
                layer.forward(p, x, memory, lens, 11, out=y)
                layer.backward(p, x, memory, lens, dy, 11, out=(dx, dmem, grads))
        rows[name] = {"harness_ms": gc.median_ms(call, iters=20, inner=3),
                      "harness_device_ms": gc.graph_ms(call, iters=20, inner=3),
                      "harness_device": gc.device_name()}
    with open(out_json, "w") as f:
        json.dump(rows, f)


def tf_times(profile_dir=None):
    import numpy as np
    import tensorflow as tf

    import lightseq_tf
    from lightseq_tf.ops.decoder_layer import PARAMS as DEC
    from lightseq_tf.ops.encoder_layer import PARAMS as ENC
    tf.config.experimental.enable_tensor_float_32_execution(True)  # TF's default
    rows = {}
    for name, kind, b, length, h, heads, ff in CASES:
        names = ENC if kind == "encoder" else DEC
        shapes = {"qkv_kernel": [h, 3 * h], "qkv_bias": [3 * h], "out_kernel": [h, h],
                  "q_kernel": [h, h], "kv_kernel": [h, 2 * h], "kv_bias": [2 * h],
                  "cross_out_kernel": [h, h], "ffn1_kernel": [h, ff], "ffn1_bias": [ff],
                  "ffn2_kernel": [ff, h]}
        with tf.device("/GPU:0"):
            params = {n: tf.Variable(tf.cast(tf.random.normal(shapes.get(n, [h])) * 0.05
                                             + (1.0 if "gamma" in n else 0.0), tf.float16))
                      for n in names}
            x = tf.cast(tf.random.normal([b, length, h]), tf.float16)
            memory = tf.cast(tf.random.normal([b, length, h]), tf.float16)
            lens = tf.fill([b], length)

        def layer(t, seed):
            if kind == "encoder":
                return lightseq_tf.ops.encoder_layer(t, lens, params, heads, True, "relu", P, P, P,
                                                     seed)
            return lightseq_tf.ops.decoder_layer(t, memory, lens, params, heads, True, "relu",
                                                 P, P, P, seed)

        def step_fn(depth):
            @tf.function
            def step(seed):
                with tf.GradientTape() as tape:
                    t = x
                    for i in range(depth):
                        t = layer(t, seed + 8 * i)
                    total = tf.reduce_sum(tf.cast(t, tf.float32))
                grads = tape.gradient(total, list(params.values()))
                return tf.add_n([tf.reduce_sum(tf.cast(g, tf.float32)) for g in grads])
            return step

        row = {}
        for depth, key in ((K, "tf_ms"), (1, "tf_single_call_ms")):
            step = step_fn(depth)
            with tf.device("/GPU:0"):
                for _ in range(5):
                    step(tf.constant(1, tf.int64)).numpy()
                samples = []
                for _ in range(7):
                    n = 20
                    t0 = time.perf_counter()
                    for i in range(n):
                        out = step(tf.constant(i, tf.int64))
                    out.numpy()
                    samples.append((time.perf_counter() - t0) / n / depth * 1e3)
            row[key] = float(np.median(samples))
            if profile_dir and depth == K:
                tf.profiler.experimental.start(os.path.join(profile_dir, name))
                with tf.device("/GPU:0"):
                    for i in range(5):
                        out = step(tf.constant(i, tf.int64))
                    out.numpy()
                tf.profiler.experimental.stop()
        rows[name] = row
    return rows


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "--harness-json":
        return harness_times(sys.argv[2])
    a = tc.args_with((["--profile"], dict(action="store_true")))
    device = tc.require_gpu()
    os.makedirs(a.out, exist_ok=True)
    harness_json = os.path.join(a.out, "tf_gpu_layers_harness.json")
    # PyTorch's own environment: the harness module and this folder, none of
    # the TensorFlow site's packages.
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [os.path.join(tc.ROOT, "build", "harness"), tc.HERE]))
    r = subprocess.run([sys.executable, os.path.abspath(__file__), "--harness-json", harness_json],
                       env=env, capture_output=True, text=True, timeout=600)
    if r.returncode:
        sys.exit("harness timing failed (build it: build_tools/build_harness.sh build/harness):\n"
                 + r.stdout[-2000:] + r.stderr[-3000:])
    with open(harness_json) as f:
        harness = json.load(f)
    os.remove(harness_json)
    profile_dir = os.path.join(a.out, "tf_gpu_layers_profile") if a.profile else None
    ours = tf_times(profile_dir)
    rows = []
    for name, kind, b, length, h, heads, ff in CASES:
        row = {"name": name, "dtype": "float16", "shape": [b, length, h, heads, ff],
               "tokens": b * length, "layers_per_graph": K, "device": device}
        row.update(ours[name])
        row.update(harness[name])
        row["tf_dispatch_pct"] = 100 * (row["tf_ms"] / row["harness_ms"] - 1)
        row["tf_vs_device_pct"] = 100 * (row["tf_ms"] / row["harness_device_ms"] - 1)
        rows.append(row)
    tc.write_json(rows, "tf_gpu_layers", a.out, target_dispatch_pct=15)
    cols = ["name", "tf_ms", "tf_single_call_ms", "harness_ms", "harness_device_ms",
            "tf_dispatch_pct", "tf_vs_device_pct"]
    print("# " + device)
    print(tc.table(rows, cols))
    tc.chart(rows, "tf_gpu_layers", a.out, "whole layer fwd+bwd fp16: TF graph vs harness, "
             + device, keys=["tf_ms", "harness_ms", "harness_device_ms"],
             label=lambda r: r["name"])
    if profile_dir:
        subprocess.run(["tar", "-C", a.out, "-cf", os.path.join(a.out, "tf_gpu_layers_profile.tar"),
                        "tf_gpu_layers_profile"], check=True)


if __name__ == "__main__":
    main()
