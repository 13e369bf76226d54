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


DEC_PARAMS = ["ln1_gamma", "ln1_beta", "qkv_kernel", "qkv_bias", "out_kernel", "out_bias",
              "ln2_gamma", "ln2_beta", "q_kernel", "q_bias", "kv_kernel", "kv_bias",
              "cross_out_kernel", "cross_out_bias",
              "ln3_gamma", "ln3_beta", "ffn1_kernel", "ffn1_bias", "ffn2_kernel", "ffn2_bias"]


def make_decoder_params(hidden, ffn, dtype, device="cuda", scale=0.3):
    """The encoder's twelve (self-attention as block 1, FFN as block 3) plus
    the encoder-decoder attention's eight."""
    enc = make_params(hidden, ffn, dtype, device, scale)
    out = {n: enc[n] for n in PARAMS[:6]}
    out.update({n.replace("ln2", "ln3"): enc[n] for n in PARAMS[6:]})
    h = hidden
    for name, shape in [("ln2_gamma", [h]), ("ln2_beta", [h]), ("q_kernel", [h, h]),
                        ("q_bias", [h]), ("kv_kernel", [h, 2 * h]), ("kv_bias", [2 * h]),
                        ("cross_out_kernel", [h, h]), ("cross_out_bias", [h])]:
        t = torch.randn(shape, device=device) * scale
        if "kernel" in name:
            t = t / shape[0] ** 0.5 * 3
        if "gamma" in name:
            t = t + 1.0
        out[name] = t.to(dtype)
    return out


class DecoderLayer:
    """Config and saved/workspace buffers of one decoder layer call."""

    def __init__(self, batch, tgt_len, mem_len, hidden, heads, ffn, pre_ln, act, dtype,
                 attn_dropout=0.0, act_dropout=0.0, hidden_dropout=0.0, epsilon=1e-6):
        self.args = (DTYPES[dtype], batch, tgt_len, mem_len, hidden, heads, ffn, pre_ln,
                     ACT[act], attn_dropout, act_dropout, hidden_dropout, epsilon)
        saved, ws = lc.decoder_layer_bytes(DTYPES[dtype], batch, tgt_len, mem_len, hidden,
                                           heads, ffn, pre_ln)
        self.saved = torch.empty(saved, dtype=torch.uint8, device="cuda")
        self.workspace = torch.empty(ws, dtype=torch.uint8, device="cuda")

    def forward(self, params, x, memory, mem_lengths, seed, out=None):
        y = torch.empty_like(x) if out is None else out
        lc.decoder_layer_fwd(*self.args, [params[n].data_ptr() for n in DEC_PARAMS],
                             x.data_ptr(), memory.data_ptr(), mem_lengths.data_ptr(),
                             y.data_ptr(), seed, self.saved.data_ptr(),
                             self.workspace.data_ptr(), _stream())
        return y

    def backward(self, params, x, memory, mem_lengths, dy, seed, out=None):
        if out is None:
            dx, dmem = torch.empty_like(x), torch.empty_like(memory)
            grads = {n: torch.empty_like(p) for n, p in params.items()}
        else:
            dx, dmem, grads = out
        lc.decoder_layer_bwd(*self.args, [params[n].data_ptr() for n in DEC_PARAMS],
                             x.data_ptr(), memory.data_ptr(), mem_lengths.data_ptr(),
                             dy.data_ptr(), dx.data_ptr(), dmem.data_ptr(),
                             [grads[n].data_ptr() for n in DEC_PARAMS], seed,
                             self.saved.data_ptr(), self.workspace.data_ptr(), _stream())
        return dx, dmem, grads


class DecoderStep:
    """Config and workspace of the incremental decoder step (decoder_step.h):
    caches [batch, capacity, heads, head_dim] written in place."""

    def __init__(self, batch, q_len, capacity, mem_len, hidden, heads, ffn, pre_ln, act, dtype,
                 epsilon=1e-6):
        self.args = (DTYPES[dtype], batch, q_len, capacity, mem_len, hidden, heads, ffn, pre_ln,
                     ACT[act], epsilon)
        self.shape = (batch, q_len, hidden)
        ws = lc.decoder_step_workspace_bytes(DTYPES[dtype], batch, q_len, capacity, mem_len,
                                             hidden, heads, ffn, pre_ln)
        self.workspace = torch.empty(ws, dtype=torch.uint8, device="cuda")

    def forward(self, params, x, keys, values, cache_len, mem_keys, mem_values, mem_lengths,
                out=None):
        y = torch.empty_like(x) if out is None else out
        lc.decoder_step_fwd(*self.args, [params[n].data_ptr() for n in DEC_PARAMS], x.data_ptr(),
                            keys.data_ptr(), values.data_ptr(), cache_len, mem_keys.data_ptr(),
                            mem_values.data_ptr(), mem_lengths.data_ptr(), y.data_ptr(),
                            self.workspace.data_ptr(), _stream())
        return y


def memorize(params, memory, heads):
    """The memory's encoder-decoder keys and values [batch, mem_len, heads, d]."""
    b, s, h = memory.shape
    dt = DTYPES[memory.dtype]
    keys = torch.empty(b, s, heads, h // heads, dtype=memory.dtype, device="cuda")
    values = torch.empty_like(keys)
    ws = torch.empty(lc.decoder_step_memorize_workspace_bytes(dt, b, s, h), dtype=torch.uint8,
                     device="cuda")
    lc.decoder_step_memorize(dt, b, s, h, memory.data_ptr(), params["kv_kernel"].data_ptr(),
                             params["kv_bias"].data_ptr(), keys.data_ptr(), values.data_ptr(),
                             ws.data_ptr(), _stream())
    return keys, values
