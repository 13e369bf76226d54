"""Whole-model training step, forward + backward (optimizer excluded: Adam is
benchmarks/gpu_adam.py), fp16, dropout 0.1, label smoothing 0.1, tied
embeddings: the library's pieces composed through the harness (embedding, 6
encoder + 6 decoder whole-layer ops, closing LayerNorms, output projection on
cuBLAS through PyTorch, fused cross-entropy) against the same model in
PyTorch eager and eager + SDPA, all in one run. Transformer-base and -big,
4096 target tokens (64 x 64, source as long).

    python3 benchmarks/gpu_transformer_model.py --out benchmarks/results
"""
import math

import torch
import torch.nn.functional as F

import gpu_common as gc
import ls_torch as lt1
import ls_torch_layers as lt
from gpu_decoder_layer import torch_layer as torch_decoder
from gpu_encoder_layer import torch_layer as torch_encoder

DT = torch.float16
P = 0.1
V = 32000
N_LAYERS = 6
CASES = [("base", 64, 64, 512, 8, 2048), ("big", 64, 64, 1024, 16, 4096)]


class Ours:
    """The model's parameters and per-layer buffers; step() = fwd + bwd."""

    def __init__(self, b, length, h, heads, ff):
        self.b, self.length, self.h, self.heads = b, length, h, heads
        self.table = (torch.randn(V, h, device="cuda") * h ** -0.5).to(DT)
        self.enc = [lt.make_params(h, ff, DT) for _ in range(N_LAYERS)]
        self.dec = [lt.make_decoder_params(h, ff, DT) for _ in range(N_LAYERS)]
        self.ln = [(torch.ones(h, device="cuda", dtype=DT), torch.zeros(h, device="cuda", dtype=DT))
                   for _ in range(2)]
        self.enc_layers = [lt.EncoderLayer(b, length, h, heads, ff, True, "relu", DT, P, P, P)
                           for _ in range(N_LAYERS)]
        self.dec_layers = [lt.DecoderLayer(b, length, length, h, heads, ff, True, "relu", DT, P,
                                           P, P) for _ in range(N_LAYERS)]
        self.src = torch.randint(3, V, (b, length), device="cuda", dtype=torch.int32)
        self.tgt = torch.randint(3, V, (b, length), device="cuda", dtype=torch.int32)
        self.lengths = torch.full((b,), length, device="cuda", dtype=torch.int32)

    def step(self):
        scale = math.sqrt(self.h)
        # Forward.
        x = lt1.embedding_fwd(self.src, self.table, scale, seed=1, rate=P)
        enc_in = [x]
        for i, (layer, p) in enumerate(zip(self.enc_layers, self.enc)):
            enc_in.append(layer.forward(p, enc_in[-1], self.lengths, 10 + i))
        memory, m_mean, m_rstd = lt1.layer_norm_fwd(enc_in[-1], *self.ln[0], 1e-6)
        y = lt1.embedding_fwd(self.tgt, self.table, scale, seed=2, rate=P)
        dec_in = [y]
        for i, (layer, p) in enumerate(zip(self.dec_layers, self.dec)):
            dec_in.append(layer.forward(p, dec_in[-1], memory, self.lengths, 30 + i))
        out, o_mean, o_rstd = lt1.layer_norm_fwd(dec_in[-1], *self.ln[1], 1e-6)
        flat = out.view(-1, self.h)
        logits = flat @ self.table.t()
        loss, nll, lse, sums = lt1.cross_entropy(logits, self.tgt.view(-1), 0.1)
        # Backward (d sum(loss) / d logits).
        ones = torch.ones_like(loss)
        dlogits = lt1.cross_entropy_bwd(ones, torch.zeros_like(nll), logits, self.tgt.view(-1),
                                        lse, nll, 0.1)
        dtable = dlogits.t() @ flat
        dout = (dlogits @ self.table).view_as(out)
        dy = lt1.layer_norm_bwd(dout, dec_in[-1], o_mean, o_rstd, self.ln[1][0])[0]
        dmemory = torch.zeros_like(memory)
        for i in reversed(range(N_LAYERS)):
            dy, dmem, _ = self.dec_layers[i].backward(self.dec[i], dec_in[i], memory,
                                                      self.lengths, dy, 30 + i)
            dmemory += dmem
        dtable += lt1.embedding_bwd(dy, self.tgt, V, DT, scale, seed=2, rate=P)
        dx = lt1.layer_norm_bwd(dmemory, enc_in[-1], m_mean, m_rstd, self.ln[0][0])[0]
        for i in reversed(range(N_LAYERS)):
            dx, _ = self.enc_layers[i].backward(self.enc[i], enc_in[i], self.lengths, dx, 10 + i)
        dtable += lt1.embedding_bwd(dx, self.src, V, DT, scale, seed=1, rate=P)
        return dtable


