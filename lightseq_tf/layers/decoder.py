"""LSTransformerDecoderLayer: causal self-attention, encoder-decoder
attention and FFN (pre- or post-LN) over the fused ops, with NeurST's
variable layout and incremental-decoding cache.

Variables (NeurST's TransformerDecoderLayer names and shapes):
    self_attention_prepost_wrapper/ln/{gamma, beta}
    self_attention_prepost_wrapper/self_attention/qkv_transform/{kernel [H, 3H], bias [3H]}
    self_attention_prepost_wrapper/self_attention/output_transform/{kernel [H, H], bias [H]}
    encdec_attention_prepost_wrapper/ln/{gamma, beta}
    encdec_attention_prepost_wrapper/encdec_attention/q_transform/{kernel [H, H], bias [H]}
    encdec_attention_prepost_wrapper/encdec_attention/kv_transform/{kernel [H, 2H], bias [2H]}
    encdec_attention_prepost_wrapper/encdec_attention/output_transform/{kernel [H, H], bias [H]}
    ffn_prepost_wrapper/ln/{gamma, beta}
    ffn_prepost_wrapper/ffn/{dense1, dense2}/{kernel, bias}

Cache (NeurST's layout and protocol): `create_decoding_internal_cache()`
gives {"self_attention": {"keys", "values"}} of shape [0, heads, head_dim]
(callers tile it to [batch, 0, heads, head_dim]); `memorize_memory(memory)`
gives {"memory": {"keys", "values"}} [batch, memory_length, heads, head_dim],
computed once per sentence. A call with a cache appends this step's keys and
values to cache["self_attention"] (the dict is updated, as NeurST's is) and
reads the memory's from cache["memory"]; beam search reorders the cache with
tf.gather on axis 0. NeurST's static-shape mode: a cache pre-padded to
[batch, P, heads, head_dim] (`create_decoding_internal_cache(P)`, tiled) and
`decode_loop_step=t` write position t and attend to positions 0..t.
Where the whole-layer op runs (a GPU), each call with a cache is one
LightseqDecoderStep op (lightseq_tf.ops.decoder_step), which reads both
caches in this layout in place; otherwise the fused ops are composed.
"""
import tensorflow as tf

from lightseq_tf.layers import _keras
from lightseq_tf.layers import _transformer as tr
from lightseq_tf.ops.decoder_layer import decoder_layer
from lightseq_tf.ops.decoder_step import decoder_step


def _check_memory_batch(memory_batch, x):
    if memory_batch is not None and x.shape[0] is not None and memory_batch != x.shape[0]:
        raise ValueError("memory batch (%d) differs from the input batch (%d)"
                         % (memory_batch, x.shape[0]))


