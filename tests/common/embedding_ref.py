"""The embedding table gradient in the kernels' exact float32 order: ids
stably sorted; each id's sorted positions cut at multiples of 16 into pieces,
each piece summed in order from 0, the pieces added in order, then times
scale / (1 - rate). CPU twin and GPU must both equal it bit for bit."""
import numpy as np

import philox_ref


def grad_in_kernel_order(ids, dy, vocab, scale, rate, seed, padding_id=-1):
    ids = np.asarray(ids).reshape(-1)
    dy = np.asarray(dy, np.float32).reshape(ids.size, -1)
    hidden = dy.shape[1]
    keep = philox_ref.keep_mask(seed, ids.size * hidden, rate).reshape(ids.size, hidden)
    g = np.where(keep, dy, np.float32(0))
    mult = np.float32(scale) * philox_ref.scale(rate) if rate > 0 else np.float32(scale)
    out = np.zeros((vocab, hidden), np.float32)
    valid = (ids >= 0) & (ids < vocab) & (ids != padding_id)
    order = np.argsort(np.where(valid, ids, vocab), kind="stable")
    sorted_ids = np.where(valid, ids, vocab)[order]
    for v in range(vocab):
        pos = np.nonzero(sorted_ids == v)[0]
        if len(pos) == 0:
            continue
        acc = None
        for chunk in np.unique(pos // 16):
            piece = np.zeros(hidden, np.float32)
            for p in pos[pos // 16 == chunk]:
                piece += g[order[p]]
            acc = piece if acc is None else acc + piece
        out[v] = acc * np.float32(mult)
    return out
