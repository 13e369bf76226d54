"""Builds lightseq_tf's op library against the TensorFlow installed in this
Python environment (the only ABI that matters: TF's own headers and
libtensorflow_framework), optionally with the CUDA kernels and GPU OpKernels.

Used by setup.py (pip install / pip wheel) and directly for development:
    python -m build_tools.build --inplace         # -> lightseq_tf/_lightseq_ops*.so

Environment:
  LIGHTSEQ_TF_CUDA       "0": CPU-only; "1": CUDA required (fail without nvcc);
                         unset: CUDA when nvcc is found.
  LIGHTSEQ_TF_CUDA_HOME  CUDA toolkit root. Default: a toolkit of the CUDA major
                         TensorFlow was built with (12 for TF 2.21), looked for at
                         /usr/local/cuda, nvcc on PATH, /usr/local/cuda-<major>.*
                         and build_tools/cuda12_toolchain.sh's cache; another
                         major only when none is found (with a warning).
  LIGHTSEQ_TF_CUDA_ARCHS e.g. "80;90" to override the SASS targets (PTX for the
                         newest is always added).
  LIGHTSEQ_TF_WERROR     "1": warnings in our own sources are errors (CI).
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
# What tf.sysconfig.get_build_info() lists for the TF 2.21 GPU build
# (tensorflow-cpu lists nothing; its GPU twin of the same version, same ABI,
# is what the library will run under): CUDA 12.5.1 and these targets.
TF_GPU_DEFAULT_CUDA = "12.5.1"
TF_GPU_DEFAULT_CAPS = ["sm_60", "sm_70", "sm_80", "sm_89", "compute_90"]
# The driver a CUDA runtime of each major needs, by NVIDIA's minor version
# compatibility (any 12.x build runs on an R525+ driver, 13.x on R580+): the
# CUDA version the driver must report (cuDriverGetVersion) and its branch.
MIN_DRIVER = {11: ("11.0", "R450"), 12: ("12.0", "R525"), 13: ("13.0", "R580")}


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


def toolchain_cache():
    """Where build_tools/cuda12_toolchain.sh unpacks its toolkits."""
    return os.environ.get("LIGHTSEQ_TF_TOOLCHAIN_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "lightseq_tf")


def nvcc_candidates(major):
    """Toolkits to look at when LIGHTSEQ_TF_CUDA_HOME is unset, in order."""
    def newest_first(pattern):
        return sorted(glob.glob(pattern), reverse=True,
                      key=lambda p: [int(n) for n in re.findall(r"\d+", p.split("cuda-")[-1])])
    cached = [p for p in newest_first(os.path.join(toolchain_cache(), "cuda-%d.*" % major,
                                                   "bin", "nvcc"))
              if os.path.exists(os.path.join(os.path.dirname(os.path.dirname(p)), ".complete"))]
    return (["/usr/local/cuda/bin/nvcc", shutil.which("nvcc") or ""]
            + newest_first("/usr/local/cuda-%d.*/bin/nvcc" % major) + cached)


def find_nvcc(tf_cuda_version):
    """nvcc of LIGHTSEQ_TF_CUDA_HOME, else of a toolkit with TensorFlow's CUDA
    major (its static runtime then needs no newer driver than TensorFlow does),
    else any nvcc found, with a warning naming the driver it will need."""
    mode = os.environ.get("LIGHTSEQ_TF_CUDA", "")
    if mode == "0":
        return None
    home = os.environ.get("LIGHTSEQ_TF_CUDA_HOME")
    major = int(str(tf_cuda_version or TF_GPU_DEFAULT_CUDA).split(".")[0])
    candidates = [os.path.join(home, "bin", "nvcc")] if home else nvcc_candidates(major)
    found = []
    for c in candidates:
        if c and os.access(c, os.X_OK) and os.path.realpath(c) not in [os.path.realpath(f) for f in found]:
            found.append(c)
    if not found:
        if mode == "1":
            raise BuildError("LIGHTSEQ_TF_CUDA=1 but no nvcc found (looked at %s); set "
                             "LIGHTSEQ_TF_CUDA_HOME to a CUDA toolkit, e.g. the CUDA 12 one "
                             "build_tools/cuda12_toolchain.sh prints" % [c for c in candidates if c])
        return None
    if home:
        return found[0]
    for c in found:
        if nvcc_version(c)[0] == major:
            return c
    other = nvcc_version(found[0])[0]
    how = ('export LIGHTSEQ_TF_CUDA_HOME="$(build_tools/cuda12_toolchain.sh)"' if major == 12 else
           "set LIGHTSEQ_TF_CUDA_HOME to a CUDA %d toolkit" % major)
    print("[lightseq_tf build] WARNING: TensorFlow was built with CUDA %d but the only nvcc found "
          "(%s) is CUDA %d: the library will need a driver for CUDA %d (%s+). For a CUDA %d "
          "build: %s" % (major, found[0], other, other, MIN_DRIVER.get(other, ("", "?"))[1], major,
                         how), flush=True)
    return found[0]


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
    # PTX of the newest: GPUs newer than every SASS target JIT-compile it.
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


def _read(path):
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return None


def _run(cmd, what, signature_path=None, signature=None):
    t0 = time.time()
    p = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if p.returncode != 0:
        raise BuildError("%s failed:\n%s\n%s%s" % (what, " ".join(cmd), p.stdout, p.stderr))
    if signature_path:
        with open(signature_path, "w") as f:
            f.write(signature)
    return what, time.time() - t0, (p.stdout + p.stderr).strip()


def build(out_path, build_dir=None, verbose=True):
    """Compiles and links the op library to `out_path`; writes _build_info.py
    beside it. Returns the build-info dict."""
    t_start = time.time()
    tf = tf_config()
    nvcc = find_nvcc(tf["cuda_version"])
    build_dir = build_dir or os.path.join(ROOT, "build", "ops")
    os.makedirs(build_dir, exist_ok=True)
    cc, cu, layers, headers = sources()
    newest = lambda paths: max([os.path.getmtime(h) for h in paths] + [0])
    # cuda/ includes nothing of cc/: a cc/ header change leaves the .cu objects be.
    newest_header = {"cc": newest(headers),
                     "cuda": newest(h for h in headers if os.path.relpath(h, ROOT).startswith("cuda"))}

    cxx = os.environ.get("CXX", "g++")
    # TensorFlow's and CUDA's headers are system headers: -Wall (and -Werror
    # in CI) judge our own sources only.
    werror = os.environ.get("LIGHTSEQ_TF_WERROR") == "1"
    cxxflags = [re.sub(r"^-I", "-isystem", f) for f in tf["cflags"]] + [
        "-O3", "-fPIC", "-Wall", "-Wno-deprecated-declarations",
        "-I" + ROOT, "-I" + os.path.join(ROOT, "cuda", "include")] + (["-Werror"] if werror else [])
    jobs = []  # (cmd, obj, src)
    objs = []
    info = {"tf_version": tf["version"], "cuda": None, "cuda_archs": [], "tf_cuda": tf["cuda_version"]}
    toolchain = ""
    if nvcc:
        cuda_home = os.path.dirname(os.path.dirname(nvcc))
        # The GPU OpKernels see the toolkit's headers (cudaStream_t for the
        # launcher API; Eigen's GPU device wants cuda_runtime.h).
        cxxflags += ["-DGOOGLE_CUDA=1", "-DEIGEN_USE_GPU", "-isystem" + os.path.join(cuda_home, "include")]
        gencode, archs = gencode_flags(nvcc, tf["cuda_caps"])
        major, minor = nvcc_version(nvcc)
        min_driver, branch = MIN_DRIVER.get(major, ("%d.0" % major, "?"))
        info.update(cuda="%d.%d" % (major, minor), cuda_archs=archs, cuda_ptx=archs[-1],
                    min_driver=min_driver, min_driver_branch=branch)
        toolchain = "nvcc %d.%d" % (major, minor)
        for src in cu:
            obj = os.path.join(build_dir, src.replace("/", "_") + ".o")
            cmd = [nvcc, "-O3", "-std=c++17", "-Xcompiler", "-fPIC,-Wall", "-I" + os.path.join(ROOT, "cuda", "include"),
                   "-c", src, "-o", obj] + gencode + (["-Werror", "all-warnings", "-Xcompiler", "-Werror"]
                                                      if werror else [])
            jobs.append((cmd, obj, src))
    for src in cc + (layers if nvcc else []):
        obj = os.path.join(build_dir, src.replace("/", "_") + ("_gpu" if nvcc else "") + ".o")
        jobs.append(([cxx] + cxxflags + source_flags(src) + ["-c", src, "-o", obj], obj, src))

    todo = []
    for cmd, obj, src in jobs:
        objs.append(obj)
        # An object is reused only if built by the same command and toolkit
        # (switching CUDA 12 / 13 or flags in one build folder rebuilds it).
        signature = " ".join(cmd) + "\n" + toolchain + "\n"
        fresh = os.path.exists(obj) and os.path.getmtime(obj) > max(
            os.path.getmtime(os.path.join(ROOT, src)), newest_header["cuda" if src.endswith(".cu") else "cc"]
        ) and _read(obj + ".cmd") == signature
        if not fresh:
            todo.append((cmd, obj, src, signature))
    njobs = int(os.environ.get("LIGHTSEQ_TF_JOBS", os.cpu_count() or 2))
    failed = []
    with cf.ThreadPoolExecutor(max_workers=njobs) as ex:
        # Every file is compiled even after a failure: one build shows them all.
        futures = [ex.submit(_run, cmd, src, obj + ".cmd", sig) for cmd, obj, src, sig in todo]
        for f in futures:
            try:
                what, secs, warnings = f.result()
            except BuildError as e:
                failed.append(str(e))
                continue
            if verbose:
                print("[lightseq_tf build] %-45s %6.1f s" % (what, secs), flush=True)
                if warnings:
                    print(warnings, flush=True)
    if failed:
        raise BuildError("\n\n".join(failed))

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
        print("[lightseq_tf build] %s: TF %s, CUDA %s %s (needs a %s+ driver), %.1f s" % (
            out_path, info["tf_version"], info["cuda"] or "off", info["cuda_archs"],
            info.get("min_driver_branch"), info["build_seconds"]), flush=True)
    return info


def write_build_info(pkg_dir, info):
    with open(os.path.join(pkg_dir, "_build_info.py"), "w") as f:
        f.write('"""Written by build_tools/build.py: what this op library was built against."""\n')
        f.write("TF_VERSION = %r\n" % info["tf_version"])
        f.write("CUDA_VERSION = %r  # nvcc used for cuda/ (None: CPU-only build)\n" % info["cuda"])
        f.write("CUDA_ARCHS = %r  # SASS targets (compute capability x 10)\n" % info["cuda_archs"])
        f.write("CUDA_PTX = %r  # PTX target, JIT-compiled by the driver on newer GPUs\n"
                % info.get("cuda_ptx"))
        f.write("CUDA_MIN_DRIVER = %r  # CUDA version the NVIDIA driver must support (%s+)\n"
                % (info.get("min_driver"), info.get("min_driver_branch")))
        f.write("CUDA_MIN_DRIVER_BRANCH = %r\n" % info.get("min_driver_branch"))
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
