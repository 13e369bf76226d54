"""NeurST's own CLI end to end, accelerated (CPU twin) and native, from the
same initial weights: 200 training steps each, then beam-search decoding of
each run's checkpoint by both, which must agree. Uses the demo's driver and
its generated corpus (deterministic, available on any machine)."""
import os

import pytest
from neurst_env import subprocess_env

from lightseq_tf.integrations.neurst import demo, demo_corpus

STEPS = 200


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    work = str(tmp_path_factory.mktemp("neurst_e2e"))
    os.environ["PYTHONPATH"] = subprocess_env(work)["PYTHONPATH"]  # the demo's NeurST runs
    corpus = demo_corpus.neurst_corpus(os.path.join(work, "data"), generated=True)
    # Dropout off: the two runs then differ only by float32 rounding.
    configs = demo.neurst_configs(work, corpus, "tiny", STEPS, dropout=0.0, summary_steps=20)
    init = demo.make_initial_checkpoint(configs["train"], os.path.join(work, "init"))
    trained = {name: demo.train(name, name == "accelerated", configs, work, init)
               for name in ("accelerated", "native")}
    return configs, trained


def test_losses_track(runs):
    _, trained = runs
    acc, nat = trained["accelerated"]["losses"], trained["native"]["losses"]
    assert sorted(acc) == sorted(nat) and max(acc) == STEPS, (acc, nat)
    # Same weights at step 0 and no dropout: only float32 rounding differs
    # (other summation orders), which Adam amplifies slowly over 200 steps.
    first = min(acc)
    assert abs(acc[first] - nat[first]) <= 1e-4 * nat[first], (acc[first], nat[first])
    for step in acc:
        assert abs(acc[step] - nat[step]) <= 0.01 * nat[step], (step, acc[step], nat[step])
    assert acc[STEPS] < 0.7 * acc[first]  # and it learned something


def test_checkpoints_decode_the_same_both_ways(runs):
    configs, trained = runs
    for name, run in trained.items():
        by_acc = demo.decode(run["model_dir"], True, configs, "by_accelerated")
        by_nat = demo.decode(run["model_dir"], False, configs, "by_native")
        assert len(by_acc["hypotheses"]) > 50
        assert by_acc["hypotheses"] == by_nat["hypotheses"], name
        assert by_acc["bleu"] == by_nat["bleu"]