@_keras.serializable
class LSTransformerDecoderLayer(tr.TransformerLayerBase):
    """x [batch, length, hidden], memory [batch, memory_length, hidden] ->
    [batch, length, hidden].

    Self-attention is causal (position i sees positions <= i, counting the
    cached ones before it). Memory keys >= memory_lengths[b] are masked
    (memory_lengths, or memory_mask [batch, memory_length], or neither);
    memory_lengths [batch, length] (or [1, length]) gives each query its own
    limit, e.g. wait-k's lagged memory (those calls compose the fused ops:
    the whole-layer and step ops take one length per sentence).
    cross_attention=False makes a decoder-only layer (GPT-2's): no memory.
    Dropout streams: seed + 0/1 self-attention probabilities/output, + 2/3
    encoder-decoder attention, + 4/5 FFN activation/output.
    """

    def __init__(self, config, epsilon=1e-6, cross_attention=True, **kwargs):
        """cross_attention=False: a decoder-only layer (GPT-2's; NeurST's
        with_cross_attention=False): causal self-attention and FFN, no memory."""
        self.cross_attention = bool(cross_attention)
        super().__init__(config, epsilon=epsilon, **kwargs)

    def build(self, input_shape=None):
        c = self.config
        h = c.hidden_size
        self.self_attention_block = tr.self_attention_block(h)
        self.encdec_attention_block = tr.Weights("encdec_attention_prepost_wrapper", parts=[
            tr.ln_weights("ln", h),
            tr.Weights("encdec_attention", parts=[tr.dense_weights("q_transform", h, h),
                                                  tr.dense_weights("kv_transform", h, 2 * h),
                                                  tr.dense_weights("output_transform", h, h)])]) \
            if self.cross_attention else None
        self.ffn_block = tr.ffn_block(h, c.intermediate_size)
        for block in (self.self_attention_block, self.encdec_attention_block, self.ffn_block):
            if block is not None:
                block.build(input_shape)
        self.built = True

    def keras_config(self):
        return dict(super().keras_config(), cross_attention=self.cross_attention)

    def _encdec(self):
        return self.encdec_attention_block.parts["encdec_attention"]

    def create_decoding_internal_cache(self, decode_padded_length=None):
        return self._self_attention_cache(decode_padded_length or 0)

    def memorize_memory(self, memory):
        """The memory's encoder-decoder keys and values, once per sentence."""
        if not self.cross_attention:
            raise ValueError("a decoder layer without cross-attention has no memory to memorize")
        if not self.built:
            self.build(memory.shape)
        k, v = tf.unstack(self._project(tf.cast(memory, self.compute_dtype),
                                        self._encdec().parts["kv_transform"], 2))
        return {"memory": {"keys": tr.to_cache(k), "values": tr.to_cache(v)}}

    def call(self, inputs, memory=None, memory_lengths=None, memory_mask=None, cache=None,
             decode_loop_step=None, training=None):
        if not self.cross_attention:
            if memory is not None or memory_lengths is not None or memory_mask is not None:
                raise ValueError("this decoder layer has no cross-attention (cross_attention="
                                 "False): memory, memory_lengths and memory_mask must be None")
        elif memory is None and (cache is None or "memory" not in cache):
            raise ValueError("the decoder layer needs `memory` (or a cache from memorize_memory)")
        past, past_checks = (None, []) if cache is None else self._past(cache, inputs)
        if decode_loop_step is not None and past is None:
            raise ValueError("decode_loop_step needs a cache (the static-shape decoding mode)")
        if past is None:
            total = None
        elif decode_loop_step is None:  # dynamic: the cache grows by this call's length
            total = tf.shape(past["keys"])[1] + tf.shape(inputs)[1]
        else:  # static: a pre-padded cache written at decode_loop_step
            if inputs.shape[1] is not None and inputs.shape[1] != 1:
                raise ValueError("decode_loop_step decodes one position per call, got length %d"
                                 % inputs.shape[1])
            total = tf.shape(past["keys"])[1]
        x, checks = self._checked_input(inputs, length_limit_of=total)
        if decode_loop_step is not None:
            checks.append(tf.debugging.assert_less(
                tf.cast(decode_loop_step, tf.int32), tf.shape(past["keys"])[1],
                message="decode_loop_step must be < the padded cache length"))
        checks += past_checks
        with tf.control_dependencies(checks):
            seed = _keras.draw_seed()
        # The whole-layer and step ops take one memory length per sentence.
        ops_fit = self.cross_attention and (memory_lengths is None or
                                            tf.convert_to_tensor(memory_lengths).shape.rank == 1)
        if not self.cross_attention:
            mem_k = mem_v = mem_lengths = None
        if past is None and memory is not None and ops_fit and self._use_whole_layer_op():
            memory = tf.cast(memory, self.compute_dtype)
            _check_memory_batch(memory.shape[0], x)
            mem_lengths = None if memory_lengths is None and memory_mask is None else \
                tr.lengths_of(memory, memory_lengths, memory_mask)
            return _keras.by_training(training, lambda train: self._forward_op(
                x, memory, mem_lengths, seed, train))
        if self.cross_attention:
            mem_cache = None if cache is None else cache.get("memory")
            if mem_cache is None:
                mem_cache = self.memorize_memory(memory)["memory"]
            mem_lengths = tr.lengths_of(mem_cache["keys"], memory_lengths, memory_mask)
            _check_memory_batch(mem_cache["keys"].shape[0], x)  # keys [B, S, heads, d]
        # Incremental decoding is inference (dropout only if training=True is
        # passed, which the composed path serves).
        if past is not None and training is not True and ops_fit and self._use_whole_layer_op():
            with tf.control_dependencies(checks):  # the step op takes no seed to hang them on
                x = tf.identity(x)
            y, new_past = self._step_op(x, mem_cache, mem_lengths, past, decode_loop_step)
        else:
            if self.cross_attention:
                mem_k, mem_v = tr.from_cache(mem_cache["keys"]), tr.from_cache(
                    mem_cache["values"])
            if past is None:
                return _keras.by_training(training, lambda train: self._forward(
                    x, mem_k, mem_v, mem_lengths, None, seed, train))
            y, new_past = self._forward(x, mem_k, mem_v, mem_lengths, past, seed,
                                        training is True, decode_loop_step)
        self._store_cache(cache, new_past)
        return y

    def _forward_op(self, x, memory, mem_lengths, seed, train):
        """All target positions at once through the whole-layer op."""
        return decoder_layer(x, memory, mem_lengths, self._op_params(), **self._op_attrs(train),
                             seed=seed)

    def _step_op(self, x, mem_cache, mem_lengths, past, step):
        """Incremental positions through the decoding-step op: the dynamic
        cache grows (append), the static one is written at `step`."""
        attrs = {k: v for k, v in self._op_attrs(False).items() if "dropout" not in k}
        dt = self.compute_dtype
        y, keys, values = decoder_step(
            x, tf.cast(past["keys"], dt), tf.cast(past["values"], dt), step,
            tf.cast(mem_cache["keys"], dt), tf.cast(mem_cache["values"], dt), mem_lengths,
            self._op_params(), append=step is None, **attrs)
        return y, {"keys": keys, "values": values}

    def _op_params(self):
        """The variables by the ops' parameter names, in the compute dtype."""
        sa = self.self_attention_block.parts
        ed = self.encdec_attention_block.parts
        ffn = self.ffn_block.parts
        att, cross, dense = sa["self_attention"].parts, ed["encdec_attention"].parts, \
            ffn["ffn"].parts
        params = dict(
            ln1_gamma=sa["ln"].gamma, ln1_beta=sa["ln"].beta,
            qkv_kernel=att["qkv_transform"].kernel, qkv_bias=att["qkv_transform"].bias,
            out_kernel=att["output_transform"].kernel, out_bias=att["output_transform"].bias,
            ln2_gamma=ed["ln"].gamma, ln2_beta=ed["ln"].beta,
            q_kernel=cross["q_transform"].kernel, q_bias=cross["q_transform"].bias,
            kv_kernel=cross["kv_transform"].kernel, kv_bias=cross["kv_transform"].bias,
            cross_out_kernel=cross["output_transform"].kernel,
            cross_out_bias=cross["output_transform"].bias,
            ln3_gamma=ffn["ln"].gamma, ln3_beta=ffn["ln"].beta,
            ffn1_kernel=dense["dense1"].kernel, ffn1_bias=dense["dense1"].bias,
            ffn2_kernel=dense["dense2"].kernel, ffn2_bias=dense["dense2"].bias)
        return {k: self._w(v) for k, v in params.items()}

    def _forward(self, x, mem_k, mem_v, mem_lengths, past, seed, train, step=None):
        sa = self.self_attention_block.parts["self_attention"]
        new_past = {}

        def self_attention(t, residual):
            q, k, v = tf.unstack(self._project(t, sa.parts["qkv_transform"], 3))
            causal = True
            if past is not None and step is None:  # dynamic cache: append
                k, v = tr.append_to_cache(past, k, v, new_past)
            elif past is not None:  # static cache: write position `step`, attend to 0..step
                at = tf.one_hot(tf.cast(step, tf.int32), tf.shape(past["keys"])[1], dtype=k.dtype)
                at = tf.reshape(at, [1, 1, -1, 1])
                k = tr.from_cache(tf.cast(past["keys"], k.dtype)) * (1 - at) + k * at
                v = tr.from_cache(tf.cast(past["values"], v.dtype)) * (1 - at) + v * at
                new_past["keys"], new_past["values"] = tr.to_cache(k), tr.to_cache(v)
                causal = False  # one query: the key lengths below are the mask
            lengths = tf.fill(tf.shape(k)[:1], tf.shape(k)[2] if step is None
                              else tf.cast(step, tf.int32) + 1)
            return self._attend(q, k, v, lengths, causal, sa.parts["output_transform"],
                                residual, seed, train)

        def encdec_attention(t, residual):
            ed = self._encdec()
            q = self._project(t, ed.parts["q_transform"], 1)[0]
            return self._attend(q, mem_k, mem_v, mem_lengths, False, ed.parts["output_transform"],
                                residual, seed + 2, train)

        x1 = self._block(x, self.self_attention_block.parts["ln"], self_attention)
        x2 = x1 if not self.cross_attention else self._block(
            x1, self.encdec_attention_block.parts["ln"], encdec_attention)
        y = self._ffn(x2, self.ffn_block, seed + 4, train)
        return (y, new_past) if past is not None else y
