import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")  # CPU kernels only, even where a GPU exists
# The numpy Philox reference shared with tests/gpu.
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "common"))
