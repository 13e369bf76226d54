"""Beam search over an incremental decoder (greedy is beam_size 1), in
TensorFlow ops only (one tf.while_loop), so it runs eagerly, in tf.function
and in an exported SavedModel alike.

beam_size 1 is greedy decoding: the argmax at every step, until EOS.
Scoring is GNMT's: a finished hypothesis of n tokens (its EOS included)
scores log P / ((5 + n) / 6) ** alpha. The search keeps `beam_size` alive
hypotheses and the `beam_size` best finished ones per sentence and stops at
`max_len` or once no alive hypothesis can still beat the worst finished one
(its log-probability can only fall, and the length penalty is largest at
max_len).
"""
import tensorflow as tf

_NEG_INF = -1e9  # float32 "impossible": sums of a few of these stay finite


def length_penalty(length, alpha):
    return tf.pow((5.0 + tf.cast(length, tf.float32)) / 6.0, alpha)


def _gather_beams(t, indices):
    """t [B, K', ...] -> [B, K, ...] at indices [B, K]."""
    return tf.gather(t, indices, batch_dims=1)


def beam_search(step_fn, state, batch, beam_size, max_len, alpha, start_id, eos_id, pad_id):
    """Decode `batch` sentences.

    step_fn(ids [batch * beam_size], t, state) -> (log_probs [batch * beam_size,
    vocab] float32, state): the next-token distribution after feeding ids at
    position t; every tensor in `state` has batch * beam_size rows (row
    b * beam_size + k is hypothesis k of sentence b), and is reordered here
    (tf.gather) as hypotheses are selected. max_len: scalar int, tokens to
    generate at most. Returns (ids [batch, length] int32, each the best
    hypothesis, padded with pad_id after its EOS; scores [batch] float32).
    """
    k = beam_size
    # 2k candidates per step keep k alive ones even when k of them just ended;
    # beam_size 1 takes the argmax alone, which makes it greedy decoding.
    candidates = 2 * k if k > 1 else 1
    max_len = tf.cast(max_len, tf.int32)
    alive_seq = tf.fill([batch, k, 1], tf.cast(start_id, tf.int32))
    alive_logp = tf.tile(tf.constant([[0.0] + [_NEG_INF] * (k - 1)]), [batch, 1])
    fin_seq = tf.fill([batch, k, 1], tf.cast(pad_id, tf.int32))
    fin_score = tf.fill([batch, k], _NEG_INF)
    fin_flag = tf.zeros([batch, k], tf.bool)
    rows = tf.range(batch)[:, None] * k  # first flat row of each sentence

    def body(t, alive_seq, alive_logp, fin_seq, fin_score, fin_flag, state):
        logp, state = step_fn(tf.reshape(alive_seq[:, :, -1], [-1]), t, state)
        vocab = tf.shape(logp)[-1]
        cand = alive_logp[:, :, None] + tf.reshape(logp, [batch, k, vocab])
        scores, flat = tf.math.top_k(tf.reshape(cand, [batch, k * vocab]), candidates)
        beam, token = flat // vocab, flat % vocab
        seq = tf.concat([_gather_beams(alive_seq, beam), token[:, :, None]], axis=2)
        is_eos = tf.equal(token, eos_id)

        # Alive: the best k candidates that did not just end.
        alive_logp, pick = tf.math.top_k(tf.where(is_eos, _NEG_INF, scores), k)
        alive_seq = _gather_beams(seq, pick)
        state = tf.nest.map_structure(
            lambda s: tf.gather(s, tf.reshape(rows + _gather_beams(beam, pick), [-1])), state)

        # Finished: the best k of the old finished and the candidates that ended.
        ended = tf.where(is_eos, scores / length_penalty(t + 1, alpha), _NEG_INF)
        old = tf.concat([fin_seq, tf.fill([batch, k, 1], tf.cast(pad_id, tf.int32))], axis=2)
        fin_score, pick = tf.math.top_k(tf.concat([fin_score, ended], axis=1), k)
        fin_seq = _gather_beams(tf.concat([old, seq], axis=1), pick)
        fin_flag = _gather_beams(tf.concat([fin_flag, is_eos], axis=1), pick)
        return t + 1, alive_seq, alive_logp, fin_seq, fin_score, fin_flag, state

    def cond(t, alive_seq, alive_logp, fin_seq, fin_score, fin_flag, state):
        best_alive = alive_logp[:, 0] / length_penalty(max_len, alpha)
        worst_finished = tf.where(tf.reduce_all(fin_flag, axis=1),
                                  tf.reduce_min(fin_score, axis=1), _NEG_INF)
        return tf.logical_and(t < max_len,
                              tf.logical_not(tf.reduce_all(worst_finished > best_alive)))

    def invariant(x):
        return tf.TensorShape([None] * x.shape.rank)

    loop_vars = (tf.constant(0), alive_seq, alive_logp, fin_seq, fin_score, fin_flag, state)
    t, alive_seq, alive_logp, fin_seq, fin_score, fin_flag, _ = tf.while_loop(
        cond, body, loop_vars,
        shape_invariants=tf.nest.map_structure(invariant, loop_vars))
    # A sentence with no finished hypothesis returns its best alive one.
    has_finished = fin_flag[:, 0]
    alive_score = alive_logp[:, 0] / length_penalty(t, alpha)
    ids = tf.where(has_finished[:, None], fin_seq[:, 0, 1:], alive_seq[:, 0, 1:])
    scores = tf.where(has_finished, fin_score[:, 0], alive_score)
    return ids, scores
