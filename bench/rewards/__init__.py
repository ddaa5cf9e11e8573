"""Reward models: the one interface (`base`), one module per parametrization, and the registry of names.

Names are resolved lazily so that `import bench.rewards.registry` (the Snakefile, the config schema) does
not import torch.
"""

__all__ = [
    "RewardConfig",
    "RewardModel",
    "PrefixCache",
    "PARAMETRIZATIONS",
    "build_reward_model",
    "load_reward_model",
    "reward_class",
]


def __getattr__(name: str):
    if name in ("RewardConfig", "RewardModel", "PrefixCache"):
        from bench.rewards import base

        return getattr(base, name)
    if name in __all__:
        from bench.rewards import registry

        return getattr(registry, name)
    raise AttributeError(f"module 'bench.rewards' has no attribute '{name}'")
