"""Torch-facing wrappers over the `lightseq_cuda` harness module.

They allocate outputs with torch, pass raw device pointers and the current
stream to the framework-free launchers, and return torch tensors. Used by the
GPU tests and the GPU benchmarks (which run where TensorFlow does not).
"""
import importlib
import os
import sys

import torch

_BUILD = os.environ.get(
    "LIGHTSEQ_HARNESS_DIR",
    os.path.join(os.path.dirname(__file__), "..", "..", "build", "harness"))
sys.path.insert(0, os.path.abspath(_BUILD))
lc = importlib.import_module("lightseq_cuda")

DTYPES = {torch.float32: lc.FLOAT32, torch.float16: lc.FLOAT16, torch.bfloat16: lc.BFLOAT16}


def _stream():
    return torch.cuda.current_stream().cuda_stream


def layer_norm_fwd(x, gamma, beta, eps, out=None):
    """x: [..., H] -> (y, mean[rows], rstd[rows])."""
    h = x.shape[-1]
    rows = x.numel() // h if h else 0
    y = torch.empty_like(x) if out is None else out[0]
    mean = torch.empty(rows, dtype=torch.float32, device=x.device) if out is None else out[1]
    rstd = torch.empty(rows, dtype=torch.float32, device=x.device) if out is None else out[2]
    lc.layer_norm_fwd(DTYPES[x.dtype], x.data_ptr(), gamma.data_ptr(), beta.data_ptr(),
                      y.data_ptr(), mean.data_ptr(), rstd.data_ptr(), rows, h, eps, _stream())
    return y, mean, rstd


def layer_norm_bwd_workspace(x):
    h = x.shape[-1]
    rows = x.numel() // h
    n = lc.layer_norm_bwd_workspace_bytes(DTYPES[x.dtype], rows, h)
    return torch.empty(max(n, 1), dtype=torch.uint8, device=x.device)


def layer_norm_bwd(dy, x, mean, rstd, gamma, workspace=None, out=None, dx_add=None):
    """-> (dx, dgamma, dbeta); dx_add (optional, x's shape) is added to dx."""
    h = x.shape[-1]
    rows = x.numel() // h
    ws = layer_norm_bwd_workspace(x) if workspace is None else workspace
    dx = torch.empty_like(x) if out is None else out[0]
    dgamma = torch.empty_like(gamma) if out is None else out[1]
    dbeta = torch.empty_like(gamma) if out is None else out[2]
    lc.layer_norm_bwd(DTYPES[x.dtype], dy.data_ptr(), x.data_ptr(), mean.data_ptr(),
                      rstd.data_ptr(), gamma.data_ptr(), dx.data_ptr(),
                      0 if dx_add is None else dx_add.data_ptr(), dgamma.data_ptr(),
                      dbeta.data_ptr(), ws.data_ptr(), rows, h, _stream())
    return dx, dgamma, dbeta


ACTS = {"relu": 0, "gelu": 1, "gelu_tanh": 2}


