"""Builds lightseq_tf's op library against the TensorFlow installed in this
Python environment (the only ABI that matters: TF's own headers and
libtensorflow_framework), optionally with the CUDA kernels and GPU OpKernels.

Used by setup.py (pip install / pip wheel) and directly for development:
    python -m build_tools.build --inplace         # -> lightseq_tf/_lightseq_ops*.so

Environment:
  LIGHTSEQ_TF_CUDA       "0": CPU-only; "1": CUDA required (fail without nvcc);
                         unset: CUDA when nvcc is found.
  LIGHTSEQ_TF_CUDA_HOME  CUDA toolkit root (default: /usr/local/cuda, then nvcc on PATH).
  LIGHTSEQ_TF_CUDA_ARCHS e.g. "80;90" to override the SASS targets (PTX for the
                         newest is always added).
  LIGHTSEQ_TF_JOBS       parallel compile jobs (default: CPU count).
"""
import argparse
import concurrent.futures as cf
import glob
import os
import platform
import re
import shutil
import subprocess
import sys
import sysconfig
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LIB_NAME = "_lightseq_ops"
# What tf.sysconfig.get_build_info() lists for the TF 2.21 GPU build.
TF_GPU_DEFAULT_CAPS = ["sm_60", "sm_70", "sm_80", "sm_89", "compute_90"]


class BuildError(RuntimeError):
    pass


def tf_config():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TF's start-up log out of build output
    try:
        import tensorflow as tf
    except ImportError as e:  # pragma: no cover - exercised by users, not tests
        raise BuildError(
            "lightseq_tf builds against the TensorFlow installed in this environment, "
            "but `import tensorflow` failed (%s). Install TensorFlow first "
            "(e.g. pip install tensorflow-cpu==2.21.0 or 'tensorflow[and-cuda]==2.21.*'), "
            "then build without isolation so the build sees it: "
            "pip install --no-build-isolation ." % e) from e
    info = tf.sysconfig.get_build_info()
    return {
        "version": tf.__version__,
        "include": tf.sysconfig.get_include(),
        "cflags": tf.sysconfig.get_compile_flags(),
        "lflags": tf.sysconfig.get_link_flags(),
        "cuda_version": info.get("cuda_version"),
        "cuda_caps": list(info.get("cuda_compute_capabilities", []) or []),
    }


def find_nvcc():
    mode = os.environ.get("LIGHTSEQ_TF_CUDA", "")
    if mode == "0":
        return None
    home = os.environ.get("LIGHTSEQ_TF_CUDA_HOME")
    candidates = [os.path.join(home, "bin", "nvcc")] if home else [
        "/usr/local/cuda/bin/nvcc", shutil.which("nvcc") or ""]
    for c in candidates:
        if c and os.access(c, os.X_OK):
            return c
    if mode == "1":
        raise BuildError("LIGHTSEQ_TF_CUDA=1 but no nvcc found (looked at %s); set "
                         "LIGHTSEQ_TF_CUDA_HOME to a CUDA toolkit" % candidates)
    return None


def nvcc_version(nvcc):
    out = subprocess.run([nvcc, "--version"], capture_output=True, text=True, check=True).stdout
    m = re.search(r"release (\d+)\.(\d+)", out)
    return (int(m.group(1)), int(m.group(2))) if m else (0, 0)


def gencode_flags(nvcc, tf_caps):
    """SASS for each of TF's compute capabilities this nvcc supports, plus
    sm_90 (H100/H200), plus PTX of the newest for forward compatibility."""
    supported = set(subprocess.run([nvcc, "--list-gpu-code"], capture_output=True, text=True,
                                   check=True).stdout.split())
    env = os.environ.get("LIGHTSEQ_TF_CUDA_ARCHS")
    if env:
        caps = sorted({int(a) for a in re.split(r"[;, ]+", env.strip()) if a})
    else:
        # tensorflow-cpu reports no capabilities; its GPU twin of the same
        # version (same ABI) is what the library will run under.
        caps = sorted({int(c.split("_")[1]) for c in (tf_caps or TF_GPU_DEFAULT_CAPS)} | {90})
    archs = [c for c in caps if "sm_%d" % c in supported]
    skipped = [c for c in caps if c not in archs]
    if skipped:
        print("[lightseq_tf build] nvcc %s cannot target sm_%s; skipped" % (
            nvcc, ", sm_".join(map(str, skipped))), flush=True)
    if not archs:
        raise BuildError("nvcc supports none of the compute capabilities %s" % caps)
    flags = []
    for c in archs:
        flags += ["-gencode", "arch=compute_%d,code=sm_%d" % (c, c)]
    flags += ["-gencode", "arch=compute_%d,code=compute_%d" % (archs[-1], archs[-1])]
    return flags, archs


def sources():
    rel = lambda ps: sorted(os.path.relpath(p, ROOT) for p in ps)
    cc = rel(glob.glob(os.path.join(ROOT, "cc", "**", "*.cc"), recursive=True))
    cu = rel(glob.glob(os.path.join(ROOT, "cuda", "kernels", "*.cu")))
    # cuda/layers' host orchestration (GPU builds only); its GEMMs run on TF's
    # BLAS, so the harness's cuBLAS backend stays out of the op library.
    layers = rel(p for p in glob.glob(os.path.join(ROOT, "cuda", "layers", "*.cc"))
                 if os.path.basename(p) != "cublas_gemm.cc")
    headers = glob.glob(os.path.join(ROOT, "cc", "**", "*.h"), recursive=True) + \
        glob.glob(os.path.join(ROOT, "cuda", "**", "*.h"), recursive=True) + \
        glob.glob(os.path.join(ROOT, "cuda", "**", "*.cuh"), recursive=True)
    return cc, cu, layers, headers