def torch_model(ours, sdpa):
    """The same model in PyTorch eager (autograd), the same weights."""
    req = lambda t: t.clone().requires_grad_()
    table = req(ours.table)
    enc = [{n: req(t) for n, t in p.items()} for p in ours.enc]
    dec = [{n: req(t) for n, t in p.items()} for p in ours.dec]
    ln = [(req(g), req(b)) for g, b in ours.ln]
    h, length = ours.h, ours.length
    pos = torch.arange(length, device="cuda")[:, None] * torch.exp(
        torch.arange(0, h, 2, device="cuda") * (-math.log(10000.0) / h))
    signal = torch.cat([pos.sin(), pos.cos()], -1).to(DT)
    src, tgt, heads = ours.src.long(), ours.tgt.long(), ours.heads

    def step():
        x = F.dropout(F.embedding(src, table) * math.sqrt(h) + signal, P)
        for p in enc:
            x = torch_encoder(p, x, heads, sdpa)
        memory = F.layer_norm(x, (h,), *ln[0], 1e-6)
        y = F.dropout(F.embedding(tgt, table) * math.sqrt(h) + signal, P)
        for p in dec:
            y = torch_decoder(p, y, memory, heads, sdpa)
        y = F.layer_norm(y, (h,), *ln[1], 1e-6)
        logits = y.view(-1, h) @ table.t()
        F.cross_entropy(logits.float(), tgt.view(-1), label_smoothing=0.1,  # as AMP does
                        reduction="sum").backward()

    return step


def run_case(name, b, length, h, heads, ff, profile):
    ours = Ours(b, length, h, heads, ff)
    if profile:
        gc.kernel_breakdown(ours.step, f"model {name}")
    ours_ms = gc.median_ms(ours.step, iters=10, warmup=3, inner=1)
    eager_ms = gc.median_ms(torch_model(ours, False), iters=10, warmup=3, inner=1)
    sdpa_ms = gc.median_ms(torch_model(ours, True), iters=10, warmup=3, inner=1)
    return {"name": f"transformer_{name}_train_step", "dtype": "float16",
            "shape": [b, length, h, heads, ff, N_LAYERS, V], "tokens": b * length,
            "ours_ms": ours_ms, "torch_ms": eager_ms, "torch_sdpa_ms": sdpa_ms,
            "speedup_vs_torch": eager_ms / ours_ms, "speedup_vs_sdpa": sdpa_ms / ours_ms,
            "device": gc.device_name()}


def main():
    args = gc.bench_args()
    rows = [run_case(*c, args.profile) for c in CASES]
    print(f"# {gc.device_name()}")
    print(gc.table(rows, ["name", "tokens", "ours_ms", "torch_ms", "torch_sdpa_ms",
                          "speedup_vs_torch", "speedup_vs_sdpa"]))
    gc.save(rows, "gpu_transformer_model", args.out)
    gc.chart(rows, "gpu_transformer_model", args.out,
             "Transformer training step (fwd+bwd) fp16, " + gc.device_name())


if __name__ == "__main__":
    main()
