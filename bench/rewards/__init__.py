from bench.rewards.base import PrefixCache, RewardConfig, RewardModel
from bench.rewards.registry import PARAMETRIZATIONS, build_reward_model, load_reward_model, reward_class

__all__ = ["RewardConfig", "RewardModel", "PrefixCache", "PARAMETRIZATIONS", "build_reward_model",
           "load_reward_model", "reward_class"]
