"""The GPU side of the bad-input matrix (README, "Bad input"), through the
harness: what the launchers reject and what data-dependent garbage gives.

- Configurations a launcher cannot run are rejected before anything is
  launched (RuntimeError naming the launcher and cudaErrorInvalidValue);
  the pointers passed are a few bytes, so a check that let one through would
  read out of bounds, which compute-sanitizer memcheck (device_check.sh runs
  this file under it) turns into a failure.
- What only the data shows (lengths outside [0, L], NaN/Inf) cannot stop a
  GPU launch without a device-to-host sync, so it gets a documented,
  well-defined result: lengths are clamped (checked here to equal the
  clamped call bit for bit), NaN/Inf stay in their own row, and scores at
  masked positions are never read into a probability.
- Zero-size inputs launch nothing and succeed.
Per-launcher cases that already live beside their kernel's tests (CE targets
out of range, embedding ids out of range, softmax lengths, Adam's found-inf)
are not repeated here.
"""
import math

import pytest
import torch

import ls_torch as lt
import ls_torch_layers as ll
from ls_torch import _stream, lc

F32 = lc.FLOAT32


@pytest.fixture(scope="module")
def tiny():
    """A 64-byte buffer: every pointer of a call that must be rejected."""
    return torch.zeros(16, device="cuda")


# (dtype, batch, seq_len, hidden, heads, ffn, pre_ln, act, attn_dr, act_dr, hidden_dr, eps)
ENC_OK = (F32, 2, 4, 8, 2, 16, True, 0, 0.1, 0.1, 0.1, 1e-6)
# (dtype, batch, tgt_len, mem_len, hidden, heads, ffn, pre_ln, act, attn_dr, act_dr, hidden_dr,
#  eps)
DEC_OK = (F32, 2, 4, 3, 8, 2, 16, True, 0, 0.1, 0.1, 0.1, 1e-6)
# (dtype, batch, q_len, capacity, mem_len, hidden, heads, ffn, pre_ln, act, eps)
STEP_OK = (F32, 2, 1, 4, 3, 8, 2, 16, True, 0, 1e-6)

# field name -> bad values, per config tuple layout above
ENC_BAD = {"batch": (1, [0, -1]), "seq_len": (2, [0]), "hidden": (3, [0, 7]),
           "heads": (4, [0, 3]), "ffn": (5, [0]), "attn_dropout": (8, [1.0, -0.1, math.nan]),
           "act_dropout": (9, [1.5]), "hidden_dropout": (10, [math.inf]),
           "epsilon": (11, [0.0, -1e-6, math.nan])}
DEC_BAD = {"batch": (1, [0]), "tgt_len": (2, [0]), "mem_len": (3, [0, -2]),
           "hidden": (4, [7]), "heads": (5, [0, 3]), "ffn": (6, [0]),
           "attn_dropout": (9, [1.0]), "act_dropout": (10, [math.nan]),
           "hidden_dropout": (11, [-0.5]), "epsilon": (12, [0.0, math.nan])}
STEP_BAD = {"q_len": (2, [0]), "capacity (q_len beyond it)": (3, [0]), "mem_len": (4, [-1, 8193]),
            "hidden": (5, [7]), "heads": (6, [0, 3]), "head_dim > 256": (6, [None]),
            "ffn": (7, [0]), "epsilon": (10, [0.0, math.nan])}


def _with(cfg, i, v):
    c = list(cfg)
    if v is None:  # head_dim over the decoding attention's limit: hidden 8 * 257, one head
        c[5], c[6] = lc.STEP_ATTENTION_MAX_HEAD_DIM + 1, 1
    else:
        c[i] = v
    return tuple(c)


def _cases(table):
    return [(f"{name}={v}", i, v) for name, (i, vs) in table.items() for v in vs]


@pytest.mark.parametrize("name,i,v", _cases(ENC_BAD), ids=lambda x: str(x))
def test_encoder_layer_rejects(tiny, name, i, v):
    cfg, p = _with(ENC_OK, i, v), tiny.data_ptr()
    with pytest.raises(RuntimeError, match="encoder_layer_fwd: cudaErrorInvalidValue"):
        lc.encoder_layer_fwd(*cfg, [p] * 12, p, p, p, 1, p, p, _stream())
    with pytest.raises(RuntimeError, match="encoder_layer_bwd: cudaErrorInvalidValue"):
        lc.encoder_layer_bwd(*cfg, [p] * 12, p, p, p, p, [p] * 12, 1, p, p, _stream())


@pytest.mark.parametrize("name,i,v", _cases(DEC_BAD), ids=lambda x: str(x))
def test_decoder_layer_rejects(tiny, name, i, v):
    cfg, p = _with(DEC_OK, i, v), tiny.data_ptr()
    with pytest.raises(RuntimeError, match="decoder_layer_fwd: cudaErrorInvalidValue"):
        lc.decoder_layer_fwd(*cfg, [p] * 20, p, p, p, p, 1, p, p, _stream())
    with pytest.raises(RuntimeError, match="decoder_layer_bwd: cudaErrorInvalidValue"):
        lc.decoder_layer_bwd(*cfg, [p] * 20, p, p, p, p, p, p, [p] * 20, 1, p, p, _stream())


