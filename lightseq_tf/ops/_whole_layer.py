"""What the whole-layer op wrappers (encoder_layer.py, decoder_layer.py)
share: their attributes and the checks of their Python arguments."""
from lightseq_tf.ops.bias_act_dropout import ACTIVATIONS

# The attributes both ops take (and their gradient ops repeat).
ATTRS = ("heads", "pre_ln", "activation", "attn_dropout", "act_dropout", "hidden_dropout",
         "epsilon")


def check_args(params, names, activation):
    """ValueError for an unknown activation or a parameter missing from `params`."""
    if activation not in ACTIVATIONS:
        raise ValueError("activation must be one of %s, got %r" % (ACTIVATIONS, activation))
    missing = sorted(set(names) - set(params))
    if missing:
        raise ValueError("params lacks %s (needs %s)" % (", ".join(missing), ", ".join(names)))


def attrs(heads, pre_ln, activation, attn_dropout, act_dropout, hidden_dropout, epsilon):
    """The ops' attribute values, typed as the op registrations want them."""
    return dict(heads=int(heads), pre_ln=bool(pre_ln), activation=activation,
                attn_dropout=float(attn_dropout), act_dropout=float(act_dropout),
                hidden_dropout=float(hidden_dropout), epsilon=float(epsilon))


def attrs_of(op):
    """A forward op's attributes, for its gradient op."""
    return {a: op.get_attr(a) for a in ATTRS}
