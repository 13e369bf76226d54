"""The environment for NeurST subprocesses of these tests: they must import
the lightseq_tf under test (installed, or this source tree when that is what
the test process imported) and have our hook armed."""
import os

import lightseq_tf

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def subprocess_env(tmp_dir, **overrides):
    """os.environ plus a PYTHONPATH whose sitecustomize arms the hook (what
    the installed .pth does; install() is idempotent) and, for a source-tree
    run, the tree itself; TF_USE_LEGACY_KERAS is left to the hook."""
    site = os.path.join(str(tmp_dir), "site")
    os.makedirs(site, exist_ok=True)
    with open(os.path.join(site, "sitecustomize.py"), "w") as f:
        f.write("import lightseq_tf_neurst_hook; lightseq_tf_neurst_hook.install()\n")
    paths = [site]
    if os.path.dirname(os.path.dirname(os.path.abspath(lightseq_tf.__file__))) == ROOT:
        paths.append(ROOT)
    env = dict(os.environ)
    env.pop("TF_USE_LEGACY_KERAS", None)
    env["PYTHONPATH"] = os.pathsep.join(
        paths + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    env.update(overrides)
    return env