@pytest.mark.parametrize("name,i,v", _cases(STEP_BAD), ids=lambda x: str(x))
def test_decoder_step_rejects(tiny, name, i, v):
    cfg, p = _with(STEP_OK, i, v), tiny.data_ptr()
    with pytest.raises(RuntimeError, match="decoder_step_fwd: cudaErrorInvalidValue"):
        lc.decoder_step_fwd(*cfg, [p] * 20, p, p, p, 0, p, p, p, p, p, _stream())


@pytest.mark.parametrize("cache_len", [-1, 4, 1 << 40])
def test_decoder_step_rejects_cache_position(tiny, cache_len):
    p = tiny.data_ptr()
    with pytest.raises(RuntimeError, match="decoder_step_fwd: cudaErrorInvalidValue"):
        lc.decoder_step_fwd(*STEP_OK, [p] * 20, p, p, p, cache_len, p, p, p, p, p, _stream())


@pytest.mark.parametrize("act", [3, -1])
def test_unknown_activation_or_dtype_rejected(tiny, act):
    # The C API takes enums; the harness (like the TF ops' attribute parsing)
    # refuses integers outside them before any launch.
    p = tiny.data_ptr()
    with pytest.raises(ValueError, match="act must be"):
        lc.bias_act_dropout_fwd(F32, act, p, p, p, 2, 8, 1, 0.0, _stream())
    cfg = list(ENC_OK)
    cfg[7] = act
    with pytest.raises(ValueError, match="act must be"):
        lc.encoder_layer_fwd(*cfg, [p] * 12, p, p, p, 1, p, p, _stream())
    with pytest.raises(ValueError, match="dtype must be"):
        lc.dropout_fwd(act + 4, p, p, 4, 1, 0.0, _stream())


# ---- data-dependent garbage: clamped lengths, bit for bit --------------------------------

def test_encoder_layer_clamps_lengths():
    b, length, h, heads, f = 3, 5, 16, 2, 32
    p = ll.make_params(h, f, torch.float32)
    x, dy = torch.randn(b, length, h, device="cuda"), torch.randn(b, length, h, device="cuda")
    layer = ll.EncoderLayer(b, length, h, heads, f, True, "relu", torch.float32, 0.1, 0.1, 0.1)
    outs = []
    for lengths in ([length + 100, -5, 2**31 - 1], [length, 0, length]):
        ln = torch.tensor(lengths, device="cuda", dtype=torch.int32)
        y = layer.forward(p, x, ln, 7).clone()
        dx, g = layer.backward(p, x, ln, dy, 7)
        outs.append((y, dx.clone(), {n: t.clone() for n, t in g.items()}))
    torch.cuda.synchronize()
    (y0, dx0, g0), (y1, dx1, g1) = outs
    assert torch.equal(y0, y1) and torch.equal(dx0, dx1)
    assert all(torch.equal(g0[n], g1[n]) for n in g0)
    assert torch.isfinite(y0).all()  # the fully masked sentence attends to nothing: zeros, no NaN


