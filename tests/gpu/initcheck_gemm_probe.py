"""Why initcheck cannot judge the whole-layer tests on sm_90: a kernel of ours
reading PyTorch's own fp16 matmul output is reported as reading
uninitialized memory (initcheck does not see cuBLAS's sm_90 GEMM stores), the
same kernel reading torch.randn's output is clean. Not a test (no test_ prefix):

    compute-sanitizer --tool initcheck python3 tests/gpu/initcheck_gemm_probe.py randn  # 0 errors
    compute-sanitizer --tool initcheck python3 tests/gpu/initcheck_gemm_probe.py gemm   # reports
"""
import os
import sys
import torch
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ls_torch
lc = ls_torch.lc
which = sys.argv[1]
h = 512
a = torch.randn(512, h, device="cuda", dtype=torch.half)
w = torch.randn(h, h, device="cuda", dtype=torch.half)
x = (a @ w) if which == "gemm" else torch.randn(512, h, device="cuda", dtype=torch.half)
b = torch.randn(h, device="cuda", dtype=torch.half)
r = torch.randn(512, h, device="cuda", dtype=torch.half)
y = torch.empty_like(x)
lc.bias_dropout_residual_fwd(lc.FLOAT16, x.data_ptr(), b.data_ptr(), r.data_ptr(), y.data_ptr(),
                             512, h, 0, 0.0, ls_torch._stream())
torch.cuda.synchronize()
print(which, "done")
