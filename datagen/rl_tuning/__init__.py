"""RL-guided data generation: :class:`RLTuner` drives ``DataGen-v0`` with any agent.

::

    from datagen.rl_tuning import RLTuner
    tuner = RLTuner("config.yaml", target_model=my_target, validation_dataset=val)
    tuner.train()
    tuner.generate_dataset(1000, "data.jsonl")
"""

from datagen.rl_tuning.checkpoint import MissingInvocationSettings, config_from_checkpoint
from datagen.rl_tuning.rl_tuner import (
    HISTORY_KEYS,
    INVOCATION_FIELDS,
    RESUME_SAFE_FIELDS,
    CheckpointError,
    RLTuner,
    TargetModelError,
    check_algorithm,
    checkpoint_path,
    read_state,
    resume_config,
)
from datagen.rl_tuning.user_target import (
    TargetFileError,
    build_target,
    load_target_file,
    load_validation_data,
    resolve_config_paths,
)

__all__ = [
    "HISTORY_KEYS",
    "INVOCATION_FIELDS",
    "MissingInvocationSettings",
    "config_from_checkpoint",
    "RESUME_SAFE_FIELDS",
    "CheckpointError",
    "RLTuner",
    "TargetFileError",
    "TargetModelError",
    "build_target",
    "check_algorithm",
    "checkpoint_path",
    "load_target_file",
    "load_validation_data",
    "read_state",
    "resolve_config_paths",
    "resume_config",
]
