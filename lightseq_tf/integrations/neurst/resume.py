"""Exact resumption of NeurST training (a swap of the hook, component
"resume").

NeurST's checkpoints (`ckpt-S`, NameBasedCheckpointManager) hold the model's
variables and name the step; a restarted trainer restores both, but starts
Adam's moments from zero and reads the training data from its beginning
again, so a run killed between checkpoints does not continue the way it
would have. With acceleration on, the hook adds:

- next to every `ckpt-S` that NeurST writes, `optimizer-S`: the optimizer's
  state (iterations, every slot: LSAdam's m and v) as a TF object-based
  checkpoint, written right after it and pruned with it;
- on a restart from `ckpt-S` (NeurST found it in --model_dir), that state
  restored (the slots when LSAdam creates them, before its first update), and
  the training stream of a run by steps advanced past the S batches already
  consumed.

With NeurST's shuffle off (shuffle_buffer 0: deterministic batches) and
dropout off, the resumed run then equals an uninterrupted one bit for bit
(tests/neurst/test_neurst_resume.py). With NeurST's unseeded shuffle, or
dropout (fresh masks per process, as in NeurST), it continues statistically
like one. NeurST trains `train_steps` more steps after a restart (its own
rule): ask for the remainder to stop where the first run would have.
"""
import contextlib
import os
import re

import tensorflow as tf
from absl import logging

_PREFIX = "optimizer"


def _state(keras_model):
    # The model is in the checkpoint for the slots' sake: TF keys a slot by
    # its variable's path, so a slot is only written with its variable.
    return tf.train.Checkpoint(optimizer=keras_model.optimizer, model=keras_model)


def _steps_in(directory, prefix):
    out = {}
    for name in tf.io.gfile.listdir(directory) if tf.io.gfile.isdir(directory) else []:
        m = re.fullmatch(r"%s-(\d+)\.index" % prefix, name)
        if m:
            out[int(m.group(1))] = os.path.join(directory, name[:-len(".index")])
    return out


def resume_step(model_dir):
    """The step of the checkpoint NeurST will restore from model_dir, or 0."""
    from neurst.utils import compat
    latest = tf.train.latest_checkpoint(model_dir) if model_dir else None
    return (compat.hack_global_step(latest) or 0) if latest else 0


def patch_checkpoint_callback(module):
    cls = module.CustomCheckpointCallback
    on_train_begin, on_batch_end = cls.on_train_begin, cls.custom_on_train_batch_end

    def begin(self, logs=None):
        on_train_begin(self, logs)
        from neurst.utils import compat
        step = compat.get_registered_initial_step() or 0
        path = _steps_in(self._checkpoint_manager.directory, _PREFIX).get(step)
        if step and path:
            _state(self.model).restore(path)
            _count_from_restored_iterations(self.model.optimizer)
            logging.info("lightseq_tf: optimizer state of step %d restored from %s", step, path)
        elif step:
            logging.info("lightseq_tf: no optimizer state saved with step %d: Adam's moments "
                         "start from zero (NeurST's own behaviour)", step)

    def batch_end(self, step, logs=None):
        on_batch_end(self, step, logs)
        if step % self._save_checkpoint_steps:
            return
        directory = self._checkpoint_manager.directory
        kept = _steps_in(directory, "ckpt")
        if step not in kept:  # NeurST's save failed (it logged why)
            return
        _state(self.model).write(os.path.join(directory, "%s-%d" % (_PREFIX, step)))
        for old, path in _steps_in(directory, _PREFIX).items():
            if old not in kept:  # pruned with NeurST's checkpoint
                for f in tf.io.gfile.glob(path + ".*"):
                    tf.io.gfile.remove(f)

    cls.on_train_begin = begin
    cls.custom_on_train_batch_end = batch_end


def _count_from_restored_iterations(optimizer):
    """NeurST's learning-rate schedules add the restored step to the
    optimizer's `iterations` (which NeurST itself restarts from 0); restored,
    `iterations` already is the global step, so that offset goes. Read when
    the train step is traced, after on_train_begin."""
    inner = getattr(optimizer, "inner_optimizer", optimizer)
    hyper = getattr(inner, "_hyper", {}).get("learning_rate")
    offset = getattr(hyper, "_initial_step", None)
    if offset is not None:
        hyper._initial_step = tf.zeros_like(offset) if tf.is_tensor(offset) else 0


def patch_trainer(module):
    cls = module.Trainer
    run = cls.run

    def resumed_run(self):
        step = resume_step(self.model_dir)
        if not step or self._train_epochs:
            return run(self)
        with _skipping(module.training_utils, step):
            logging.info("lightseq_tf: resuming at step %d: the first %d training batches are "
                         "skipped (already consumed)", step, step)
            return run(self)

    cls.run = resumed_run


@contextlib.contextmanager
def _skipping(training_utils, batches):
    """training_utils.build_datasets returning the repeated stream past
    `batches` (the trainer repeats it again, a no-op on an endless stream)."""
    build = training_utils.build_datasets

    def build_past(*args, **kwargs):
        return build(*args, **kwargs).repeat().skip(batches)

    training_utils.build_datasets = build_past
    try:
        yield
    finally:
        training_utils.build_datasets = build
