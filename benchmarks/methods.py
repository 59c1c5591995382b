"""The data-generation methods the sample-efficiency benchmark compares, one run each.

Every method runs through the same DataGen-v0 env (same task, batch size, episode length) inside
an :class:`EvalBudget` wrapper, which counts target evaluations (= env steps), refuses to take
more than the budget (raising :class:`BudgetExhausted`), and records each finished episode's
final metric. A run's result is the *best episode-final metric seen so far* after each
evaluation (:func:`best_so_far`).

Methods:

* fixed settings (:func:`run_fixed`): episodes that keep one temperature / top_p / template
  (the "keep" action ``[1, 1, template]`` every step): the static baselines, the oracle and
  each Optuna trial;
* :func:`run_tpe`: Optuna's TPE over temperature x top_p x template, one episode per trial,
  objective = the episode's final metric;
* :func:`run_agent`: an agent of :mod:`agents` (``make_agent(name, env, seed)``,
  ``learn(budget)``) with the hyper-parameters of :data:`AGENT_HYPERPARAMS`.

Episode noise is shared: a run resets with ``seed`` once and then without a seed, so episode
``k`` of every fixed-settings method and of every agent starts from the same generator seed.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np

# BudgetExhausted is re-exported: the benchmarks catch it from here.
from datagen_gym.envs.wrappers import BudgetExhausted, StepBudget  # noqa: F401

# Fixed starting settings: (temperature, top_p, template).
Settings = tuple[float, float, str]
SELF_INSTRUCT: Settings = (0.7, 0.5, "self_instruct")  # Wang et al. (2023)'s sampling
ALPACA: Settings = (1.0, 1.0, "self_instruct")  # Taori et al. (2023)'s sampling


def default_settings() -> Settings:
    """The env's starting configuration (the :class:`~datagen_gym.Config` defaults)."""
    from datagen_gym import Config

    cfg = Config()
    return (cfg.sampling.temperature, cfg.sampling.top_p, cfg.generation.template)


# The agents' hyper-parameters in every benchmark, chosen on the tuning task (sentiment) with
# 400-step exploratory runs of benchmarks.learning_curves. Expensive steps and small budgets
# want fewer samples per update and larger steps than the libraries' defaults (PPO's default
# rollout of 64 steps would not even finish once in a 30-evaluation budget).
AGENT_HYPERPARAMS: dict[str, dict[str, Any]] = {
    "random_search": {},
    "reinforce": {"n_episodes": 4, "learning_rate": 0.05, "gamma": 0.9},
    "ppo": {"n_steps": 20, "batch_size": 20, "learning_rate": 1e-3},
}

STATIC_METHODS = ("static_self_instruct", "static_alpaca", "static_default")
AGENT_METHODS = ("random_search", "reinforce", "ppo")
ALL_METHODS = (*STATIC_METHODS, "oracle", "tpe", *AGENT_METHODS)


def static_settings(method: str) -> Settings:
    """The fixed settings of a static method."""
    return {
        "static_self_instruct": SELF_INSTRUCT,
        "static_alpaca": ALPACA,
        "static_default": default_settings(),
    }[method]


class EvalBudget(StepBudget):
    """The library's :class:`~datagen_gym.envs.StepBudget` (counts env steps = target
    evaluations, refuses the one past the budget with ``BudgetExhausted``) that also records
    finished episodes.

    ``episodes`` holds, per finished episode: ``evals`` (evaluations used when it ended),
    ``metric`` (its final metric) and its final settings.
    """

    def __init__(self, env: gym.Env, budget: int) -> None:
        super().__init__(env, int(budget))
        self.baseline: float | None = None
        self.episodes: list[dict[str, Any]] = []

    @property
    def evals(self) -> int:
        """Target evaluations spent so far."""
        return self.steps

    def reset(self, **kwargs: Any):
        obs, info = self.env.reset(**kwargs)
        self.baseline = float(info["baseline_metric"])
        return obs, info

    def step(self, action: Any):
        obs, reward, terminated, truncated, info = super().step(action)
        if terminated or truncated:
            self.episodes.append(
                {
                    "evals": self.evals,
                    "metric": float(info["metric"]),
                    "temperature": float(info["temperature"]),
                    "top_p": float(info["top_p"]),
                    "template": info["template"],
                }
            )
        return obs, reward, terminated, truncated, info


def make_env(
    task: str, batch_size: int, num_iterations: int, settings: Settings | None = None
) -> gym.Env:
    """``gym.make("DataGen-v0", ...)``; ``settings`` become the config's starting settings."""
    import datagen_gym  # noqa: F401  (registers DataGen-v0)

    config = None
    if settings is not None:
        config = {
            "sampling": {"temperature": float(settings[0]), "top_p": float(settings[1])},
            "generation": {"template": settings[2]},
        }
    return gym.make(
        "DataGen-v0", task=task, batch_size=batch_size, num_iterations=num_iterations, config=config
    )


def keep_action(template: str) -> np.ndarray:
    """The action that changes nothing: ``[1, 1, template index]``."""
    from datagen_gym.generators.prompts import TEMPLATE_NAMES

    return np.array([1, 1, TEMPLATE_NAMES.index(template)])