def test_decoder_layer_and_step_clamp_memory_lengths():
    b, length, s, h, heads, f = 3, 4, 6, 16, 2, 32
    p = ll.make_decoder_params(h, f, torch.float32)
    x, dy = torch.randn(b, length, h, device="cuda"), torch.randn(b, length, h, device="cuda")
    memory = torch.randn(b, s, h, device="cuda")
    layer = ll.DecoderLayer(b, length, s, h, heads, f, False, "gelu", torch.float32, 0.1, 0.1,
                            0.1)
    mem_k, mem_v = ll.memorize(p, memory, heads)
    step = ll.DecoderStep(b, 1, 4, s, h, heads, f, False, "gelu", torch.float32)
    xs = torch.randn(b, 1, h, device="cuda")
    outs = []
    for lengths in ([s + 9, -2, 3], [s, 0, 3]):
        ln = torch.tensor(lengths, device="cuda", dtype=torch.int32)
        y = layer.forward(p, x, memory, ln, 5).clone()
        dx, dmem, g = layer.backward(p, x, memory, ln, dy, 5)
        keys = torch.zeros(b, 4, heads, h // heads, device="cuda")
        values = torch.zeros_like(keys)
        ys = step.forward(p, xs, keys, values, 0, mem_k, mem_v, ln)
        outs.append([y, dx.clone(), dmem.clone(), ys, keys, values]
                    + [g[n].clone() for n in sorted(g)])
    torch.cuda.synchronize()
    for a, c in zip(*outs):
        assert torch.equal(a, c)
    assert torch.isfinite(outs[0][0]).all() and torch.isfinite(outs[0][3]).all()


# ---- NaN / Inf: confined to their own row; masked scores never read ----------------------

@pytest.mark.parametrize("k_len", [16, 13], ids=["fast_path", "generic_path"])
@pytest.mark.parametrize("causal", [False, True])
def test_softmax_ignores_garbage_at_masked_positions(k_len, causal):
    b, heads, q_len = 2, 2, k_len
    lengths = torch.tensor([k_len - 3, 5], device="cuda", dtype=torch.int32)
    clean = torch.randn(b, heads, q_len, k_len, device="cuda")
    dirty = clean.clone()
    key = torch.arange(k_len, device="cuda")
    masked = key.view(1, 1, 1, -1) >= lengths.view(-1, 1, 1, 1)
    if causal:
        query = torch.arange(q_len, device="cuda").view(1, 1, -1, 1)
        masked = masked | (key.view(1, 1, 1, -1) > query)
    garbage = torch.tensor([math.nan, math.inf, -math.inf], device="cuda")
    dirty[masked.expand_as(dirty)] = garbage[torch.arange(int(masked.expand_as(dirty).sum()),
                                                          device="cuda") % 3]
    dp = torch.randn_like(clean)
    y = [lt.attn_softmax(z, lengths, 0.7, causal, 0.1, 3) for z in (clean, dirty)]
    d = [lt.attn_softmax_bwd(dp, z, lengths, 0.7, causal, 0.1, 3) for z in (clean, dirty)]
    torch.cuda.synchronize()
    assert torch.equal(y[0], y[1]) and torch.equal(d[0], d[1])
    assert torch.isfinite(y[1]).all() and torch.isfinite(d[1]).all()


def test_layer_norm_nan_row_stays_in_its_row():
    x = torch.randn(6, 40, device="cuda")
    x[2, 7], x[4, 0] = math.nan, math.inf
    g, bt = torch.randn(40, device="cuda"), torch.randn(40, device="cuda")
    y, mean, rstd = lt.layer_norm_fwd(x, g, bt, 1e-5)
    ref = torch.nn.functional.layer_norm(x, (40,), g, bt, 1e-5)
    torch.cuda.synchronize()
    bad = torch.tensor([2, 4], device="cuda")
    good = torch.tensor([0, 1, 3, 5], device="cuda")
    assert (~torch.isfinite(y[bad])).all(dim=1).all()
    torch.testing.assert_close(y[good], ref[good], rtol=1e-5, atol=1e-5)


def test_cross_entropy_nan_logit_is_that_rows_nan():
    logits = torch.randn(4, 24, device="cuda")
    logits[1, 5] = math.nan
    logits[3, 0] = math.inf
    targets = torch.tensor([3, 3, 3, 3], device="cuda")
    loss, nll, lse, sums = lt.cross_entropy(logits, targets, 0.1)
    torch.cuda.synchronize()
    assert torch.isfinite(loss[[0, 2]]).all() and not torch.isfinite(loss[[1, 3]]).any()
    assert not torch.isfinite(sums[0])  # the batch total reports it


# ---- zero-size inputs launch nothing and succeed ------------------------------------------

def _empty(*shape, dtype=torch.float32):
    return torch.empty(*shape, device="cuda", dtype=dtype)


ZERO_SIZE = {
    "dropout": lambda: lt.dropout(_empty(0), 0.1, 1),
    "bias_dropout_residual": lambda: lt.bias_dropout_residual(_empty(0, 8), _empty(8),
                                                              _empty(0, 8), 0.1, 1),
    "bias_act_dropout": lambda: lt.bias_act_dropout(_empty(0, 8), _empty(8), 0.1, 1),
    "layer_norm": lambda: lt.layer_norm_fwd(_empty(0, 8), _empty(8), _empty(8), 1e-5),
    "attn_softmax": lambda: lt.attn_softmax(_empty(0, 2, 3, 8), None, 1.0, False, 0.1, 1),
    "attn_softmax_bwd": lambda: lt.attn_softmax_bwd(_empty(0, 2, 3, 8), _empty(0, 2, 3, 8),
                                                    None, 1.0, False, 0.1, 1),
    "split_heads": lambda: lt.split_heads(_empty(0, 4, 16), _empty(16), 2, 1),
    "merge_heads": lambda: lt.merge_heads(_empty(1, 0, 2, 4, 8)),
    "cross_entropy": lambda: lt.cross_entropy(_empty(0, 8), _empty(0, dtype=torch.int64), 0.1),
    "embedding": lambda: lt.embedding_fwd(_empty(0, 4, dtype=torch.int32),
                                          torch.randn(8, 16, device="cuda"), 1.0),
}


@pytest.mark.parametrize("name", sorted(ZERO_SIZE))
def test_zero_size_inputs(name):
    ZERO_SIZE[name]()
    torch.cuda.synchronize()
