"""Decoding: top-k (+ reward) logits processors, per-row seeded sampling, `generate_continuations`."""

from bench.decoding.generate import generate_continuations
from bench.decoding.processors import RowSeededSampler, TopKRewardLogitsProcessor

RewardLogitsProcessor = TopKRewardLogitsProcessor  # the name docs/architecture.md uses

__all__ = ["generate_continuations", "RowSeededSampler", "TopKRewardLogitsProcessor", "RewardLogitsProcessor"]