def source_flags(src):
    """Per-file flags. The CPU twins' GEMMs (Eigen) get AVX on x86: 2.3x over
    the SSE2 baseline of TF's compile flags, and safe, since TensorFlow's x86
    wheels are built with AVX and refuse to start on a CPU without it."""
    if src == os.path.join("cc", "kernels", "cpu", "gemm_cpu.cc") and \
            platform.machine() in ("x86_64", "AMD64"):
        return ["-mavx"]
    return []


def _run(cmd, what):
    t0 = time.time()
    p = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if p.returncode != 0:
        raise BuildError("%s failed:\n%s\n%s%s" % (what, " ".join(cmd), p.stdout, p.stderr))
    return what, time.time() - t0


def build(out_path, build_dir=None, verbose=True):
    """Compiles and links the op library to `out_path`; writes _build_info.py
    beside it. Returns the build-info dict."""
    t_start = time.time()
    tf = tf_config()
    nvcc = find_nvcc()
    build_dir = build_dir or os.path.join(ROOT, "build", "ops")
    os.makedirs(build_dir, exist_ok=True)
    cc, cu, layers, headers = sources()
    newest_header = max([os.path.getmtime(h) for h in headers] + [0])

    cxx = os.environ.get("CXX", "g++")
    cxxflags = tf["cflags"] + ["-O3", "-fPIC", "-Wno-deprecated-declarations",
                               "-I" + ROOT, "-I" + os.path.join(ROOT, "cuda", "include")]
    jobs = []  # (cmd, obj, src)
    objs = []
    info = {"tf_version": tf["version"], "cuda": None, "cuda_archs": [], "tf_cuda": tf["cuda_version"]}
    if nvcc:
        cuda_home = os.path.dirname(os.path.dirname(nvcc))
        # The GPU OpKernels see the toolkit's headers (cudaStream_t for the
        # launcher API; Eigen's GPU device wants cuda_runtime.h).
        cxxflags += ["-DGOOGLE_CUDA=1", "-DEIGEN_USE_GPU", "-I" + os.path.join(cuda_home, "include")]
        gencode, archs = gencode_flags(nvcc, tf["cuda_caps"])
        major, minor = nvcc_version(nvcc)
        info.update(cuda="%d.%d" % (major, minor), cuda_archs=archs)
        for src in cu:
            obj = os.path.join(build_dir, src.replace("/", "_") + ".o")
            cmd = [nvcc, "-O3", "-std=c++17", "-Xcompiler", "-fPIC", "-I" + os.path.join(ROOT, "cuda", "include"),
                   "-c", src, "-o", obj] + gencode
            jobs.append((cmd, obj, src))
    for src in cc + (layers if nvcc else []):
        obj = os.path.join(build_dir, src.replace("/", "_") + ("_gpu" if nvcc else "") + ".o")
        jobs.append(([cxx] + cxxflags + source_flags(src) + ["-c", src, "-o", obj], obj, src))

    todo = []
    for cmd, obj, src in jobs:
        objs.append(obj)
        fresh = os.path.exists(obj) and os.path.getmtime(obj) > max(
            os.path.getmtime(os.path.join(ROOT, src)), newest_header)
        if not fresh:
            todo.append((cmd, obj, src))
    njobs = int(os.environ.get("LIGHTSEQ_TF_JOBS", os.cpu_count() or 2))
    with cf.ThreadPoolExecutor(max_workers=njobs) as ex:
        for what, secs in ex.map(lambda j: _run(j[0], j[2]), todo):
            if verbose:
                print("[lightseq_tf build] %-45s %6.1f s" % (what, secs), flush=True)

    link = [cxx, "-shared", "-o", out_path] + objs
    if nvcc:
        # Static CUDA runtime: the library loads on machines without CUDA (CPU
        # users) and does not depend on which libcudart TensorFlow found. It
        # goes before TensorFlow's library: some TF builds export cudart-like
        # symbols (__cudaLaunchKernel, ...) that would otherwise win the link.
        link += ["-L" + os.path.join(cuda_home, "lib64"), "-l:libcudart_static.a", "-ldl", "-lrt",
                 "-lpthread"]
    link += tf["lflags"]
    os.makedirs(os.path.dirname(os.path.abspath(out_path)), exist_ok=True)
    _run(link, "link " + os.path.basename(out_path))
    info["build_seconds"] = round(time.time() - t_start, 1)
    write_build_info(os.path.dirname(os.path.abspath(out_path)), info)
    if verbose:
        print("[lightseq_tf build] %s: TF %s, CUDA %s %s, %.1f s" % (
            out_path, info["tf_version"], info["cuda"] or "off", info["cuda_archs"],
            info["build_seconds"]), flush=True)
    return info


def write_build_info(pkg_dir, info):
    with open(os.path.join(pkg_dir, "_build_info.py"), "w") as f:
        f.write('"""Written by build_tools/build.py: what this op library was built against."""\n')
        f.write("TF_VERSION = %r\n" % info["tf_version"])
        f.write("CUDA_VERSION = %r  # nvcc used for cuda/ (None: CPU-only build)\n" % info["cuda"])
        f.write("CUDA_ARCHS = %r\n" % info["cuda_archs"])
        f.write("TF_CUDA_VERSION = %r  # CUDA the TensorFlow build was made with\n" % info["tf_cuda"])


def default_output():
    return os.path.join(ROOT, "lightseq_tf", LIB_NAME + sysconfig.get_config_var("EXT_SUFFIX"))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--inplace", action="store_true", help="write into lightseq_tf/ (development)")
    ap.add_argument("-o", "--output", help="output .so path")
    args = ap.parse_args()
    out = args.output or default_output()
    try:
        build(out)
    except BuildError as e:
        sys.exit(str(e))


if __name__ == "__main__":
    main()
