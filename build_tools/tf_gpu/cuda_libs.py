"""The CUDA libraries TensorFlow 2.21's GPU build opens, resolved on the GPU
test machine (CUDA 13) into one folder of links named by the CUDA 12 sonames
TF asks for, and checks that TF then registers the GPU and runs our ops there.

    python3 cuda_libs.py --cuda12 DIR --out DIR [--json FILE]   # make the folder
    python3 cuda_libs.py --check-tf      # TF lists the GPU and multiplies on it
    python3 cuda_libs.py --check-ops     # our op library's GPU kernels run

TF registers no GPU unless every one of these loads (dlopen by soname; TF
then looks each function up by name). Where the machine has the same soname
(cuSPARSE 12, cuDNN 9) it is used as it is. Where only CUDA 13's newer major
exists, the CUDA 13 file is linked under the CUDA 12 name: cuBLAS/cuBLASLt,
cuFFT and cuSOLVER keep their C entry points across these majors, so the
lookups succeed; whether every call TF makes behaves the same is what the
tests find out, which is why this is a test arrangement and not advice.
The CUDA runtime is carried (Debian's libcudart12): CUDA 13's runtime
changed structures TF reads (cudaDeviceProp), so it cannot stand in.
"""
import argparse
import glob
import json
import os
import re
import sys

# soname TF 2.21 opens -> the library's stem (CUDA 13 files are stem.so.N).
REQUIRED = {
    "libcudart.so.12": "libcudart",
    "libcublas.so.12": "libcublas",
    "libcublasLt.so.12": "libcublasLt",
    "libcufft.so.11": "libcufft",
    "libcusolver.so.11": "libcusolver",
    "libcusparse.so.12": "libcusparse",
    "libcudnn.so.9": "libcudnn",
}
# Opened only by what uses them (several GPUs): linked when present as they are.
OPTIONAL = {"libnccl.so.2": "libnccl"}


def search_dirs(carried, extra=()):
    """Where the machine keeps CUDA libraries: the carried CUDA 12 folder
    first, then `extra` (TFGPU_CUDA_LIB_DIRS), every nvidia/*/lib of this
    Python's site-packages (PyTorch's CUDA 13 wheels: nvidia/cu13/lib,
    nvidia/cudnn/lib, ...), torch/lib, the toolkit, the system's folder."""
    dirs = ([carried] if carried else []) + list(extra)
    import site
    roots = site.getsitepackages() + [site.getusersitepackages()]
    for root in roots:
        dirs += sorted(glob.glob(os.path.join(root, "nvidia", "*", "lib")))
        dirs += sorted(glob.glob(os.path.join(root, "nvidia", "*", "lib64")))
        dirs += [os.path.join(root, "torch", "lib")]
    dirs += ["/usr/local/cuda/lib64", "/usr/local/cuda/targets/x86_64-linux/lib",
             "/usr/lib/x86_64-linux-gnu"]
    seen, out = set(), []
    for d in dirs:
        d = os.path.realpath(d)
        if os.path.isdir(d) and d not in seen:
            seen.add(d)
            out.append(d)
    return out


def major_of(path, stem):
    m = re.match(re.escape(stem) + r"\.so\.(\d+)", os.path.basename(path))
    return int(m.group(1)) if m else None


def find(soname, stem, dirs):
    """(path, how): the exact soname if any directory has it, else the newest
    major of the same library."""
    for d in dirs:
        p = os.path.join(d, soname)
        if os.path.exists(p):
            return p, "same soname"
    best = None
    for d in dirs:
        for p in glob.glob(os.path.join(d, stem + ".so.*")):
            major = major_of(p, stem)
            if major is not None and (best is None or major > best[0]):
                best = (major, p)
    if best:
        return best[1], "%s.so.%d under the older soname" % (stem, best[0])
    return None, "not found"


def make_folder(carried, out, json_path):
    extra = [d for d in os.environ.get("TFGPU_CUDA_LIB_DIRS", "").split(":") if d]
    dirs = search_dirs(carried, extra)
    os.makedirs(out, exist_ok=True)
    for f in os.listdir(out):
        os.unlink(os.path.join(out, f))
    rows, missing = [], []
    for table, required in ((REQUIRED, True), (OPTIONAL, False)):
        for soname, stem in table.items():
            path, how = find(soname, stem, dirs)
            if path is None:
                if required:
                    missing.append(soname)
                continue
            real = os.path.realpath(path)
            os.symlink(real, os.path.join(out, soname))
            # The library's own dependents and dlopen()s (cuDNN's engine
            # libraries, cuBLASLt from cuBLAS) find their siblings by their
            # own names: link the real soname too.
            own = os.path.basename(path)
            if own != soname and not os.path.exists(os.path.join(out, own)):
                os.symlink(real, os.path.join(out, own))
            rows.append({"soname": soname, "file": real, "how": how,
                         "from": "carried (Debian)" if carried and real.startswith(
                             os.path.realpath(carried)) else os.path.dirname(real)})
    # Siblings opened by name (cuDNN's sub-libraries, cuBLAS' cuBLASLt 13):
    # every directory a link points into goes on LD_LIBRARY_PATH after ours.
    lib_dirs = sorted({os.path.dirname(r["file"]) for r in rows})
    print("CUDA libraries for TensorFlow %s:" % "2.21")
    for r in rows:
        print("  %-20s <- %s  [%s]" % (r["soname"], r["file"], r["how"]))
    if missing:
        print("  MISSING: %s (searched %s)" % (", ".join(missing), ", ".join(dirs)))
    with open(os.path.join(out, "LD_LIBRARY_PATH"), "w") as f:
        f.write(":".join([out] + lib_dirs) + "\n")
    if json_path:
        with open(json_path, "w") as f:
            json.dump({"links": rows, "missing": missing, "searched": dirs,
                       "lib_dirs": lib_dirs}, f, indent=1)
    return 1 if missing else 0