def _rows_hidden(x):
    h = x.shape[-1] if x.dim() else 1
    return (x.numel() // h if h else 0), h


def _seed(seed):
    return int(seed) % (1 << 64)


def _workspace(nbytes, device):
    return torch.empty(max(1, nbytes), dtype=torch.uint8, device=device)


def dropout(x, rate, seed, out=None):
    y = torch.empty_like(x) if out is None else out
    lc.dropout_fwd(DTYPES[x.dtype], x.data_ptr(), y.data_ptr(), x.numel(), _seed(seed), rate,
                   _stream())
    return y


def bias_dropout_residual(x, bias, residual, rate, seed, out=None):
    rows, h = _rows_hidden(x)
    y = torch.empty_like(x) if out is None else out
    lc.bias_dropout_residual_fwd(DTYPES[x.dtype], x.data_ptr(), bias.data_ptr(),
                                 residual.data_ptr(), y.data_ptr(), rows, h, _seed(seed), rate,
                                 _stream())
    return y


def bias_dropout_residual_bwd(dy, rate, seed, workspace=None, out=None):
    """-> (dx, dbias)"""
    rows, h = _rows_hidden(dy)
    ws = workspace if workspace is not None else _workspace(
        lc.bias_dropout_residual_bwd_workspace_bytes(DTYPES[dy.dtype], rows, h), dy.device)
    dx = torch.empty_like(dy) if out is None else out[0]
    db = torch.empty(h, dtype=dy.dtype, device=dy.device) if out is None else out[1]
    lc.bias_dropout_residual_bwd(DTYPES[dy.dtype], dy.data_ptr(), dx.data_ptr(), db.data_ptr(),
                                 ws.data_ptr(), rows, h, _seed(seed), rate, _stream())
    return dx, db


def bias_act_dropout(x, bias, rate, seed, act="relu", out=None):
    rows, h = _rows_hidden(x)
    y = torch.empty_like(x) if out is None else out
    lc.bias_act_dropout_fwd(DTYPES[x.dtype], ACTS[act], x.data_ptr(), bias.data_ptr(),
                            y.data_ptr(), rows, h, _seed(seed), rate, _stream())
    return y


def bias_act_dropout_bwd(dy, x, bias, rate, seed, act="relu", workspace=None, out=None):
    """-> (dx, dbias)"""
    rows, h = _rows_hidden(x)
    ws = workspace if workspace is not None else _workspace(
        lc.bias_act_dropout_bwd_workspace_bytes(DTYPES[x.dtype], rows, h), x.device)
    dx = torch.empty_like(x) if out is None else out[0]
    db = torch.empty(h, dtype=x.dtype, device=x.device) if out is None else out[1]
    lc.bias_act_dropout_bwd(DTYPES[x.dtype], ACTS[act], dy.data_ptr(), x.data_ptr(),
                            bias.data_ptr(), dx.data_ptr(), db.data_ptr(), ws.data_ptr(), rows, h,
                            _seed(seed), rate, _stream())
    return dx, db


def cross_entropy(logits, targets, eps, padding_id=-1, out=None):
    """-> (loss, nll, lse, sums[3])"""
    v = logits.shape[-1]
    rows = targets.numel()
    f32 = dict(dtype=torch.float32, device=logits.device)
    loss, nll, lse = ((torch.empty(targets.shape, **f32) for _ in range(3)) if out is None
                      else out[:3])
    sums = torch.empty(3, **f32) if out is None else out[3]
    lc.cross_entropy_fwd(DTYPES[logits.dtype], logits.data_ptr(), targets.data_ptr(),
                         targets.dtype == torch.int64, loss.data_ptr(), nll.data_ptr(),
                         lse.data_ptr(), sums.data_ptr(), rows, v, eps, padding_id, _stream())
    return loss, nll, lse, sums


def cross_entropy_bwd(dloss, dnll, logits, targets, lse, nll, eps, padding_id=-1, out=None):
    dlogits = torch.empty_like(logits) if out is None else out
    lc.cross_entropy_bwd(DTYPES[logits.dtype], dloss.data_ptr(), dnll.data_ptr(),
                         logits.data_ptr(), targets.data_ptr(), targets.dtype == torch.int64,
                         lse.data_ptr(), nll.data_ptr(), dlogits.data_ptr(), targets.numel(),
                         logits.shape[-1],
                         eps, padding_id, _stream())
    return dlogits


def attn_softmax(scores, lengths, scale, causal, rate, seed, out=None):
    """scores [B, h, Lq, Lk]; lengths int32 [B] or None."""
    b, h, lq, lk = scores.shape
    y = torch.empty_like(scores) if out is None else out
    lc.attn_softmax_fwd(DTYPES[scores.dtype], scores.data_ptr(),
                        0 if lengths is None else lengths.data_ptr(), y.data_ptr(), b, h, lq, lk,
                        scale, causal, _seed(seed), rate, _stream())
    return y


def attn_softmax_bwd(dprobs, scores, lengths, scale, causal, rate, seed, out=None):
    b, h, lq, lk = scores.shape
    dz = torch.empty_like(scores) if out is None else out
    lc.attn_softmax_bwd(DTYPES[scores.dtype], dprobs.data_ptr(), scores.data_ptr(),
                        0 if lengths is None else lengths.data_ptr(), dz.data_ptr(), b, h, lq, lk,
                        scale, causal, _seed(seed), rate, _stream())
    return dz


def split_heads(x, bias, heads, splits, out=None):
    b, l, w = x.shape
    d = w // (heads * splits)
    y = torch.empty(splits, b, heads, l, d, dtype=x.dtype, device=x.device) if out is None else out
    lc.split_heads(DTYPES[x.dtype], x.data_ptr(), 0 if bias is None else bias.data_ptr(),
                   y.data_ptr(), splits, b, l, heads, d, _stream())
    return y


def merge_heads(x, out=None):
    n, b, h, l, d = x.shape
    y = torch.empty(b, l, n * h * d, dtype=x.dtype, device=x.device) if out is None else out
    lc.merge_heads(DTYPES[x.dtype], x.data_ptr(), y.data_ptr(), n, b, l, h, d, _stream())
    return y


def embedding_fwd(ids, table, scale, positions=True, pos_offset=0, padding_id=-1, seed=0,
                  rate=0.0, dtype=None, bad_index=None, out=None):
    """ids: any shape (positions along the last axis); -> y ids.shape + [H]."""
    vocab, hidden = table.shape
    dtype = dtype or table.dtype
    y = torch.empty(tuple(ids.shape) + (hidden,), dtype=dtype, device=table.device) \
        if out is None else out
    seq_len = ids.shape[-1] if ids.dim() >= 2 else 1
    lc.embedding_fwd(DTYPES[dtype], DTYPES[table.dtype], ids.data_ptr(), ids.dtype == torch.int64,
                     table.data_ptr(), y.data_ptr(), ids.numel(), max(seq_len, 1), hidden, vocab,
                     scale, positions, pos_offset, padding_id, seed, rate,
                     0 if bad_index is None else bad_index.data_ptr(), _stream())
    return y


def embedding_bwd_workspace(ids, vocab, hidden):
    n = lc.embedding_bwd_workspace_bytes(ids.numel(), vocab, hidden)
    return torch.empty(max(n, 1), dtype=torch.uint8, device=ids.device)


def embedding_bwd(dy, ids, vocab, table_dtype, scale, padding_id=-1, seed=0, rate=0.0,
                  workspace=None, out=None):
    hidden = dy.shape[-1]
    ws = embedding_bwd_workspace(ids, vocab, hidden) if workspace is None else workspace
    dtable = torch.empty(vocab, hidden, dtype=table_dtype, device=dy.device) if out is None else out
    seq_len = ids.shape[-1] if ids.dim() >= 2 else 1
    lc.embedding_bwd(DTYPES[dy.dtype], DTYPES[table_dtype], dy.data_ptr(), ids.data_ptr(),
                     ids.dtype == torch.int64, dtable.data_ptr(), ids.numel(), max(seq_len, 1),
                     hidden, vocab, scale, padding_id, seed, rate, ws.data_ptr(), ws.numel(),
                     _stream())
    return dtable
