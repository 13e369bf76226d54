"""NeurST's computation dtype where the user has not chosen one.

NeurST's CLI (`neurst-run` / `python -m neurst.cli.run_exp`, and
`neurst.cli.cascade_st`) computes in float16 (Keras' mixed_float16) unless
`--dtype` (or `dtype:` in a config file) says otherwise: the right default on
a GPU, which is what NeurST was written for, and the wrong one on a CPU,
where TensorFlow has no fast float16 GEMM on most x86 CPUs. Measured with
NeurST's own beam search over the demo's dev set
(benchmarks/cpu_neurst_decode_dtype.py): on our 2-core AMD EPYC (AVX-512
with BF16, no FP16) native NeurST searches 1.7x (64 sentences) to 2.0x
(500) longer in float16 than in float32; issue 19 reports 15x on another
machine of this kind (58 s against 3.96 s for 64 sentences), where oneDNN
ran its reference (scalar) float16 inner product for the output projection
(1.4 s a call). With our layers float16 is no faster on the CPU either
(1.0-1.25x float32's time), and it rounds differently (BLEU 26.56 against
26.66).

So where no GPU is visible, an unset dtype means float32, and one warning
says so. Everything else is NeurST's: with a GPU visible the default stays
float16, and an explicit choice always wins, NeurST's own (`--dtype`,
`dtype:` in a config file) or LIGHTSEQ_TF_NEURST_DTYPE=float16|float32 (the
default dtype, with or without a GPU). The hook installs this whether or not
our layers are swapped in: NeurST's float16 is slow on a CPU without us too.

How: NeurST's flag parser fills an unset flag from the flag's default, so the
`dtype` flag is defined without one (unset arrives as None), and
`training_utils.startup_env`, which every NeurST CLI calls with that value
before building anything, resolves None here.
"""
import os

from absl import logging

ENV = "LIGHTSEQ_TF_NEURST_DTYPE"
DTYPES = ("float16", "float32")  # what NeurST's startup_env accepts
NEURST_DEFAULT = "float16"


def _gpu_visible():
    import tensorflow as tf
    return bool(tf.config.list_physical_devices("GPU"))


def default_dtype(env=None, gpu_visible=None):
    """(dtype, reason) for a NeurST run whose --dtype is unset."""
    value = os.environ.get(ENV) if env is None else env
    if value:
        if value not in DTYPES:
            raise ValueError("%s must be float16 or float32 (NeurST's dtypes), got %r"
                             % (ENV, value))
        return value, "%s=%s" % (ENV, value)
    if _gpu_visible() if gpu_visible is None else gpu_visible:
        return NEURST_DEFAULT, "NeurST's default: a GPU is visible"
    return "float32", ("no GPU is visible: NeurST's default float16 is slow on a CPU, where "
                       "TensorFlow has no fast float16 GEMM; --dtype float16 or %s=float16 "
                       "keeps float16" % ENV)


def patch_flags_core(module):
    """NeurST's `dtype` program flag (run_exp, cascade_st) without a default."""
    native_define_flags = module.define_flags

    def define_flags(flag_list, *args, **kwargs):
        for flag in flag_list:
            if (isinstance(flag, module.Flag) and flag.name == "dtype"
                    and flag.default == NEURST_DEFAULT):
                flag._default = None
                flag._help += (" Unset: float16 where a GPU is visible, float32 where none is "
                               "(lightseq_tf; %s overrides)." % ENV)
        return native_define_flags(flag_list, *args, **kwargs)

    define_flags.__doc__ = native_define_flags.__doc__
    module.define_flags = define_flags


def patch_training_utils(module):
    """startup_env(dtype=None) (unset) computes in default_dtype()."""
    native_startup_env = module.startup_env

    def startup_env(dtype=None, *args, **kwargs):
        if dtype is None:
            dtype, reason = default_dtype()
            line = "lightseq_tf: NeurST computes in %s (%s)" % (dtype, reason)
            (logging.warning if dtype != NEURST_DEFAULT else logging.info)(line)
        return native_startup_env(dtype, *args, **kwargs)

    startup_env.__doc__ = native_startup_env.__doc__
    module.startup_env = startup_env


PATCHES = {"neurst.utils.flags_core": patch_flags_core,
           "neurst.training.training_utils": patch_training_utils}


def add_patches(patches):
    """The hook's {module: patch} plus ours (applied with acceleration on or
    off); where both patch one module, both run."""
    out = dict(patches)
    for name, ours in PATCHES.items():
        theirs = out.get(name)
        out[name] = ours if theirs is None else (lambda m, a=theirs, b=ours: (a(m), b(m)))
    return out
