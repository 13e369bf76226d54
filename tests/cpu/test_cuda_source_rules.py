"""The rules DESIGN.md sets for cuda/, checked on its source (they hold for
the GPU code whether or not a GPU is at hand):
- framework-free: no TensorFlow or PyTorch include;
- no device memory of its own: launchers and layers work in the caller's
  buffers (TF's allocator, or torch tensors in the harness), so device memory
  returns to the caller's baseline after every call by construction;
- asynchronous on the caller's stream: nothing in the kernels or layers
  synchronizes the device or the host."""
import os
import re

import pytest

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")


def sources(*parts):
    base = os.path.join(ROOT, "cuda", *parts)
    if not os.path.isdir(base):
        pytest.skip("no source tree here")
    out = []
    for d, _, files in os.walk(base):
        out += [os.path.join(d, f) for f in files if f.endswith((".h", ".cuh", ".cu", ".cc"))]
    assert out, base
    return out


def code(path):
    with open(path) as f:
        text = f.read()
    return re.sub(r"//[^\n]*", "", text)  # comments may name what the code must not do


def offenders(paths, pattern):
    return [os.path.relpath(p, ROOT) for p in paths if re.search(pattern, code(p))]


def test_no_framework_includes():
    assert offenders(sources(), r'#include\s*[<"](tensorflow|torch|ATen|c10)/') == []


def test_no_device_allocation_outside_the_harness():
    paths = sources("include") + sources("kernels") + sources("layers")
    assert offenders(paths, r"\bcuda(Malloc|MallocAsync|MallocManaged|Free|FreeAsync|"
                            r"HostAlloc|MallocHost)\b") == []


def test_no_synchronization_in_kernels_and_layers():
    paths = sources("kernels") + sources("layers")
    assert offenders(paths, r"\bcuda(DeviceSynchronize|StreamSynchronize|EventSynchronize)\b|"
                            r"\bcudaMemcpy\s*\(") == []
