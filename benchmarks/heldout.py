"""Held-out benchmark: does a learned generation policy beat every fixed setting and every search
method on tasks it was never tuned on, at an equal number of target evaluations?

    python -m benchmarks.heldout [--quick] [--replay CACHE] [--seeds 3] [--budgets 30 100]
                                 [--pretrain-steps 20000] [--workers 2]

The world: the five classification skills (``sentiment``, ``topic``, ``spam``, ``parity``,
``animal``); a task is a three-skill target (one TF-IDF + logistic-regression classifier over
its skills, headline = mean accuracy over skills). The ten three-skill tasks are split once, here,
into seven training tasks and three held-out tasks (:data:`TRAIN_TASKS`, :data:`HELDOUT_TASKS`);
nothing is tuned on the held-out ones.

The env: ``DataGenEnv`` with the focus action and the per-skill observation over all five skill
slots (a skill the task lacks reads -1), batch 32, 10-step episodes, temperature moved by 0.25 a
step, top_p held at its start value (:class:`BenchmarkAction`: the landscape shows top_p moves
the metric a few points, and holding it keeps the replay cache small). Action:
``MultiDiscrete([3, 10, 6])`` = temperature -/keep/+, template, focus (any or a skill);
``--hold-temperature`` holds the temperature at 1.0 too (``MultiDiscrete([10, 6])``), so every
setting any method can reach is one of the grid's 60 and a grid-filled replay cache answers
every step.

Protocol. Every method spends a budget of target evaluations (env steps) on a held-out task and
its search is counted; its result is the *test* metric of its episode with the best final
*validation* metric so far (the reward's split chooses, the disjoint test split reports).
Methods:

* ``static_self_instruct`` (T 0.7, top_p 0.5) and ``static_alpaca`` (T 1.0, top_p 1.0): the
  papers' sampling, ``self_instruct`` template, focus any;
* ``fixed_train_best``: the best fixed setting (temperature x template x focus) of a grid run on
  the *training* tasks, then kept on the held-out task; ``fixed_train_best_unfocused``: the
  same among settings without a focus (a focus chosen on training tasks may name a skill the
  held-out task lacks);
* ``round_robin`` / ``weakest_first``: the train-best focused template and temperature, the
  focus cycling over the task's skills / on the skill with the lowest validation accuracy;
* ``random_search`` (uniform draws) and ``tpe`` (Optuna's TPE) over temperature x template x
  focus (the policies' space), one fixed-setting episode per trial; ``ucb`` and ``thompson``
  (the bandit agents, arms = template x focus, temperature kept): searches within the budget;
* ``ppo_zero_shot`` / ``reinforce_zero_shot``: a policy pre-trained on the training tasks (a
  mixture: one task drawn per episode), run deterministically; ``ppo_finetune`` /
  ``reinforce_finetune``: the same policy trained on within the budget; ``maskable_ppo_*``: PPO
  that samples only the actions the env's ``action_masks()`` allows (never a focus on a skill
  the task lacks; sb3-contrib's MaskablePPO), zero-shot and fine-tuned alike; ``slot_ppo_*``:
  the same masked PPO with :class:`agents.sb3.skill_slot_policy.SkillSlotPolicy`, which scores
  every skill slot with one shared network (a rule learnt on one skill applies to all, and a
  held-out skill set meets no untrained weights);
* ``oracle`` (hindsight, not a method): the best fixed setting of the grid on the held-out task
  itself, found with a grid no method could afford, kept for the budget.

Writes benchmarks/results/heldout.{md,json,png} and heldout_state.png (how the learned policy's
focus and template depend on per-skill accuracy and on episode progress).
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import platform
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from benchmarks.common import command_line, read_result_json, t_ci, write_result_json
from benchmarks.methods import BudgetExhausted, EvalBudget

RESULTS = Path(__file__).resolve().parent / "results"
SKILLS = ("sentiment", "topic", "spam", "parity", "animal")
ALL_TASKS = tuple("+".join(c) for c in itertools.combinations(SKILLS, 3))
HELDOUT_TASKS = ("sentiment+spam+parity", "sentiment+parity+animal", "topic+spam+animal")
TRAIN_TASKS = tuple(t for t in ALL_TASKS if t not in HELDOUT_TASKS)
ENV_KWARGS: dict[str, Any] = {
    "batch_size": 32,
    "num_iterations": 10,
    "action_delta": 0.25,
    "focus": True,
    "skills": list(SKILLS),
}
GRID_TEMPERATURES = (0.5, 1.0, 1.5)
TOP_P = 0.9  # the env's default start, held by BenchmarkAction
START_TEMPERATURE = 1.0  # the env's default start (held with --hold-temperature)
# (temperature, top_p, template, focus)
Setting = tuple[float, float, str, str | None]
STATIC = {
    "static_self_instruct": (0.7, 0.5, "self_instruct", None),
    "static_alpaca": (1.0, 1.0, "self_instruct", None),
}
SEARCH_METHODS = ("random_search", "tpe", "ucb", "thompson")
POLICY_ALGOS = ("ppo", "maskable_ppo", "slot_ppo", "reinforce")
#: the agent behind each policy algorithm (``slot_ppo``: masked PPO with the SkillSlotPolicy)
POLICY_AGENTS = {"slot_ppo": "maskable_ppo"}
POLICY_METHODS = tuple(
    f"{algo}_{mode}" for algo in POLICY_ALGOS for mode in ("zero_shot", "finetune")
)
SCHEDULE_METHODS = ("round_robin", "weakest_first")
METHODS = (
    *STATIC,
    "fixed_train_best",
    "fixed_train_best_unfocused",
    *SCHEDULE_METHODS,
    *SEARCH_METHODS,
    *POLICY_METHODS,
    "oracle",
)
# Pre-training has thousands of steps: rollouts of 5 episodes, a few epochs per update.
_PPO = {
    "n_steps": 50,
    "batch_size": 50,
    "n_epochs": 4,
    "learning_rate": 5e-4,
    "gamma": 0.95,
    "ent_coef": 0.01,
}
HYPERPARAMS: dict[str, dict[str, Any]] = {
    "ppo": dict(_PPO),
    # the same PPO, sampling only what the env's action masks allow
    "maskable_ppo": dict(_PPO),
    # the same masked PPO, one shared network scoring every skill slot of the focus
    "slot_ppo": dict(_PPO, policy="SkillSlotPolicy"),
    "reinforce": {"n_episodes": 4, "learning_rate": 0.01, "gamma": 0.95},
    "ucb": {},  # arms: template x focus (BenchmarkAction.choice_dims), temperature kept
    "thompson": {},
}


# ---------------------------------------------------------------------------- envs
class BenchmarkAction(gym.ActionWrapper):
    """The benchmark's action: ``MultiDiscrete([3, n_templates, 1 + n_skills])`` (temperature
    change, template, focus) with the top_p change held at "keep"; with ``hold_temperature``
    also the temperature change, so ``MultiDiscrete([n_templates, 1 + n_skills])``. The template
    and the focus are always the last two entries."""

    def __init__(self, env: gym.Env, hold_temperature: bool = False) -> None:
        super().__init__(env)
        nvec = env.action_space.nvec
        self.hold_temperature = hold_temperature
        self.action_space = spaces.MultiDiscrete(
            [nvec[2], nvec[3]] if hold_temperature else [nvec[0], nvec[2], nvec[3]]
        )
        #: the dimensions a bandit pulls arms over (template x focus)
        self.choice_dims = (0, 1) if hold_temperature else (1, 2)

    def action(self, action: Any) -> np.ndarray:
        a = np.asarray(action, dtype=np.int64)
        return np.array([1 if self.hold_temperature else a[0], 1, a[-2], a[-1]])

    def action_masks(self) -> np.ndarray:
        """The env's :meth:`~datagen_gym.envs.DataGenEnv.action_masks` for the kept dims."""
        full = self.env.get_wrapper_attr("action_masks")()
        ends = np.cumsum(self.env.action_space.nvec)
        parts = np.split(full, ends[:-1])
        kept = (2, 3) if self.hold_temperature else (0, 2, 3)
        return np.concatenate([parts[d] for d in kept])

    def keep_action(self, template: str, focus: str | None) -> np.ndarray:
        """The action that keeps temperature and top_p and picks ``template`` and ``focus``."""
        from datagen_gym.generators.prompts import TEMPLATE_NAMES

        choice = [TEMPLATE_NAMES.index(template), 0 if focus is None else 1 + SKILLS.index(focus)]
        return np.array(choice if self.hold_temperature else [1, *choice])