def run_episode(env: gym.Env, settings: Settings, seed: int | None = None) -> float:
    """One episode that starts from and keeps ``settings``; returns its final metric.

    The settings go through ``reset(options=...)``, so every episode of one env (Optuna trials
    included) shares the env's episode seeds.
    """
    options = {
        "temperature": float(settings[0]),
        "top_p": float(settings[1]),
        "template": settings[2],
    }
    env.reset(seed=seed, options=options)
    action = keep_action(settings[2])
    while True:
        _, _, terminated, truncated, info = env.step(action)
        if terminated or truncated:
            return float(info["metric"])


def best_so_far(episodes: Sequence[dict[str, Any]], baseline: float, budget: int) -> list[float]:
    """Best episode-final metric after 0..budget evaluations (the baseline before any episode)."""
    curve = [baseline] * (budget + 1)
    best = baseline
    ends = {e["evals"]: e["metric"] for e in episodes}
    for k in range(1, budget + 1):
        if k in ends:
            best = max(best, ends[k])
        curve[k] = best
    return curve


@dataclass
class RunSpec:
    """One run: a method on a task with a seed and a budget of target evaluations."""

    method: str
    task: str
    seed: int
    budget: int
    num_iterations: int
    batch_size: int
    settings: Settings | None = None  # fixed-settings methods (static, oracle)
    tpe_space: dict[str, Any] | None = None  # tpe: temperature, top_p ranges, templates


def _init_worker() -> None:
    import torch

    torch.set_num_threads(1)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def run_fixed(env: EvalBudget, settings: Settings, seed: int) -> None:
    """Episodes that keep ``settings`` until the budget cannot pay for another whole one."""
    n = env.budget // env.unwrapped.num_iterations
    for i in range(n):
        run_episode(env, settings, seed=seed if i == 0 else None)


def tpe_startup_trials(n_trials: int) -> int:
    """TPE's random start-up trials: half the trials (Optuna's default of 10 would be all)."""
    return max(1, min(10, n_trials // 2))


def run_tpe(env: EvalBudget, space: dict[str, Any], seed: int) -> list[dict[str, Any]]:
    """Optuna TPE, one fixed-settings episode per trial, until the budget is spent."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    n_trials = env.budget // env.unwrapped.num_iterations
    sampler = optuna.samplers.TPESampler(seed=seed, n_startup_trials=tpe_startup_trials(n_trials))
    study = optuna.create_study(direction="maximize", sampler=sampler)
    t_lo, t_hi = space["temperature"]
    p_lo, p_hi = space["top_p"]

    def objective(trial: optuna.Trial) -> float:
        settings = (
            trial.suggest_float("temperature", t_lo, t_hi),
            trial.suggest_float("top_p", p_lo, p_hi),
            trial.suggest_categorical("template", list(space["templates"])),
        )
        return run_episode(env, settings, seed=seed if trial.number == 0 else None)

    study.optimize(objective, n_trials=n_trials)
    return [{"number": t.number, "value": t.value, **t.params} for t in study.trials]


def run_agent(env: EvalBudget, name: str, seed: int) -> str:
    """An agent with :data:`AGENT_HYPERPARAMS`, ``learn(budget)``; returns a note."""
    from agents import make_agent

    agent = make_agent(name, env, seed=seed, **AGENT_HYPERPARAMS.get(name, {}))
    try:
        agent.learn(env.budget)
    except BudgetExhausted:
        # SB3's on-policy algorithms collect whole rollouts; the wrapper stops them at the
        # budget, so everything after it is simply not run.
        return "stopped at the budget mid-rollout"
    return ""


def run_method(spec: RunSpec) -> dict[str, Any]:
    """Run one method and return its episodes, best-so-far curve, wall and CPU time."""
    _init_worker()
    start, cpu = time.perf_counter(), time.process_time()
    settings = spec.settings
    if spec.method in STATIC_METHODS:
        settings = static_settings(spec.method)
    env = EvalBudget(
        make_env(
            spec.task,
            spec.batch_size,
            spec.num_iterations,
            settings if spec.method in (*STATIC_METHODS, "oracle") else None,
        ),
        spec.budget,
    )
    extra: dict[str, Any] = {}
    if spec.method in (*STATIC_METHODS, "oracle"):
        if settings is None:
            raise ValueError(f"{spec.method} needs settings")
        run_fixed(env, settings, spec.seed)
    elif spec.method == "tpe":
        extra["trials"] = run_tpe(env, spec.tpe_space or {}, spec.seed)
    elif spec.method in AGENT_METHODS:
        extra["note"] = run_agent(env, spec.method, spec.seed)
    else:
        raise ValueError(f"unknown method {spec.method!r}; valid: {ALL_METHODS}")
    env.close()
    return {
        "method": spec.method,
        "task": spec.task,
        "seed": spec.seed,
        "settings": list(settings) if settings else None,
        "baseline": env.baseline,
        "evals": env.evals,
        "episodes": env.episodes,
        "curve": best_so_far(env.episodes, env.baseline, spec.budget),
        "seconds": time.perf_counter() - start,
        "cpu_seconds": time.process_time() - cpu,
        **extra,
    }


def run_grid_cell(job: tuple[str, Settings, int, int, int]) -> dict[str, Any]:
    """One oracle-grid cell: one episode with fixed settings (its cost is not charged)."""
    task, settings, seed, batch_size, num_iterations = job
    _init_worker()
    cpu = time.process_time()
    env = make_env(task, batch_size, num_iterations, settings)
    metric = run_episode(env, settings, seed=seed)
    env.close()
    return {
        "task": task,
        "settings": tuple(settings),
        "seed": seed,
        "metric": metric,
        "cpu_seconds": time.process_time() - cpu,
    }
