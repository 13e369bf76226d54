"""One Adam step over a transformer-big parameter list: ours (one multi-tensor
launch per ~80 tensors) vs torch.optim.Adam with foreach=False (a loop of
per-tensor kernels), foreach=True and fused=True, and the bytes floor.

Parameters: torch.nn.Transformer(d_model=1024, nhead=16, 6 + 6 layers,
dim_feedforward=4096) plus a shared 32000 x 1024 embedding: 209.1M fp32
parameters in 185 tensors (DESIGN's anchor lists 193 tensors of the same
209M parameters).

    python3 benchmarks/gpu_adam.py --out benchmarks/results
"""

import torch

import gpu_common as gc
import ls_torch_adam as la

LR, BETAS, EPS, WD = 1e-4, (0.9, 0.98), 1e-8, 0.0  # as the DESIGN anchor: plain Adam


def transformer_big_shapes(vocab=32000, d=1024, ffn=4096, layers=6):
    """The parameter shapes of torch.nn.Transformer(d, 16 heads, 6 + 6 layers,
    ffn), in its order, plus the shared embedding."""
    attn = [(3 * d, d), (3 * d,), (d, d), (d,)]  # in_proj (q, k, v packed), out_proj
    ffn_ = [(ffn, d), (ffn,), (d, ffn), (d,)]
    norm = [(d,), (d,)]
    enc = attn + ffn_ + 2 * norm
    dec = attn + attn + ffn_ + 3 * norm
    return layers * enc + norm + layers * dec + norm + [(vocab, d)]


def randn(shapes, dtype=torch.float32, scale=1.0):
    return [torch.randn(s, device="cuda", dtype=torch.float32).mul_(scale).to(dtype)
            for s in shapes]


def ours_case(shapes, grad_dtype, model_copy, check_inf):
    p, g = randn(shapes), randn(shapes, grad_dtype, 1e-3)
    m = [torch.zeros_like(t) for t in p]
    v = [torch.zeros_like(t) for t in p]
    copies = [torch.empty(t.shape, device="cuda", dtype=grad_dtype) for t in p] \
        if model_copy else None
    flag = torch.zeros((), device="cuda")
    state = {"step": 0}

    def step():
        state["step"] += 1
        if check_inf:
            la.multi_tensor_found_inf(g, out=flag)
        la.multi_tensor_adam(p, m, v, g, LR, BETAS[0], BETAS[1], EPS, WD, state["step"],
                             adamw=False, found_inf=flag if check_inf else None, copies=copies)
    return step


def torch_case(shapes, **flags):
    params = [torch.nn.Parameter(t) for t in randn(shapes)]
    for prm, gr in zip(params, randn(shapes, scale=1e-3)):
        prm.grad = gr
    opt = torch.optim.Adam(params, lr=LR, betas=BETAS, eps=EPS, weight_decay=WD, **flags)
    return opt.step


def run(bw, profile):
    shapes = transformer_big_shapes()
    n = sum(int(torch.Size(s).numel()) for s in shapes)
    anchors = {}
    for key, flags in (("torch_loop_ms", dict(foreach=False)), ("torch_foreach_ms",
                                                                dict(foreach=True)),
                       ("torch_fused_ms", dict(fused=True))):
        fn = torch_case(shapes, **flags)
        anchors[key] = gc.median_ms(fn, iters=15, warmup=3, inner=3)
        del fn
        torch.cuda.empty_cache()
    rows = []
    # (label, grad dtype, fp16/bf16 model copy, device-side found-inf check,
    #  bytes per parameter: read p m v g, write p m v (+ copy) (+ read g again))
    for label, gdt, copy, chk, nbytes in (
            ("adam fp32 grads", torch.float32, False, False, 28),
            ("adam fp16 grads + fp16 copy + found_inf", torch.float16, True, True, 30),
            ("adam bf16 grads + bf16 copy", torch.bfloat16, True, False, 28)):
        fn = ours_case(shapes, gdt, copy, chk)
        if profile:
            gc.kernel_breakdown(fn, label, iters=5)
        ours = gc.median_ms(fn, iters=15, warmup=3, inner=3)
        del fn
        torch.cuda.empty_cache()
        floor = nbytes * n / bw * 1e3
        rows.append({"name": label, "dtype": str(gdt).replace("torch.", ""),
                     "shape": [n, len(shapes)], "ours_ms": ours,
                     "torch_ms": anchors["torch_loop_ms"], **anchors, "bytes_floor_ms": floor,
                     "speedup_vs_torch": anchors["torch_loop_ms"] / ours,
                     "x_torch_fused": ours / anchors["torch_fused_ms"],
                     "x_bytes_floor": ours / floor, "device": gc.device_name(),
                     "copy_bw_TBps": bw / 1e12})
    return rows


def main():
    args = gc.bench_args()
    bw = gc.copy_bandwidth()
    rows = run(bw, args.profile)
    print(f"# {gc.device_name()}; copy bandwidth {bw / 1e12:.2f} TB/s; torch_ms = "
          "Adam(foreach=False); anchors measured on fp32 grads")
    print(gc.table(rows, ["name", "shape", "ours_ms", "torch_loop_ms", "torch_foreach_ms",
                          "torch_fused_ms", "bytes_floor_ms", "speedup_vs_torch",
                          "x_torch_fused", "x_bytes_floor"]))
    gc.save(rows, "gpu_adam", args.out)
    gc.chart(rows, "gpu_adam", args.out, "Adam step, transformer-big params, " +
             gc.device_name())


if __name__ == "__main__":
    main()
