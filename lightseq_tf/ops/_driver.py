"""Refuses, at import, an NVIDIA driver too old for the op library's CUDA code.

The library links CUDA's static runtime, which needs a driver that supports
its CUDA major (12.x: R525+, 13.x: R580+). On an older driver the library
still loads and TensorFlow still places our ops on the GPU, and the first
kernel launch then fails deep inside an op (cudaErrorInsufficientDriver).
We compare the driver's CUDA version (cuDriverGetVersion, read through
libcuda.so.1 with ctypes: no CUDA initialisation, no GPU needed) with the one
recorded at build time, and raise one error that names both and the fix.
Nothing is checked without a driver, for a CPU-only build, or where
TensorFlow sees no GPU (our ops then run on the CPU, as on any CPU machine).
"""
import ctypes


class DriverTooOldError(ImportError):
    pass


def driver_cuda_version(library="libcuda.so.1"):
    """(major, minor) of the CUDA version the installed driver supports, or
    None where there is no driver library (CPU machines)."""
    try:
        lib = ctypes.CDLL(library)
        get = lib.cuDriverGetVersion
    except (OSError, AttributeError):
        return None
    version = ctypes.c_int(0)
    if get(ctypes.byref(version)) != 0 or version.value <= 0:  # CUDA_SUCCESS is 0
        return None
    return version.value // 1000, version.value % 1000 // 10


def _parse(version):
    return tuple(int(p) for p in str(version).split(".")[:2])


def check_driver(built_with, needed, branch, found, gpus_visible):
    """The decision. built_with / needed: the library's CUDA version and the
    driver CUDA version it needs ("12.4", "12.0"; None for a CPU-only build);
    branch: that driver's branch ("R525"); found: driver_cuda_version();
    gpus_visible: a callable, asked only when the driver is too old (it
    initialises TensorFlow's GPU platform)."""
    if needed is None or found is None or found >= _parse(needed):
        return
    if not gpus_visible():
        return
    cuda12 = ("install the lightseq_tf wheel built with CUDA 12 (R525+ drivers; "
              "build_tools/make_wheel.sh makes it), or " if _parse(built_with)[0] > 12 else "")
    raise DriverTooOldError(
        "lightseq_tf's op library was built with CUDA %s and needs an NVIDIA driver that supports "
        "CUDA %s or newer (%s+), but this machine's driver supports CUDA %d.%d, so its GPU kernels "
        "cannot launch. Fix: %supgrade the NVIDIA driver to %s or newer. (To run on the CPU "
        "instead, hide the GPUs: CUDA_VISIBLE_DEVICES=\"\".)"
        % (built_with, needed, branch, found[0], found[1], cuda12, branch))


def _tf_sees_gpus():
    import tensorflow as tf
    return bool(tf.config.list_physical_devices("GPU"))


def check(build_info, driver=driver_cuda_version, gpus_visible=_tf_sees_gpus):
    """check_driver() for an op library (its _build_info module) and this
    machine's driver."""
    needed = getattr(build_info, "CUDA_MIN_DRIVER", None)
    if needed is None:
        return
    check_driver(build_info.CUDA_VERSION, needed, getattr(build_info, "CUDA_MIN_DRIVER_BRANCH", "?"),
                 driver(), gpus_visible)
