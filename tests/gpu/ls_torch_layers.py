"""Torch-facing wrappers of the harness's whole-layer launchers."""
import torch

from ls_torch import DTYPES, _stream, lc

PARAMS = ["ln1_gamma", "ln1_beta", "qkv_kernel", "qkv_bias", "out_kernel", "out_bias",
          "ln2_gamma", "ln2_beta", "ffn1_kernel", "ffn1_bias", "ffn2_kernel", "ffn2_bias"]
ACT = {"relu": 0, "gelu": 1, "gelu_tanh": 2}


def make_params(hidden, ffn, dtype, device="cuda", scale=0.3):
    shapes = {"ln1_gamma": [hidden], "ln1_beta": [hidden], "qkv_kernel": [hidden, 3 * hidden],
              "qkv_bias": [3 * hidden], "out_kernel": [hidden, hidden], "out_bias": [hidden],
              "ln2_gamma": [hidden], "ln2_beta": [hidden], "ffn1_kernel": [hidden, ffn],
              "ffn1_bias": [ffn], "ffn2_kernel": [ffn, hidden], "ffn2_bias": [hidden]}
    out = {}
    for name in PARAMS:
        t = torch.randn(shapes[name], device=device) * scale
        if "kernel" in name:
            t = t / shapes[name][0] ** 0.5 * 3
        if "gamma" in name:
            t = t + 1.0
        out[name] = t.to(dtype)
    return out


class EncoderLayer:
    """Holds the config and the saved/workspace buffers of one layer call."""

    def __init__(self, batch, seq_len, hidden, heads, ffn, pre_ln, act, dtype,
                 attn_dropout=0.0, act_dropout=0.0, hidden_dropout=0.0, epsilon=1e-6):
        self.args = (DTYPES[dtype], batch, seq_len, hidden, heads, ffn, pre_ln, ACT[act],
                     attn_dropout, act_dropout, hidden_dropout, epsilon)
        saved, ws = lc.encoder_layer_bytes(DTYPES[dtype], batch, seq_len, hidden, heads, ffn,
                                           pre_ln)
        self.saved = torch.empty(saved, dtype=torch.uint8, device="cuda")
        self.workspace = torch.empty(ws, dtype=torch.uint8, device="cuda")

    def forward(self, params, x, lengths, seed, out=None):
        y = torch.empty_like(x) if out is None else out
        lc.encoder_layer_fwd(*self.args, [params[n].data_ptr() for n in PARAMS], x.data_ptr(),
                             lengths.data_ptr(), y.data_ptr(), seed, self.saved.data_ptr(),
                             self.workspace.data_ptr(), _stream())
        return y

    def backward(self, params, x, lengths, dy, seed, out=None):
        dx = torch.empty_like(x) if out is None else out[0]
        grads = {n: torch.empty_like(p) for n, p in params.items()} if out is None else out[1]
        lc.encoder_layer_bwd(*self.args, [params[n].data_ptr() for n in PARAMS], x.data_ptr(),
                             lengths.data_ptr(), dy.data_ptr(), dx.data_ptr(),
                             [grads[n].data_ptr() for n in PARAMS], seed, self.saved.data_ptr(),
                             self.workspace.data_ptr(), _stream())
        return dx, grads
