"""An expensive fixture product (a trained model) made once per test session,
also under pytest-xdist, whose workers are separate processes each with its
own session fixtures: the first worker to ask makes it in a directory all
workers share, under a file lock; the others wait for it and read it."""
import fcntl
import os
import shutil


def made_once(tmp_path_factory, name, make):
    """make(path) fills directory `path` (once per session); returns path."""
    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent  # the session's root, above every worker's own
    path = root / name
    with open(str(root / (name + ".lock")), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if not (path / ".made").exists():
                shutil.rmtree(str(path), ignore_errors=True)  # a failed attempt's leftovers
                path.mkdir()
                make(path)
                (path / ".made").touch()
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    return path
