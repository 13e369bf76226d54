"""pip install --no-build-isolation .   (TensorFlow must already be installed)

The op library is compiled by build_tools/build.py against the TensorFlow of
the installing environment; see README.md for CUDA options.
"""
import os
import sys

from setuptools import Extension, find_packages, setup
from setuptools.command.build_ext import build_ext
from setuptools.command.build_py import build_py

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


class BuildOps(build_ext):
    """Delegates the extension to build_tools.build (g++ + nvcc, TF's flags)."""

    def build_extension(self, ext):
        from build_tools import build

        try:
            build.build(self.get_ext_fullpath(ext.name), build_dir=os.path.join(self.build_temp, "ops"))
        except build.BuildError as e:
            sys.exit(str(e))


class BuildPyWithPth(build_py):
    """Also ships lightseq_tf_neurst.pth at the top of site-packages: the
    line that arms the NeurST hook (lightseq_tf_neurst_hook) in every process,
    so NeurST's own CLI picks our layers up with no edit."""

    PTH = "lightseq_tf_neurst.pth"

    def run(self):
        super().run()
        self.copy_file(os.path.join(os.path.dirname(os.path.abspath(__file__)), self.PTH),
                       os.path.join(self.build_lib, self.PTH))

    def get_outputs(self, include_bytecode=True):
        return super().get_outputs(include_bytecode) + [os.path.join(self.build_lib, self.PTH)]


setup(
    name="lightseq-tf",
    version="0.1.0",
    description="Fused Transformer training and decoding ops for TensorFlow 2 (LightSeq-style)",
    long_description=open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "README.md")).read(),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.9",
    packages=find_packages(include=["lightseq_tf", "lightseq_tf.*"]),
    py_modules=["lightseq_tf_neurst_hook"],
    ext_modules=[Extension("lightseq_tf._lightseq_ops", sources=[])],
    cmdclass={"build_ext": BuildOps, "build_py": BuildPyWithPth},
    # TensorFlow is deliberately not a requirement: users pick tensorflow,
    # tensorflow-cpu or tensorflow[and-cuda], and the build needs it present.
    install_requires=["numpy"],
    # NeurST 0.1.2 imports scipy and tensorboard without declaring them, and
    # needs Keras 2 (tf_keras) on TF >= 2.16: requirements/neurst.txt pins
    # the set CI tests (tf-keras goes in with --no-deps, see there).
    # ctranslate2: lightseq_tf.export.ctranslate2 (CI tests 4.8.5, requirements/ci.txt).
    extras_require={"test": ["pytest", "pytest-xdist"],
                    "neurst": ["neurst==0.1.2", "scipy", "tensorboard", "sacrebleu", "sacremoses",
                               "regex", "pyyaml", "six", "tqdm"],
                    "ctranslate2": ["ctranslate2>=4.8,<5", "pyyaml"]},
    zip_safe=False,
)