class TaskMixture(gym.Env):
    """One env per task; each ``reset`` draws the task with ``np_random`` (pre-training on a task
    distribution). All envs share their spaces."""

    def __init__(self, envs: Sequence[gym.Env]) -> None:
        self.envs = list(envs)
        self.observation_space = self.envs[0].observation_space
        self.action_space = self.envs[0].action_space
        self.current = self.envs[0]

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self.current = self.envs[int(self.np_random.integers(len(self.envs)))]
        return self.current.reset(seed=int(self.np_random.integers(2**31 - 1)), options=options)

    def step(self, action: Any):
        return self.current.step(action)

    def action_masks(self) -> np.ndarray:
        return self.current.get_wrapper_attr("action_masks")()

    @property
    def skill_observation(self) -> dict[str, int] | None:
        return self.current.get_wrapper_attr("skill_observation")


def make_env(
    task: str,
    replay: str | None = None,
    test: bool = True,
    batch_size: int | None = None,
    num_iterations: int | None = None,
    hold_temperature: bool = False,
) -> gym.Env:
    """The benchmark env for ``task`` (test split scored unless ``test=False``)."""
    from datagen_gym.envs import DataGenEnv
    from datagen_gym.targets import make_builtin_target

    kwargs = dict(ENV_KWARGS, task=task)
    for key, value in (("batch_size", batch_size), ("num_iterations", num_iterations)):
        if value:
            kwargs[key] = value
    if replay:
        kwargs["replay_cache"] = replay
    if not test:  # pre-training never reads the test split: skip scoring it
        target, validation = make_builtin_target(task, n_test=0)
        kwargs.update(target_model=target, validation_dataset=validation)
    return BenchmarkAction(DataGenEnv(**kwargs), hold_temperature)


def env_options(job: dict[str, Any]) -> dict[str, Any]:
    """The :func:`make_env` options a job or the run's common settings carry."""
    return {
        "batch_size": job.get("batch_size"),
        "num_iterations": job.get("num_iterations"),
        "hold_temperature": bool(job.get("hold_temperature")),
    }


def keep_action(env: gym.Env, template: str, focus: str | None) -> np.ndarray:
    """The "keep" action of a (template, focus) pair in ``env``'s benchmark action space."""
    return env.get_wrapper_attr("keep_action")(template, focus)


