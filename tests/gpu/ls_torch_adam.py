"""Torch-facing wrappers over the harness's multi-tensor Adam launchers (lists
of contiguous CUDA tensors in, updated in place). Kept beside ls_torch, which
provides the module and the stream."""
import torch

from ls_torch import DTYPES, _stream, lc


def _ptrs(ts):
    for t in ts:
        assert t.is_cuda and t.is_contiguous(), "tensors must be contiguous CUDA tensors"
    return [t.data_ptr() for t in ts]


def multi_tensor_adam(params, ms, vs, grads, lr, beta1, beta2, eps, weight_decay, step,
                      adamw=False, grad_scale=1.0, found_inf=None, copies=None):
    """One step over lists of fp32 params/m/v and grads of one dtype. copies:
    None, or one fp16/bf16 tensor (or None) per param receiving the new param.
    found_inf: None or a float32 CUDA scalar; non-zero skips the step."""
    n = len(params)
    assert len(ms) == len(vs) == len(grads) == n
    gdt = {g.dtype for g in grads}
    assert len(gdt) <= 1, "one grad dtype per call"
    for p, m, v, g in zip(params, ms, vs, grads):
        assert p.dtype == m.dtype == v.dtype == torch.float32
        assert p.shape == m.shape == v.shape == g.shape
    copy_ptrs, copy_dtype = [], torch.float16
    if copies is not None:
        assert len(copies) == n
        present = [c for c in copies if c is not None]
        assert present and len({c.dtype for c in present}) == 1
        copy_dtype = present[0].dtype
        copy_ptrs = [0 if c is None else _ptrs([c])[0] for c in copies]
    lc.multi_tensor_adam(_ptrs(params), _ptrs(ms), _ptrs(vs), _ptrs(grads), copy_ptrs,
                         [p.numel() for p in params],
                         DTYPES[grads[0].dtype] if grads else lc.FLOAT32, DTYPES[copy_dtype],
                         float(lr), float(beta1), float(beta2), float(eps), float(weight_decay),
                         bool(adamw), int(step), float(grad_scale),
                         0 if found_inf is None else found_inf.data_ptr(), _stream())


def multi_tensor_found_inf(grads, out=None, reset=True):
    """-> float32 CUDA scalar: 1.0 if any grad element is NaN/Inf, else 0.0
    (with reset=False: OR into `out`). One dtype per call."""
    out = torch.zeros((), dtype=torch.float32, device="cuda") if out is None else out
    dts = {g.dtype for g in grads}
    assert len(dts) <= 1, "one grad dtype per call"
    lc.multi_tensor_found_inf(_ptrs(grads), [g.numel() for g in grads],
                              DTYPES[grads[0].dtype] if grads else lc.FLOAT32, out.data_ptr(),
                              bool(reset), _stream())
    return out