def loaded_cuda_libraries():
    """The CUDA libraries this process has mapped, by file (/proc/self/maps)."""
    names = set()
    with open("/proc/self/maps") as f:
        for line in f:
            path = line.split()[-1] if len(line.split()) >= 6 else ""
            base = os.path.basename(path)
            if re.match(r"lib(cuda|cudart|cublas|cufft|cusolver|cusparse|cudnn|nccl|nvrtc|nvJit)",
                        base):
                names.add(path)
    return sorted(names)


def check_tf():
    import numpy as np
    import tensorflow as tf
    info = tf.sysconfig.get_build_info()
    print("tensorflow %s, built with CUDA %s, cuDNN %s, %s" % (
        tf.__version__, info.get("cuda_version"), info.get("cudnn_version"),
        info.get("cuda_compute_capabilities")))
    gpus = tf.config.list_physical_devices("GPU")
    print("tf.config.list_physical_devices('GPU') =", gpus)
    if not gpus:
        print("TensorFlow sees no GPU: see the log above for the library it could not open")
        return 1
    print("device:", tf.config.experimental.get_device_details(gpus[0]))
    a = np.random.default_rng(0).standard_normal((512, 512)).astype(np.float32)
    with tf.device("/GPU:0"):
        c = tf.linalg.matmul(a, a)
    print("matmul on", c.device, "max |err| vs numpy:",
          float(np.abs(c.numpy() - a.astype(np.float64) @ a).max()))
    print("loaded:\n  " + "\n  ".join(loaded_cuda_libraries()))
    return 0


def check_ops():
    import numpy as np
    import tensorflow as tf
    from tensorflow.python.framework import kernels

    import lightseq_tf
    from lightseq_tf import _build_info
    print("lightseq_tf op library: %s (TF %s, CUDA %s, archs %s)" % (
        lightseq_tf.ops._library.library_path(), _build_info.TF_VERSION,
        _build_info.CUDA_VERSION, _build_info.CUDA_ARCHS))
    lightseq_tf.ops._library.ops()
    no_gpu = [op for op in ("LightseqLayerNorm", "LightseqEncoderLayer", "LightseqDecoderStep",
                            "LightseqMultiTensorAdam", "LightseqEmbedding")
              if "GPU" not in {k.device_type for k in
                               kernels.get_registered_kernels_for_op(op).kernel}]
    if no_gpu:
        print("no GPU kernels registered for", no_gpu, "(a CPU-only build?)")
        return 1
    if not tf.config.list_physical_devices("GPU"):
        print("GPU kernels registered; none run: TensorFlow lists no GPU")
        return 1
    tf.config.set_soft_device_placement(False)
    x = np.random.default_rng(0).standard_normal((64, 512)).astype(np.float32)
    g, b = np.ones(512, np.float32), np.zeros(512, np.float32)
    with tf.device("/GPU:0"):
        y = lightseq_tf.layer_norm(x, g, b)
    with tf.device("/CPU:0"):
        r = lightseq_tf.layer_norm(x, g, b)
    err = float(np.abs(y.numpy() - r.numpy()).max())
    print("layer_norm on %s, max |GPU - CPU| = %.3g" % (y.device, err))
    return 0 if "GPU" in y.device and err < 1e-4 else 1


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cuda12", help="the carried CUDA 12 libraries (Debian's debs, unpacked)")
    ap.add_argument("--out", help="the folder of links to make (goes first on LD_LIBRARY_PATH)")
    ap.add_argument("--json")
    ap.add_argument("--check-tf", action="store_true")
    ap.add_argument("--check-ops", action="store_true")
    a = ap.parse_args()
    if a.check_tf:
        return check_tf()
    if a.check_ops:
        return check_ops()
    if not a.out:
        ap.error("--out is needed")
    return make_folder(a.cuda12, a.out, a.json)


if __name__ == "__main__":
    sys.exit(main())
