"""bench: a reproducible benchmark suite for reward-guided decoding.

Compares reward-model parametrizations (RAD's per-candidate reward model vs. ARM's low-rank,
one-forward-per-token reward) for steering a causal LM at decoding time.
"""

__version__ = "0.1.0"
