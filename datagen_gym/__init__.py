"""datagen-gym: synthetic instruction-data generation as a reinforcement-learning environment.

``import datagen_gym`` registers ``DataGen-v0`` (and ``DataGen-Skills-v0``, ``DataGen-LM-v0``) with
Gymnasium::

    import gymnasium as gym
    import datagen_gym

    env = gym.make("DataGen-v0")
"""

from gymnasium.envs.registration import register, registry

from datagen_gym.config import Config, ConfigError, GenerationConfig, RLTuningConfig, SamplingConfig
from datagen_gym.results import Results
from datagen_gym.sampler import Sampler

__version__ = "0.1.0"

if "DataGen-v0" not in registry:
    register(id="DataGen-v0", entry_point="datagen_gym.envs.datagen_env:DataGenEnv")
if "DataGen-Skills-v0" not in registry:
    # Five skills (the classification families) in one target, and the focus action.
    register(
        id="DataGen-Skills-v0",
        entry_point="datagen_gym.envs.datagen_env:DataGenEnv",
        kwargs={"task": "classification", "focus": True},
    )
if "DataGen-LM-v0" not in registry:
    # DataGenEnv with a LoRA-fine-tuned causal LM as the target (needs peft).
    register(id="DataGen-LM-v0", entry_point="datagen_gym.envs.lm_env:make_lm_env")


def __getattr__(name):
    # Heavy modules (torch, transformers) load on first use, not on `import datagen_gym`.
    lazy = {
        "DataGenEnv": "datagen_gym.envs.datagen_env",
        "TargetModelError": "datagen_gym.envs.datagen_env",
        "Generator": "datagen_gym.generators.generator",
        "SelfInstructGenerator": "datagen_gym.generators.self_instruct",
        "EvolInstructGenerator": "datagen_gym.generators.evol_instruct",
        "TransformersBackend": "datagen_gym.backends.transformers_backend",
        "SklearnClassifierTarget": "datagen_gym.targets.sklearn_target",
        "LoRATarget": "datagen_gym.targets.lora_target",
        "make_lm_env": "datagen_gym.envs.lm_env",
        "VLLMBackend": "datagen_gym.backends.vllm_backend",
        "make_vec_env": "datagen_gym.envs.vector",
        "RayVecEnv": "datagen_gym.envs.ray_vec_env",
    }
    if name in lazy:
        import importlib

        return getattr(importlib.import_module(lazy[name]), name)
    raise AttributeError(f"module 'datagen_gym' has no attribute {name!r}")


__all__ = [
    "Config",
    "ConfigError",
    "GenerationConfig",
    "RLTuningConfig",
    "SamplingConfig",
    "Results",
    "Sampler",
    "DataGenEnv",
    "TargetModelError",
    "Generator",
    "SelfInstructGenerator",
    "EvolInstructGenerator",
    "TransformersBackend",
    "SklearnClassifierTarget",
    "LoRATarget",
    "make_lm_env",
    "VLLMBackend",
    "make_vec_env",
    "RayVecEnv",
]
