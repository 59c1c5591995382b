"""``DataGen-LM-v0``: the env with a LoRA-fine-tuned causal LM as the target, on a generative
task (``uppercase`` by default), rewarded by the change of validation ``token_accuracy`` (or
exact match: see :func:`make_lm_env`). Needs ``peft``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from datagen_gym.config import Config
from datagen_gym.envs.datagen_env import DataGenEnv
from datagen_gym.targets.builtin_tasks import VALIDATION_SEED
from datagen_gym.targets.lora_target import (
    LoRATarget,
    make_generative_test_set,
    make_generative_validation_set,
    make_tiny_student,
)


def make_lm_env(
    task: str = "uppercase",
    n_validation: int = 50,
    validation_seed: int = VALIDATION_SEED,
    n_test: int = 50,
    student_path: str | Path | None = None,
    student_init: str = "teacher",
    target_kwargs: dict[str, Any] | None = None,
    reward_metric: str | None = "token_accuracy",
    **env_kwargs: Any,
):
    """``DataGen-LM-v0``: :class:`~datagen_gym.envs.DataGenEnv` whose target is a
    :class:`LoRATarget` on the tiny student, scored on a generative task's validation set.

    Args:
        task: a generative family (``uppercase``, ``reverse``, ``count_words``, ``addition``,
            ``sort_numbers``, ``max_number``), several joined by ``+`` (one skill each; the
            headline is the mean over skills) or ``"generative"`` (all six).
        n_validation, validation_seed: the validation set per skill
            (:func:`make_generative_validation_set`); ``validation_dataset=`` overrides it.
        n_test: the test split per skill (:func:`make_generative_test_set`; 0: none); it
            costs one more evaluation per step.
        student_path: a model directory (any causal LM); None builds/reuses the tiny student
            (:func:`make_tiny_student` with ``student_init``).
        target_kwargs: more :class:`LoRATarget` arguments (``epochs``, ``learning_rate``,
            ``device``...).
        reward_metric: the target metric whose change is the reward: ``"token_accuracy"``
            (share of gold answer tokens predicted first; partial credit; the default) or
            ``"accuracy"`` (= validation exact match); overrides ``config``'s
            ``rl_tuning.reward_metric``; ``None`` keeps the config's.
        **env_kwargs: :class:`DataGenEnv` arguments (``batch_size``, ``num_iterations``,
            ``config``, ``data_mode``...).

    On the CPU's ~1M-parameter student, exact match stays near 0 on ``uppercase`` and
    ``reverse`` (the student cannot spell the answers whatever the data), so an exact-match
    reward is almost always 0; that is why the default reward is ``token_accuracy``. A real
    model on a GPU (``student_path=``, ``target_kwargs={"device": "cuda"}``) makes exact match
    meaningful.
    """
    validation = env_kwargs.pop("validation_dataset", None) or make_generative_validation_set(
        task, n_validation, validation_seed
    )
    test = make_generative_test_set(task, n_test) if n_test else None
    config = Config.coerce(env_kwargs.pop("config", None))
    if reward_metric is not None:
        config = config.replace(rl_tuning={"reward_metric": reward_metric})
    metric = config.rl_tuning.reward_metric
    kwargs = {
        "skill_metric": metric if metric in ("token_accuracy", "val_loss") else "exact_match",
        **(target_kwargs or {}),
    }
    path = student_path if student_path is not None else make_tiny_student(init=student_init)
    target = LoRATarget(path, validation, test_dataset=test, **kwargs)
    return DataGenEnv(
        target_model=target, validation_dataset=validation, task=task, config=config, **env_kwargs
    )
