"""Runs one of tests/cpu's check modules (their CHECKS lists) on the device
under test, in a process of its own: the tf_keras flavour must be chosen
before TensorFlow is first imported, so these cannot share the pytest
process (Keras 3).

    TF_USE_LEGACY_KERAS=1 python check_runner.py keras_layers_check
"""
import importlib
import os
import sys

here = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [here, os.path.join(here, "..", "common"), os.path.join(here, "..", "cpu")]

from target import DEVICE, run_check  # noqa: E402


def main(name):
    module = importlib.import_module(name)
    for check in module.CHECKS:
        run_check(check)
        print("passed", check.__name__, "on", DEVICE, flush=True)
    from lightseq_tf.layers._keras import KERAS3
    print("ALL OK keras", "3" if KERAS3 else "2.")


if __name__ == "__main__":
    main(sys.argv[1])