# ---------------------------------------------------------------------------- budget
class Budget(EvalBudget):
    """:class:`~benchmarks.methods.EvalBudget` (counts steps, enforces the budget, records
    finished episodes) that also records each episode's test metric and focus and, per step,
    the per-skill accuracy the action was chosen on (for the state-dependence analysis)."""

    def __init__(self, env: gym.Env, budget: int) -> None:
        super().__init__(env, budget)
        self.test_baseline = math.nan
        self.trace: list[dict[str, Any]] = []

    def reset(self, **kwargs: Any):
        obs, info = super().reset(**kwargs)
        self.test_baseline = float(info["test_metric"])
        self._skills, self._step = dict(info["skill_metrics"]), 0
        return obs, info

    def step(self, action: Any):
        obs, reward, terminated, truncated, info = super().step(action)
        self.trace.append(
            {
                "evals": self.evals,
                "progress": self._step,
                "skills_before": self._skills,
                "focus": info["focus"],
                "template": info["template"],
                "temperature": info["temperature"],
                "metric": info["metric"],
                "test_metric": info["test_metric"],
            }
        )
        self._skills, self._step = dict(info["skill_metrics"]), self._step + 1
        if terminated or truncated:
            self.episodes[-1].update(test_metric=info["test_metric"], focus=info["focus"])
        return obs, reward, terminated, truncated, info


def selected_test(
    episodes: Sequence[dict[str, Any]], baseline: dict[str, float], budget: int
) -> float:
    """Test metric of the best-validation episode finished within ``budget`` evaluations."""
    done = [e for e in episodes if e["evals"] <= budget]
    if not done:
        return baseline["test_metric"]
    return max(done, key=lambda e: e["metric"])["test_metric"]


