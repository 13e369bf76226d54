"""The environment for a test's own Python subprocess: the lightseq_tf this
pytest process imported (the installed package in CI, the source tree with its
in-place build in development) first on PYTHONPATH, plus `extra`."""
import os

import lightseq_tf


def subprocess_env(**extra):
    env = dict(os.environ)
    package_root = os.path.dirname(os.path.dirname(os.path.abspath(lightseq_tf.__file__)))
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
    env.pop("TF_CONFIG", None)
    env.update(extra)
    return env
