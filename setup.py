"""pip install --no-build-isolation .   (TensorFlow must already be installed)

The op library is compiled by build_tools/build.py against the TensorFlow of
the installing environment; see README.md for CUDA options.
"""
import os
import sys

from setuptools import Extension, find_packages, setup
from setuptools.command.build_ext import build_ext

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


class BuildOps(build_ext):
    """Delegates the extension to build_tools.build (g++ + nvcc, TF's flags)."""

    def build_extension(self, ext):
        from build_tools import build

        try:
            build.build(self.get_ext_fullpath(ext.name), build_dir=os.path.join(self.build_temp, "ops"))
        except build.BuildError as e:
            sys.exit(str(e))


setup(
    name="lightseq-tf",
    version="0.1.0",
    description="Fused Transformer training and decoding ops for TensorFlow 2 (LightSeq-style)",
    long_description=open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "README.md")).read(),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.9",
    packages=find_packages(include=["lightseq_tf", "lightseq_tf.*"]),
    ext_modules=[Extension("lightseq_tf._lightseq_ops", sources=[])],
    cmdclass={"build_ext": BuildOps},
    # TensorFlow is deliberately not a requirement: users pick tensorflow,
    # tensorflow-cpu or tensorflow[and-cuda], and the build needs it present.
    install_requires=["numpy"],
    extras_require={"test": ["pytest", "pytest-xdist"]},
    zip_safe=False,
)
