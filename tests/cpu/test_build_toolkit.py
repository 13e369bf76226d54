"""build_tools/build.py's choice of CUDA toolkit and targets, with stand-in
nvcc executables (what each prints is what NVIDIA's nvcc prints)."""
import importlib.util
import os
import stat

import pytest

# By path: build_tools is not installed, and the source tree must not shadow
# the installed lightseq_tf (CI) on sys.path.
_spec = importlib.util.spec_from_file_location("build", os.path.join(
    os.path.dirname(__file__), "..", "..", "build_tools", "build.py"))
build = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(build)

# `nvcc --list-gpu-code` of the two toolkits we build with.
GPU_CODES = {
    (12, 4): "sm_50 sm_52 sm_53 sm_60 sm_61 sm_62 sm_70 sm_72 sm_75 sm_80 sm_86 sm_87 sm_89 sm_90",
    (13, 0): "sm_75 sm_80 sm_86 sm_87 sm_88 sm_89 sm_90 sm_100 sm_103 sm_110 sm_120 sm_121",
}


def fake_toolkit(root, version):
    """A toolkit folder whose bin/nvcc answers --version and --list-gpu-code."""
    major, minor = version
    nvcc = root / "bin" / "nvcc"
    nvcc.parent.mkdir(parents=True)
    nvcc.write_text(
        "#!/bin/sh\ncase \"$1\" in\n"
        "  --version) echo 'Cuda compilation tools, release %d.%d, V%d.%d.1';;\n"
        "  --list-gpu-code) printf '%%s\\n' %s;;\nesac\n" % (major, minor, major, minor,
                                                           GPU_CODES[version]))
    nvcc.chmod(nvcc.stat().st_mode | stat.S_IEXEC)
    return str(nvcc)


@pytest.fixture
def toolkits(tmp_path, monkeypatch):
    monkeypatch.delenv("LIGHTSEQ_TF_CUDA_HOME", raising=False)
    monkeypatch.delenv("LIGHTSEQ_TF_CUDA", raising=False)
    monkeypatch.delenv("LIGHTSEQ_TF_CUDA_ARCHS", raising=False)
    return {v: fake_toolkit(tmp_path / ("cuda-%d.%d" % v), v) for v in GPU_CODES}


def candidates(monkeypatch, paths):
    monkeypatch.setattr(build, "nvcc_candidates", lambda major: list(paths))


@pytest.mark.parametrize("tf_cuda", ["12.5.1", None], ids=["tensorflow", "tensorflow-cpu"])
def test_tensorflows_cuda_major_wins_over_the_first_toolkit_found(toolkits, monkeypatch, tf_cuda):
    # /usr/local/cuda (first) is CUDA 13; the CUDA 12 toolkit found later is
    # the one whose driver needs match TensorFlow's (tensorflow-cpu reports
    # no CUDA: its GPU twin's, 12.5.1, counts).
    candidates(monkeypatch, [toolkits[13, 0], toolkits[12, 4]])
    assert build.find_nvcc(tf_cuda) == toolkits[12, 4]


def test_another_major_only_when_none_matches_with_a_warning(toolkits, monkeypatch, capsys):
    candidates(monkeypatch, ["", "/nonexistent/bin/nvcc", toolkits[13, 0]])
    assert build.find_nvcc("12.5.1") == toolkits[13, 0]
    out = capsys.readouterr().out
    assert "WARNING: TensorFlow was built with CUDA 12" in out and "is CUDA 13" in out
    assert "R580+" in out and "build_tools/cuda12_toolchain.sh" in out


def test_cuda_home_overrides_the_major(toolkits, monkeypatch):
    candidates(monkeypatch, [toolkits[12, 4]])
    monkeypatch.setenv("LIGHTSEQ_TF_CUDA_HOME", os.path.dirname(os.path.dirname(toolkits[13, 0])))
    assert build.find_nvcc("12.5.1") == toolkits[13, 0]


def test_cuda_off_or_required(toolkits, monkeypatch):
    candidates(monkeypatch, [toolkits[12, 4]])
    monkeypatch.setenv("LIGHTSEQ_TF_CUDA", "0")
    assert build.find_nvcc("12.5.1") is None
    candidates(monkeypatch, ["/nonexistent/bin/nvcc"])
    monkeypatch.setenv("LIGHTSEQ_TF_CUDA", "1")
    with pytest.raises(build.BuildError, match="no nvcc found.*cuda12_toolchain.sh"):
        build.find_nvcc("12.5.1")
    monkeypatch.delenv("LIGHTSEQ_TF_CUDA")
    assert build.find_nvcc("12.5.1") is None  # auto: a CPU-only build


def test_the_toolchain_scripts_cache_is_a_candidate_once_complete(tmp_path, monkeypatch):
    monkeypatch.setenv("LIGHTSEQ_TF_TOOLCHAIN_CACHE", str(tmp_path))
    nvcc = fake_toolkit(tmp_path / "cuda-12.4.131", (12, 4))
    assert nvcc not in build.nvcc_candidates(12)  # an interrupted fetch is not used
    (tmp_path / "cuda-12.4.131" / ".complete").write_text("done")
    assert nvcc in build.nvcc_candidates(12)
    assert nvcc not in build.nvcc_candidates(13)


@pytest.mark.parametrize("version, sass", [((12, 4), [60, 70, 80, 89, 90]), ((13, 0), [80, 89, 90])])
def test_targets_are_tensorflows_that_nvcc_supports_plus_ptx_of_the_newest(toolkits, version, sass,
                                                                          capsys):
    flags, archs = build.gencode_flags(toolkits[version], [])  # tensorflow-cpu: TF GPU's list
    assert archs == sass
    pairs = [flags[i + 1] for i in range(0, len(flags), 2)]
    assert pairs == ["arch=compute_%d,code=sm_%d" % (a, a) for a in sass] + ["arch=compute_90,code=compute_90"]
    if version == (13, 0):
        assert "cannot target sm_60, sm_70; skipped" in capsys.readouterr().out


def test_build_info_records_what_the_runtime_check_needs(tmp_path):
    build.write_build_info(str(tmp_path), {
        "tf_version": "2.21.0", "cuda": "12.4", "cuda_archs": [60, 90], "cuda_ptx": 90,
        "min_driver": "12.0", "min_driver_branch": "R525", "tf_cuda": None})
    ns = {}
    exec((tmp_path / "_build_info.py").read_text(), ns)
    assert (ns["CUDA_VERSION"], ns["CUDA_ARCHS"], ns["CUDA_PTX"]) == ("12.4", [60, 90], 90)
    assert (ns["CUDA_MIN_DRIVER"], ns["CUDA_MIN_DRIVER_BRANCH"]) == ("12.0", "R525")
    assert build.MIN_DRIVER[12] == ("12.0", "R525") and build.MIN_DRIVER[13] == ("13.0", "R580")
