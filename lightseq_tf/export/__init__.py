"""Converters from our (and NeurST's) Transformer checkpoints to inference
engines: `lightseq_tf.export.ctranslate2` (CTranslate2, CPU and CUDA,
float32 / float16 / int8)."""
