"""Head split / merge launchers vs torch view/permute (exact: pure data
movement plus one bias add rounded once, as in the reference)."""
import pytest
import torch

import ls_torch

DTYPES = [torch.float32, torch.float16, torch.bfloat16]


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("b,l,heads,splits,d", [(2, 5, 4, 3, 8), (3, 7, 2, 1, 5), (1, 1, 1, 2, 1),
                                                (8, 64, 16, 3, 64), (2, 33, 8, 2, 63)])
@pytest.mark.parametrize("with_bias", [True, False])
def test_split_and_merge_match_torch(b, l, heads, splits, d, dtype, with_bias):
    x = torch.randn(b, l, splits * heads * d, device="cuda").to(dtype)
    bias = torch.randn(splits * heads * d, device="cuda").to(dtype) if with_bias else None
    out = torch.full((splits, b, heads, l, d), float("nan"), device="cuda", dtype=dtype)
    ls_torch.split_heads(x, bias, heads, splits, out=out)
    xb = (x.float() + bias.float()).to(dtype) if with_bias else x
    want = xb.view(b, l, splits, heads, d).permute(2, 0, 3, 1, 4)
    assert torch.equal(out, want)
    merged = ls_torch.merge_heads(out)
    assert torch.equal(merged, xb)


def test_unaligned_takes_the_scalar_path():
    x = torch.randn(2 * 4 * 48 + 1, device="cuda", dtype=torch.float16)[1:].view(2, 4, 48)
    out = ls_torch.split_heads(x, None, 2, 3)
    assert torch.equal(out, x.view(2, 4, 3, 2, 8).permute(2, 0, 3, 1, 4))


def test_bad_shape_rejected():
    x = torch.randn(1, 2, 8, device="cuda")
    with pytest.raises(RuntimeError, match="cudaErrorInvalidValue"):
        ls_torch.lc.split_heads(ls_torch.lc.FLOAT32, x.data_ptr(), 0, x.data_ptr(), 1, 1, 2, 0, 8,
                                torch.cuda.current_stream().cuda_stream)