# ---------------------------------------------------------------------------- methods
def run_fixed(env: Budget, setting: Setting, seed: int) -> None:
    """Whole episodes that start from and keep ``setting`` until the budget is spent."""
    for i in range(env.budget // env.unwrapped.num_iterations):
        run_fixed_once(env, setting, seed if i == 0 else None)


def run_schedule(env: Budget, setting: Setting, seed: int, rule: str) -> None:
    """Episodes with the setting's template and temperature and a focus schedule over the
    task's skills: ``round_robin`` cycles, ``weakest_first`` picks the lowest validation
    accuracy."""
    temperature, top_p, template, _ = setting
    for i in range(env.budget // env.unwrapped.num_iterations):
        _, info = env.reset(
            seed=seed if i == 0 else None,
            options={"temperature": temperature, "top_p": top_p, "template": template},
        )
        task_skills = list(info["skill_metrics"])
        scores, step, done = dict(info["skill_metrics"]), 0, False
        while not done:
            focus = (
                task_skills[step % len(task_skills)]
                if rule == "round_robin"
                else min(task_skills, key=lambda s: scores[s])
            )
            _, _, terminated, truncated, info = env.step(keep_action(env, template, focus))
            scores, step = dict(info["skill_metrics"]), step + 1
            done = terminated or truncated


def run_optuna(env: Budget, seed: int, method: str) -> None:
    """One fixed-setting episode per trial over temperature (on the action's 0.25 grid),
    template and focus, top_p held like the policies': Optuna's TPE (``tpe``) or uniform draws
    (``random_search``)."""
    import optuna

    from datagen_gym.generators.prompts import TEMPLATE_NAMES

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    n_trials = env.budget // env.unwrapped.num_iterations
    sampler = (
        optuna.samplers.TPESampler(seed=seed, n_startup_trials=max(1, min(10, n_trials // 2)))
        if method == "tpe"
        else optuna.samplers.RandomSampler(seed=seed)
    )
    study = optuna.create_study(direction="maximize", sampler=sampler)

    def objective(trial: optuna.Trial) -> float:
        focus = trial.suggest_categorical("focus", ["any", *SKILLS])
        temperature = (
            START_TEMPERATURE
            if env.get_wrapper_attr("hold_temperature")
            else trial.suggest_float("temperature", 0.25, 1.75, step=0.25)
        )
        setting = (
            temperature,
            TOP_P,
            trial.suggest_categorical("template", list(TEMPLATE_NAMES)),
            None if focus == "any" else focus,
        )
        run_fixed_once(env, setting, seed if trial.number == 0 else None)
        return env.episodes[-1]["metric"]

    study.optimize(objective, n_trials=n_trials)


def run_fixed_once(env: Budget, setting: Setting, seed: int | None) -> None:
    temperature, top_p, template, focus = setting
    env.reset(
        seed=seed,
        options={"temperature": temperature, "top_p": top_p, "template": template, "focus": focus},
    )
    done = False
    while not done:
        _, _, terminated, truncated, _ = env.step(keep_action(env, template, focus))
        done = terminated or truncated


def run_agent(env: Budget, name: str, seed: int) -> None:
    from agents import make_agent

    params = dict(HYPERPARAMS.get(name, {}))
    if name in ("ucb", "thompson"):
        dims = env.get_wrapper_attr("choice_dims")
        params["arm_dims"] = dims
        params["fixed_action"] = [0 if d in dims else 1 for d in range(len(env.action_space.nvec))]
    agent = make_agent(name, env, seed=seed, **params)
    try:
        agent.learn(env.budget)
    except BudgetExhausted:
        pass  # on-policy rollouts stop at the budget; nothing after it runs


def policy_algo(method: str) -> str:
    """``maskable_ppo_zero_shot`` -> ``maskable_ppo``."""
    return method.rsplit("_", 2)[0] if method.endswith("_zero_shot") else method.rsplit("_", 1)[0]


def predict_masked(agent: Any, env: gym.Env, obs: np.ndarray) -> np.ndarray:
    """The agent's deterministic action, with the env's action masks for a masked policy."""
    if getattr(getattr(agent, "spec", None), "masked", False):
        return agent.predict(
            obs, deterministic=True, action_masks=env.get_wrapper_attr("action_masks")()
        )[0]
    return agent.predict(obs, deterministic=True)[0]


def run_policy(env: Budget, policy_path: Path, seed: int, finetune: bool) -> None:
    """A pre-trained policy on the held-out task: deterministic rollouts (zero-shot), or
    training on within the budget (fine-tune)."""
    from agents import load_agent

    agent = load_agent(policy_path, env=env)
    agent.set_random_seed(seed)
    if finetune:
        try:
            agent.learn(env.budget, reset_num_timesteps=True)
        except BudgetExhausted:
            pass
        return
    for i in range(env.budget // env.unwrapped.num_iterations):
        obs, _ = env.reset(seed=seed if i == 0 else None)
        done = False
        while not done:
            obs, _, terminated, truncated, _ = env.step(predict_masked(agent, env, obs))
            done = terminated or truncated


# ---------------------------------------------------------------------------- runs
def _worker_init() -> None:
    import torch

    torch.set_num_threads(1)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def run_method(job: dict[str, Any]) -> dict[str, Any]:
    """One method on one held-out task and seed, for ``budget`` evaluations."""
    _worker_init()
    t0 = time.perf_counter()
    method, task, seed, budget = job["method"], job["task"], job["seed"], job["budget"]
    env = Budget(make_env(task, job.get("replay"), **env_options(job)), budget)
    if method in STATIC:
        run_fixed(env, STATIC[method], seed)
    elif method in ("fixed_train_best", "fixed_train_best_unfocused", "oracle"):
        run_fixed(env, tuple(job["setting"]), seed)
    elif method in SCHEDULE_METHODS:
        run_schedule(env, tuple(job["setting"]), seed, method)
    elif method in ("tpe", "random_search"):
        run_optuna(env, seed, method)
    elif method in ("ucb", "thompson"):
        run_agent(env, method, seed)
    elif method in POLICY_METHODS:
        run_policy(env, Path(job["policy"]), seed, finetune=method.endswith("finetune"))
    else:
        raise ValueError(f"unknown method {method!r}; valid: {METHODS}")
    return {
        "method": method,
        "task": task,
        "seed": seed,
        "baseline": {"metric": env.baseline, "test_metric": env.test_baseline},
        "episodes": env.episodes,
        "trace": env.trace if method in POLICY_METHODS else [],
        "evals": env.evals,
        "seconds": time.perf_counter() - t0,
    }


def run_grid_cell(job: dict[str, Any]) -> dict[str, Any]:
    """One fixed-setting episode of the grid (its cost is not charged to any method)."""
    _worker_init()
    env = make_env(job["task"], job.get("replay"), **env_options(job))
    env = Budget(env, env.unwrapped.num_iterations)
    run_fixed_once(env, tuple(job["setting"]), job["seed"])
    return {
        "task": job["task"],
        "setting": list(job["setting"]),
        "seed": job["seed"],
        **{k: env.episodes[-1][k] for k in ("metric", "test_metric")},
    }


def grid_settings(
    temperatures: Sequence[float], templates: Sequence[str], task: str | None = None
) -> list[Setting]:
    """Temperature x template x focus (any, or the task's skills; all skills without a task)."""
    focuses = [None, *(task.split("+") if task else SKILLS)]
    return [(t, TOP_P, name, f) for t in temperatures for name in templates for f in focuses]


def best_setting(cells: Sequence[dict[str, Any]], focused: bool | None = None) -> Setting:
    """The setting with the highest mean final validation metric over the cells' tasks and
    seeds (``focused``: among settings with a focus; ``False``: among those without)."""
    by: dict[tuple, list[float]] = {}
    for c in cells:
        if focused is not None and (c["setting"][3] is not None) != focused:
            continue
        by.setdefault(tuple(c["setting"]), []).append(c["metric"])
    return max(by, key=lambda s: float(np.mean(by[s])))  # type: ignore[return-value]


def run_pretrain(job: dict[str, Any]) -> str:
    """:func:`pretrain` for a job of the benchmark (its hyper-parameters are part of the job,
    so a rerun with other ones trains again)."""
    return str(
        pretrain(
            job["algo"], job["seed"], job["steps"], job["tasks"], job["common"], Path(job["out"])
        )
    )


def pretrain(
    algo: str, seed: int, steps: int, tasks: Sequence[str], common: dict[str, Any], out: Path
) -> Path:
    """Train ``algo`` on the training-task mixture; returns the saved policy's directory."""
    from agents import make_agent

    _worker_init()
    env = TaskMixture(
        [make_env(t, common.get("replay"), test=False, **env_options(common)) for t in tasks]
    )
    params = dict(HYPERPARAMS[algo])
    if "n_steps" in params:  # a run shorter than one rollout (the smoke test) still updates
        params["n_steps"] = min(params["n_steps"], steps)
        params["batch_size"] = min(params["batch_size"], params["n_steps"])
    agent = make_agent(POLICY_AGENTS.get(algo, algo), env, seed=seed, **params)
    agent.learn(steps)
    path = out / f"{algo}_s{seed}"
    agent.save(path)
    return path


# ---------------------------------------------------------------------------- report
def summarise(
    runs: Sequence[dict[str, Any]], budgets: Sequence[int], heldout: Sequence[str]
) -> dict[str, Any]:
    table: dict[str, Any] = {}
    for method in METHODS:
        mine = [r for r in runs if r["method"] == method]
        if not mine:
            continue
        row = {}
        for b in budgets:
            vals = [selected_test(r["episodes"], r["baseline"], b) for r in mine]
            gains = [v - r["baseline"]["test_metric"] for v, r in zip(vals, mine)]
            row[str(b)] = {
                "mean": float(np.mean(vals)),
                "ci": t_ci(vals),
                "gain": float(np.mean(gains)),
                "n": len(vals),
                "per_task": {
                    t: float(np.mean([v for v, r in zip(vals, mine) if r["task"] == t]))
                    for t in heldout
                },
            }
        table[method] = row
    paired_differences(table, runs, budgets)
    return table


def paired(
    runs: Sequence[dict[str, Any]], method: str, reference: str, budgets: Sequence[int]
) -> dict[str, dict[str, float]]:
    """``method`` minus ``reference`` on the same (task, seed) pairs, per budget: mean, 95% t
    interval and the number of pairs. Every method runs on the same tasks and seeds, so the
    pairing removes the between-task spread that dominates the unpaired intervals."""
    ref = {(r["task"], r["seed"]): r for r in runs if r["method"] == reference}
    mine = [r for r in runs if r["method"] == method and (r["task"], r["seed"]) in ref]
    out = {}
    for b in budgets:
        diffs = [
            selected_test(r["episodes"], r["baseline"], b)
            - selected_test(
                ref[(r["task"], r["seed"])]["episodes"], ref[(r["task"], r["seed"])]["baseline"], b
            )
            for r in mine
        ]
        if diffs:
            out[str(b)] = {"mean": float(np.mean(diffs)), "ci": t_ci(diffs), "n": len(diffs)}
    return out


def paired_differences(
    table: dict[str, Any],
    runs: Sequence[dict[str, Any]],
    budgets: Sequence[int],
    reference: str = "fixed_train_best",
) -> None:
    """Add each method's :func:`paired` difference to ``reference`` as ``row[b]["vs_ref"]``."""
    for method, row in table.items():
        for b, diff in paired(runs, method, reference, budgets).items():
            row[b]["vs_ref"] = {"reference": reference, **diff}


#: What the bar of the benchmark compares the best learned policy with.
RIVALS = (
    "fixed_train_best",
    "fixed_train_best_unfocused",
    *SEARCH_METHODS,
    "weakest_first",
    "round_robin",
    "oracle",
)


def best_policy_comparison(
    table: dict[str, Any], runs: Sequence[dict[str, Any]], budgets: Sequence[int]
) -> dict[str, Any]:
    """The learned method with the best mean at the largest budget, paired with each rival."""
    learned = [m for m in POLICY_METHODS if m in table]
    if not learned:
        return {}
    best = max(learned, key=lambda m: table[m][str(budgets[-1])]["mean"])
    return {
        "method": best,
        "rivals": {r: paired(runs, best, r, budgets) for r in RIVALS if r in table},
    }


def state_dependence(runs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """How the zero-shot policies' focus relates to per-skill accuracy and progress."""
    out: dict[str, Any] = {}
    for method in (m for m in POLICY_METHODS if m.endswith("_zero_shot")):
        steps = [s for r in runs if r["method"] == method for s in r["trace"]]
        if not steps:
            continue
        kinds = []
        for s in steps:
            task_skills = {k: v for k, v in s["skills_before"].items()}
            if s["focus"] is None:
                kinds.append("any")
            elif s["focus"] not in task_skills:
                kinds.append("absent skill")
            elif s["focus"] == min(task_skills, key=task_skills.get):
                kinds.append("weakest skill")
            else:
                kinds.append("other task skill")
        by_progress: dict[int, dict[str, int]] = {}
        templates: dict[int, dict[str, int]] = {}
        for s, kind in zip(steps, kinds):
            by_progress.setdefault(s["progress"], {}).setdefault(kind, 0)
            by_progress[s["progress"]][kind] += 1
            templates.setdefault(s["progress"], {}).setdefault(s["template"], 0)
            templates[s["progress"]][s["template"]] += 1
        shares = {k: kinds.count(k) / len(kinds) for k in sorted(set(kinds))}
        out[method] = {
            "n_steps": len(steps),
            "focus_shares": shares,
            "focus_by_progress": by_progress,
            "template_by_progress": templates,
            "distinct_actions": len({(s["template"], s["focus"], s["temperature"]) for s in steps}),
        }
    return out


def probe_policy(policy_path: str, tasks: Sequence[str], common: dict[str, Any]) -> dict[str, Any]:
    """Counterfactual probes of a pre-trained policy at the start of each task's episode:
    lower one present skill's observed accuracy below the others and see whether the focus
    follows it; move the progress entry from 0 to 0.9 and record the template and focus."""
    from agents import load_agent
    from datagen_gym.generators.prompts import TEMPLATE_NAMES

    agent = load_agent(policy_path)
    follows, probes, by_progress = 0, 0, []
    for task in tasks:
        env = make_env(task, common.get("replay"), **env_options(common))
        base = env.unwrapped
        obs, info = env.reset(seed=0)
        n_t, k = len(base.templates), len(base.skills)
        skill_at = 11 + n_t + 1 + k  # first per-skill accuracy entry (see the env's table)
        present = [s for s in base.skills if s in info["skill_metrics"]]
        low = min(info["skill_metrics"][s] for s in present) - 0.2
        for s in present:
            probe = obs.copy()
            probe[skill_at + base.skills.index(s)] = low
            action = predict_masked(agent, env, probe)
            follows += int(action[-1]) == 1 + base.skills.index(s)
            probes += 1
        for p in np.linspace(0.0, 0.9, 10):
            probe = obs.copy()
            probe[6 + n_t] = p
            action = predict_masked(agent, env, probe)
            by_progress.append(
                {
                    "task": task,
                    "progress": float(p),
                    "template": TEMPLATE_NAMES[int(action[-2])],
                    "focus": None if action[-1] == 0 else SKILLS[int(action[-1]) - 1],
                }
            )
    return {"focus_follows_lowered_skill": follows, "probes": probes, "by_progress": by_progress}


def write_report(result: dict[str, Any], out_dir: Path) -> None:
    budgets = result["budgets"]
    table = result["table"]
    oracle = table.get("oracle", {})
    lines = [
        "# Held-out tasks: learned generation policies against fixed settings and search",
        "",
        f"`{result['command']}` on {result['machine']}; {result['wall_minutes']:.0f} minutes.",
        "",
        f"Training tasks: {', '.join(result['train_tasks'])}. "
        f"Held-out: {', '.join(result['heldout'])}.",
        "Test-split accuracy (mean over skills) of each method's best-validation episode, "
        f"mean over {len(result['heldout'])} held-out tasks x {result['n_seeds']} seeds, "
        "with the 95% t interval; the gain share is the method's gain over the seed-only "
        "baseline divided by the hindsight oracle's.",
        "",
    ]
    lines += [
        "The paired column is the method minus `fixed_train_best` on the same (task, seed) "
        "pairs, mean and 95% t interval: a method beats the best fixed setting where the "
        "whole interval is above 0.",
        "",
    ]
    header = (
        "| method | "
        + " | ".join(f"test @{b} | gain share @{b} | paired vs fixed @{b}" for b in budgets)
        + " |"
    )
    lines += [header, "|---|" + "---|---|---|" * len(budgets)]
    for method, row in sorted(table.items(), key=lambda kv: -kv[1][str(budgets[-1])]["mean"]):
        cells = []
        for b in budgets:
            cell = row[str(b)]
            o = oracle.get(str(b), {}).get("gain", math.nan)
            share = cell["gain"] / o if o and o > 0 else math.nan
            vs = cell.get("vs_ref")
            vs_text = f"{vs['mean']:+.3f} ± {vs['ci']:.3f}" if vs else "-"
            cells.append(f"{cell['mean']:.3f} ± {cell['ci']:.3f} | {share:.0%} | {vs_text}")
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    lines += [
        "",
        f"Grid: temperature {result['grid_temperatures']} x templates "
        f"{result['grid_templates']} x focus (any or a "
        f"skill), top_p {TOP_P}; train-best setting {result['train_best']}, train-best "
        f"focused {result['train_best_focused']}, train-best unfocused "
        f"{result.get('train_best_unfocused')}.",
        "",
    ]
    if result.get("state"):
        lines += ["## State dependence of the zero-shot policies", ""]
        for method, s in result["state"].items():
            shares = ", ".join(f"{k} {v:.0%}" for k, v in s["focus_shares"].items())
            lines.append(
                f"- {method}: {s['n_steps']} steps, {s['distinct_actions']} distinct "
                f"(template, focus, temperature) actions; focus: {shares}."
            )
        lines.append("")
    for name, probe in (result.get("probes") or {}).items():
        changes = len({(p["template"], p["focus"]) for p in probe["by_progress"]})
        lines.append(
            f"- {name} probe: lowering one present skill's observed accuracy moved the "
            f"focus to it in {probe['focus_follows_lowered_skill']} of "
            f"{probe['probes']} probes; over progress 0..0.9 the policy chose "
            f"{changes} distinct (template, focus) pairs."
        )
    lines.append("")
    if {"weakest_first", "round_robin"} <= set(table):
        diffs = paired(result["runs"], "weakest_first", "round_robin", budgets)
        lines += [
            "Does reading the per-skill state pay in this world? `weakest_first` (focus on the "
            "skill with the lowest validation accuracy) minus `round_robin` (the same settings, "
            "cycling through the task's skills blind to the state), same (task, seed): "
            + ", ".join(
                f"@{b} {diffs[str(b)]['mean']:+.3f} ± {diffs[str(b)]['ci']:.3f}"
                for b in budgets
                if str(b) in diffs
            )
            + ".",
            "",
        ]
    comparison = result.get("best_policy") or {}
    if comparison.get("rivals"):
        lines += [
            f"## The best learned policy, paired with each rival: {comparison['method']}",
            "",
            "Its test accuracy minus the rival's on the same (task, seed) pairs, mean "
            "and 95% t interval; **bold**: the whole interval is above 0.",
            "",
            "| rival | " + " | ".join(f"@{b}" for b in budgets) + " |",
            "|---|" + "---|" * len(budgets),
        ]
        for rival, diffs in comparison["rivals"].items():
            cells = []
            for b in budgets:
                d = diffs.get(str(b))
                cell = "-" if d is None else f"{d['mean']:+.3f} ± {d['ci']:.3f}"
                cells.append(f"**{cell}**" if d and d["mean"] - d["ci"] > 0 else cell)
            lines.append(f"| {rival} | " + " | ".join(cells) + " |")
        lines.append("")
    lines += result.get("notes", [])
    (out_dir / "heldout.md").write_text("\n".join(lines) + "\n")
    write_result_json(out_dir / "heldout.json.gz", result)
    plot(result, out_dir)


def plot(result: dict[str, Any], out_dir: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    table, budgets = result["table"], result["budgets"]
    methods = sorted(table, key=lambda m: table[m][str(budgets[-1])]["mean"])
    fig, ax = plt.subplots(figsize=(8, 0.35 * len(methods) + 1.5))
    for i, b in enumerate(budgets):
        means = [table[m][str(b)]["mean"] for m in methods]
        cis = [table[m][str(b)]["ci"] for m in methods]
        ax.errorbar(
            means,
            np.arange(len(methods)) + 0.2 * i,
            xerr=cis,
            fmt="o",
            label=f"{b} evaluations",
            capsize=3,
        )
    ax.set_yticks(np.arange(len(methods)))
    ax.set_yticklabels(methods)
    ax.set_xlabel("held-out test accuracy (mean over skills)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out_dir / "heldout.png", dpi=120)
    plt.close(fig)
    state = result.get("state") or {}
    if state:
        fig, axes = plt.subplots(1, len(state), figsize=(5 * len(state), 3.5), squeeze=False)
        kinds = ["weakest skill", "other task skill", "absent skill", "any"]
        for ax, (method, s) in zip(axes[0], state.items()):
            prog = sorted(s["focus_by_progress"], key=int)
            bottom = np.zeros(len(prog))
            for kind in kinds:
                vals = np.array(
                    [
                        s["focus_by_progress"][p].get(kind, 0)
                        / max(1, sum(s["focus_by_progress"][p].values()))
                        for p in prog
                    ]
                )
                ax.bar([int(p) for p in prog], vals, bottom=bottom, label=kind)
                bottom += vals
            ax.set_title(f"{method}: focus by episode step")
            ax.set_xlabel("step in episode")
            ax.set_ylabel("share of steps")
        axes[0][-1].legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(out_dir / "heldout_state.png", dpi=120)
        plt.close(fig)


# ---------------------------------------------------------------------------- main
def _map(fn: Callable, jobs: list[dict[str, Any]], workers: int, desc: str, log: Path) -> list[Any]:
    """``fn`` over ``jobs`` (in ``workers`` processes), each result appended to the JSONL
    ``log`` as it arrives; jobs already in the log are not run again (a killed benchmark
    resumes where it stopped). Returns the results in job order."""
    from tqdm import tqdm

    key = lambda job: json.dumps(job, sort_keys=True, default=str)  # noqa: E731
    done: dict[str, Any] = {}
    if log.is_file():
        for line in log.read_text(encoding="utf-8").splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:  # a line torn by a kill: that job runs again
                continue
            done[key(row["job"])] = row["result"]
    todo = [j for j in jobs if key(j) not in done]
    log.parent.mkdir(parents=True, exist_ok=True)
    with (
        open(log, "a", encoding="utf-8") as fh,
        tqdm(total=len(jobs), initial=len(jobs) - len(todo), desc=desc) as bar,
    ):

        def keep(job: dict[str, Any], result: Any) -> None:
            fh.write(json.dumps({"job": job, "result": result}, default=str) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
            done[key(job)] = result
            bar.update(1)

        if workers <= 1:
            for job in todo:
                keep(job, fn(job))
        else:
            with ProcessPoolExecutor(workers, initializer=_worker_init) as pool:
                for job, result in zip(todo, pool.map(fn, todo)):
                    keep(job, result)
    return [json.loads(json.dumps(done[key(j)], default=str)) for j in jobs]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a small check: 1 seed, budget 30, 1 held-out task, short "
        "pre-training, a reduced grid",
    )
    parser.add_argument("--replay", default=None, help="replay cache (see datagen_gym.replay)")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--budgets", type=int, nargs="+", default=[30, 100])
    parser.add_argument("--grid-seeds", type=int, default=2)
    parser.add_argument("--pretrain-steps", type=int, default=20000)
    parser.add_argument("--methods", nargs="+", default=list(METHODS))
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--batch-size",
        type=int,
        default=None,
        help=f"records per step (default {ENV_KWARGS['batch_size']})",
    )
    parser.add_argument(
        "--num-iterations",
        type=int,
        default=None,
        help=f"steps per episode (default {ENV_KWARGS['num_iterations']})",
    )
    parser.add_argument(
        "--train-tasks", type=int, default=len(TRAIN_TASKS), help="use the first N training tasks"
    )
    parser.add_argument(
        "--heldout-tasks",
        type=int,
        default=len(HELDOUT_TASKS),
        help="use the first N held-out tasks",
    )
    parser.add_argument(
        "--grid-temperatures", type=float, nargs="+", default=list(GRID_TEMPERATURES)
    )
    parser.add_argument(
        "--hold-temperature",
        action="store_true",
        help="hold the temperature too: every method chooses template x focus "
        "only (all settings then fit a grid-sized replay cache)",
    )
    parser.add_argument(
        "--grid-templates",
        nargs="+",
        default=None,
        help="templates of the fixed-setting grids (default: all ten)",
    )
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument(
        "--work",
        type=Path,
        default=None,
        help="finished grid cells, policies and runs (default: "
        "OUT/heldout_work); a rerun with the same options reuses them",
    )
    parser.add_argument(
        "--from-json",
        type=Path,
        default=None,
        help="re-render the report (tables, analysis, plots) of a finished "
        "run's heldout.json.gz (or heldout.json) into --out; runs nothing",
    )
    args = parser.parse_args(argv)
    if args.from_json is not None:
        rerender(args.from_json, args.out)
        return
    work = args.work or args.out / "heldout_work"
    from datagen_gym.generators.prompts import TEMPLATE_NAMES

    templates = tuple(args.grid_templates or TEMPLATE_NAMES)
    if args.quick:  # the whole pipeline at a size that checks the plumbing, not the result
        args.seeds, args.budgets, args.grid_seeds = 1, [30], 1
        args.pretrain_steps = min(args.pretrain_steps, 100)
        args.batch_size, args.train_tasks = args.batch_size or 8, min(args.train_tasks, 2)
        args.heldout_tasks, args.grid_temperatures = 1, [1.0]
        templates = tuple(args.grid_templates or ("self_instruct", "evol_breadth"))
    temperatures = tuple(args.grid_temperatures)
    train_tasks, heldout = TRAIN_TASKS[: args.train_tasks], HELDOUT_TASKS[: args.heldout_tasks]
    common = {
        "replay": args.replay,
        "batch_size": args.batch_size,
        "num_iterations": args.num_iterations,
        "hold_temperature": args.hold_temperature,
    }
    if args.hold_temperature:
        temperatures = (START_TEMPERATURE,)
    t0 = time.perf_counter()
    budget = max(args.budgets)
    seeds = list(range(args.seeds))

    train_cells = _map(
        run_grid_cell,
        [
            {"task": t, "setting": s, "seed": 1000 + g, **common}
            for t in train_tasks
            for s in grid_settings(temperatures, templates)
            for g in range(args.grid_seeds)
        ],
        args.workers,
        "grid on training tasks",
        work / "train_grid.jsonl",
    )
    train_best, train_best_focused = best_setting(train_cells), best_setting(train_cells, True)
    train_best_unfocused = best_setting(train_cells, False)
    oracle_cells = _map(
        run_grid_cell,
        [
            {"task": t, "setting": s, "seed": 2000 + g, **common}
            for t in heldout
            for s in grid_settings(temperatures, templates, t)
            for g in range(args.grid_seeds)
        ],
        args.workers,
        "hindsight grid on held-out tasks",
        work / "oracle_grid.jsonl",
    )
    oracle = {t: best_setting([c for c in oracle_cells if c["task"] == t]) for t in heldout}

    pretrain_jobs = [
        {
            "algo": algo,
            "seed": seed,
            "steps": args.pretrain_steps,
            "tasks": list(train_tasks),
            "common": common,
            "hyperparams": HYPERPARAMS[algo],
            "out": str(work / "policies"),
        }
        for algo in POLICY_ALGOS
        for seed in seeds
        if any(policy_algo(m) == algo for m in args.methods if m in POLICY_METHODS)
    ]
    paths = _map(
        run_pretrain,
        pretrain_jobs,
        args.workers,
        "pre-training on training tasks",
        work / "pretrain.jsonl",
    )
    policies = {(j["algo"], j["seed"]): p for j, p in zip(pretrain_jobs, paths)}

    jobs = []
    for method in args.methods:
        for task in heldout:
            for seed in seeds:
                job = {"method": method, "task": task, "seed": seed, "budget": budget, **common}
                if method == "fixed_train_best":
                    job["setting"] = train_best
                elif method == "fixed_train_best_unfocused":
                    job["setting"] = train_best_unfocused
                elif method in SCHEDULE_METHODS:
                    job["setting"] = train_best_focused
                elif method == "oracle":
                    job["setting"] = oracle[task]
                elif method in POLICY_METHODS:
                    algo = policy_algo(method)
                    job["policy"] = policies[(algo, seed)]
                    # part of the job's identity: a policy trained longer is another run
                    job["pretrain"] = {
                        "steps": args.pretrain_steps,
                        "hyperparams": HYPERPARAMS[algo],
                    }
                jobs.append(job)
    runs = _map(run_method, jobs, args.workers, "methods on held-out tasks", work / "runs.jsonl")
    probes = {
        f"{algo} seed {seed}": probe_policy(path, heldout, common)
        for (algo, seed), path in policies.items()
    }
    result = {
        "command": command_line("benchmarks.heldout", argv),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
        "budgets": args.budgets,
        "n_seeds": args.seeds,
        "train_best": train_best,
        "train_best_focused": train_best_focused,
        "train_best_unfocused": train_best_unfocused,
        "oracle_settings": oracle,
        "heldout": list(heldout),
        "train_tasks": list(train_tasks),
        "grid_temperatures": list(temperatures),
        "grid_templates": list(templates),
        "table": (table := summarise(runs, args.budgets, heldout)),
        "best_policy": best_policy_comparison(table, runs, args.budgets),
        "state": state_dependence(runs),
        "probes": probes,
        "train_cells": train_cells,
        "oracle_cells": oracle_cells,
        "runs": runs,
        "wall_minutes": (time.perf_counter() - t0) / 60,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    result = json.loads(json.dumps(result, default=str))  # as --from-json reads it back
    write_report(result, args.out)
    print((args.out / "heldout.md").read_text())


def rerender(path: Path, out_dir: Path) -> None:
    """The report of a finished run from its JSON, with this version's tables and analysis."""
    result = read_result_json(path)
    runs, budgets = result["runs"], result["budgets"]
    result["table"] = summarise(runs, budgets, result["heldout"])
    result["best_policy"] = best_policy_comparison(result["table"], runs, budgets)
    result["state"] = state_dependence(runs)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_report(result, out_dir)
    print((out_dir / "heldout.md").read_text())


if __name__ == "__main__":
    main()
