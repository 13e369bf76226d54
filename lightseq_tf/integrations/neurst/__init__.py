"""NeurST (bytedance/neurst) runs unchanged, on current TensorFlow, with our layers.

Installed with the package, `lightseq_tf_neurst_hook` (loaded by a .pth file,
so no import of ours is needed) waits for `import neurst`; then `hook`:
  - runs every NeurST module with the modern-TF mappings of `compat`
    (scoped to NeurST's own modules; see the table there),
  - swaps NeurST's Transformer layers, output LayerNorms, label-smoothed
    cross-entropy and Adam for ours (`swaps`), keeping NeurST's
    signatures, cache dicts and variable names,
  - where no GPU is visible, computes in float32 when NeurST's --dtype is
    unset instead of NeurST's float16, which is slow on a CPU
    (`compute_dtype`; with the swaps on or off).
LIGHTSEQ_TF_NEURST=1 forces the swaps on (CPU twin), =0 turns them off;
unset, they are on when a GPU is visible and the op library has CUDA.
"""
