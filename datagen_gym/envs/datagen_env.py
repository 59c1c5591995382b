"""DataGen-v0: learn how to generate instruction data that makes a target model best."""

from __future__ import annotations

import copy
import math
import numbers
import time
from collections import deque
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from datagen_gym.config import Config, ConfigError
from datagen_gym.generators import prompts
from datagen_gym.generators.generator import Generator
from datagen_gym.results import Results
from datagen_gym.sampler import TEMPERATURE_RANGE, TOP_P_RANGE
from datagen_gym.task import resolve_task
from datagen_gym.world import checker

TargetModel = Callable[[list[dict[str, Any]]], dict[str, float]]
OBS_CLIP = 10.0  # metrics and rewards are clipped into the bounded observation box
EMBED_DIM = 16
SKILL_PREFIX = "skill/"  # target metric keys: skill/<name> is the metric on one skill
TEST_PREFIX = "test/"  # test/<key>: scored on the held-out test split, never in the observation


class TargetModelError(RuntimeError):
    """The target model failed or returned something the env cannot use as a reward."""


#: The TensorBoard tags of a step's ``info`` (``metadata["info_log"]``; every agent of
#: :mod:`agents` writes them, and any logger may read them): tag -> info key.
INFO_LOG: dict[str, Any] = {
    "scalars": {
        "datagen/metric": "metric",
        "datagen/test_metric": "test_metric",
        "datagen/best_metric": "best_metric",
        "datagen/baseline_metric": "baseline_metric",
        "datagen/temperature": "temperature",
        "datagen/top_p": "top_p",
        "datagen/template": "template_index",
        "datagen/focus": "focus_index",
        "datagen/kept_fraction": "kept_fraction",
        "datagen/num_kept": "num_kept",
        "datagen/num_off_label": "num_off_label",
        "datagen/unique_ratio": "unique_ratio",
        "datagen/correctness": "correctness",
        "datagen/all_filtered": "all_filtered",
        "datagen/time_generation_s": "time_generation_s",
        "datagen/time_target_s": "time_target_s",
    },
    # per-skill curves: validation under datagen/skill/, the test split under datagen/test_skill/
    "mappings": {"datagen/skill/": "skill_metrics", "datagen/test_skill/": "test_skill_metrics"},
    "reward": "datagen/reward",
    "text": {
        "tag": "datagen/examples",
        "key": "examples",
        "columns": ["instruction", "input", "output"],
        "header": [
            ["template", "template"],
            ["method", "method"],
            ["T", "temperature"],
            ["top_p", "top_p"],
            ["metric", "metric"],
        ],
    },
}


_IMMUTABLE = (str, int, float, bool, type(None))


def _copy_records(data: list[Any]) -> list[Any]:
    """A deep copy of a list of records, fast for flat records of text and numbers (a tenth of
    ``copy.deepcopy``'s time: it is paid at every target call, replay steps included)."""
    return [
        {k: v if type(v) in _IMMUTABLE else copy.deepcopy(v) for k, v in r.items()}
        if type(r) is dict
        else copy.deepcopy(r)
        for r in data
    ]


class DataGenEnv(gym.Env):
    """Control a teacher LM's sampling and prompt template to generate data for a target model.

    ## Action space
    ``action_mode="discrete"`` (default): ``MultiDiscrete([3, 3, n_templates])``, and with
    ``focus=True`` ``MultiDiscrete([3, 3, n_templates, 1 + n_skills])``.

    | dim | name | meaning | values |
    |-----|------|---------|--------|
    | 0 | temperature | temperature change | 0: -d, 1: keep, 2: +d |
    | 1 | top_p | top_p change | 0: -d, 1: keep, 2: +d |
    | 2 | template | prompt template | index into :data:`datagen_gym.generators.prompts.TEMPLATES` |
    | 3 | focus | skill to generate for (``focus=True`` only) | 0: any, ``1 + i``: ``skills[i]`` |

    ``d`` is ``action_delta`` (0.05). Templates 0-3 are Self-Instruct prompts (general,
    classification, text editing, math), 4-9 Evol-Instruct operations (add constraints, deepen,
    concretize, reasoning, complicate input, in-breadth), so the template also picks the
    generator. A focus makes Self-Instruct draw its in-context tasks from that skill's seed and
    machine tasks and Evol-Instruct evolve that skill's tasks. ``action_dim_names`` names the
    dimensions, ``action_dim_keep`` gives each one's "no change" value (``None``: a choice).
    ``action_dim_info_keys`` names the ``info`` key reporting each dimension's current value.
    ``action_masks()`` marks the values allowed now (a focus on a skill the target does not
    report is not), for masked policies such as sb3-contrib's ``MaskablePPO``.
    ``action_mode="continuous"``: ``Box(-1, 1, (2 + n_templates [+ 1 + n_skills],))``;
    the first two components times ``d`` are the changes, the template (and the focus) is the
    argmax of its block (for SAC / TD3). Temperature stays in [0, 2] and top_p in [0.05, 1].

    ## Observation space
    ``Box(float32)``, clipped to [-10, 10]. ``T = n_templates`` (10), ``K = n_skills``:

    | index | observation |
    |-------|-------------|
    | 0 | temperature / 2 |
    | 1 | top_p |
    | 2 .. 1+T | current template, one-hot |
    | 2+T | last validation metric |
    | 3+T | last reward |
    | 4+T | mean reward over the last 5 steps |
    | 5+T | best validation metric of the episode |
    | 6+T | episode progress (step / num_iterations) |
    | 7+T | last batch: kept fraction (kept / candidates) |
    | 8+T | last batch: unique ratio |
    | 9+T | last batch: mean record length / 100 |
    | 10+T | last batch: share of classification records |
    | next 1+K | current focus, one-hot (any, skills...) (``focus=True``) |
    | next K | last validation metric of each skill, -1 if not reported (``observe_skills``) |
    | next K+1 | records per skill, then untagged, this episode / (batch * iterations) (same) |
    | last 16 | hashed bag-of-words mean of the last batch (``observe_embedding``) |

    The test split's metrics never enter the observation. ``skill_observation`` gives the
    start index of each per-skill block (``focus``, ``metric``, ``records``; -1 where absent)
    and ``num_skills``, for policies that score every skill slot with one shared network
    (``agents.sb3.SkillSlotPolicy``).

    ## Reward
    The change of the target's ``reward_metric`` (``"accuracy"`` by default) on the validation
    split: this step's value minus the previous step's; the first step compares with the
    baseline measured at ``reset`` (the target trained on the human seed tasks alone). The
    episode return telescopes to ``final metric - baseline``.

    ## Target metrics: skills and the test split
    A target returns a dict of floats. Besides ``reward_metric`` the env reads two documented
    key families: ``skill/<name>`` (the metric on one skill) and ``test/<key>`` (any key scored
    on a held-out test split, e.g. ``test/accuracy``, ``test/skill/<name>``). ``info`` reports
    them as ``skill_metrics``, ``test_metric``, ``test_metrics`` and ``test_skill_metrics``
    (``test_metric`` is ``None`` when the target reports no ``test/<reward_metric>``).
    Built-in targets return all of them (see :mod:`datagen_gym.targets.builtin_tasks`).

    ## Target contract
    The target gets a fresh copy of the records at every call (the baseline's and every
    step's): it may edit, reorder or empty its list, and the env's seeds and episode data stay
    as they were. The reward metric must be a finite real number (``int``, ``float`` or a NumPy
    integer / floating scalar; not ``bool``, not ``str``), else the call is a
    :class:`TargetModelError` naming the key and what came back. Other keys are diagnostics:
    those that are not finite real numbers (text, NaN, inf) are left out of ``info["metrics"]``
    (and of the skill and test metrics), so that every metric ``info`` reports is a number a
    logger can plot and two identical steps compare equal.

    ## Starting state
    The configured sampling (temperature 1.0, top_p 0.9), template (``self_instruct``) and
    focus ``any``, the human seed pool only, and the baseline metric. ``reset(options=...)``
    overrides them for one episode: ``temperature``, ``top_p``, ``template`` (name or index),
    ``focus`` (a skill name or ``None``), or ``randomize=True`` to draw temperature in
    [0.2, 1.6], top_p in [0.5, 1.0], the template and the focus uniformly with ``np_random``
    (explicit options win over the draw). ``remeasure_baseline=True`` re-trains the baseline.

    ## Episode end
    Truncated after ``num_iterations`` steps (10); never terminated.

    ## Step
    Apply the action, generate ``batch_size`` records (64) with the new settings, train the
    target on the seed tasks plus every record of the episode so far (``data_mode="episode"``)
    or plus this batch only (``data_mode="batch"``), read its metrics. A step that raises
    (backend or target failure) leaves the env's settings and episode as they were; a
    ``reset`` that raises leaves the env needing a ``reset`` (it works again after one, under
    ``gym.make``'s wrappers too, see :mod:`datagen_gym.envs.wrappers`). ``info``
    holds the metrics, settings, counts, the world checker's correctness of the batch (a
    diagnostic, never the reward) and up to 3 example records. The wall-clock time of the last
    step is ``env.unwrapped.last_step_seconds`` (``time_generation_s``, ``time_target_s``), not
    in ``info``: a measurement is not an outcome of the step, and ``info`` is deterministic
    (both env checkers compare it between identical steps). ``RLTuner`` adds the two keys to
    the infos its agents see and to its history. A batch whose every candidate is filtered out
    is a valid step: reward 0, the target is not called, ``info["all_filtered"]`` is True.

    ## Arguments
    ``gym.make("DataGen-v0", target_model=None, validation_dataset=None, config=None,
    task="sentiment", batch_size=64, num_iterations=10, action_mode="discrete",
    data_mode="episode", action_delta=0.05, focus=False, skills=None, observe_skills=None,
    observe_embedding=False, replay_cache=None)``. ``config`` is a :class:`Config`, a dict of
    its sections, or a YAML path; the keyword arguments override its ``rl_tuning`` section.
    Without ``target_model`` the built-in scikit-learn target of ``task`` is used (its
    validation and test sets come from the world's held-out seeds). ``skills`` are the skill
    slots of the focus action and the observation (default: the built-in task's skills, else
    the ``skill`` fields of ``validation_dataset``); with ``focus`` each must be a ``skill`` of
    the seed tasks.
    ``observe_skills`` (default: ``focus``) adds the per-skill observation.
    ``seed_tasks`` (human seed tasks, e.g. split off the user's labelled data with
    :func:`datagen_gym.task.split_seed_records` before the target was built) and
    ``config.generation.task_mode`` choose what generation follows (:mod:`datagen_gym.task`):
    with a real teacher, the user's task (its seeds; classification records only with one of
    the validation set's labels, ``info["num_off_label"]`` counting the others); with the
    embedded teacher, the embedded world's mixed seed pool (the benchmark world).
    ``DataGen-Skills-v0`` is this env on the five-skill classification task with the focus.
    ``replay_cache`` (a SQLite file path, :mod:`datagen_gym.replay`) replays cached teacher
    batches of the current settings (rounded to the cache's grid) instead of generating, and
    generates and stores live only when the key has no replica left unused in the episode; the
    target still trains for real. Replay does not reproduce the episode's task pool; see
    :mod:`datagen_gym.replay` for what differs.

    On the embedded teacher the env is deterministic: the same ``reset(seed=...)`` and actions
    give the same rewards on a given machine. A remote backend is not.
    """

    metadata = {"render_modes": ["ansi"], "render_fps": 1, "info_log": INFO_LOG}

    def __init__(
        self,
        target_model: TargetModel | None = None,
        validation_dataset: Sequence[dict[str, Any]] | None = None,
        config: Config | dict | str | Path | None = None,
        task: str | None = None,
        batch_size: int | None = None,
        num_iterations: int | None = None,
        action_mode: str | None = None,
        data_mode: str | None = None,
        action_delta: float | None = None,
        focus: bool | None = None,
        skills: Sequence[str] | None = None,
        observe_skills: bool | None = None,
        observe_embedding: bool = False,
        generator: Generator | None = None,
        replay_cache: str | None = None,
        render_mode: str | None = None,
        seed_tasks: Sequence[dict[str, Any]] | None = None,
    ) -> None:
        self.config = self._merge_config(
            config,
            task=task,
            batch_size=batch_size,
            num_iterations=num_iterations,
            action_mode=action_mode,
            data_mode=data_mode,
            action_delta=action_delta,
            focus=focus,
            skills=None if skills is None else list(skills),
            replay_cache=None if replay_cache is None else str(replay_cache),
        )
        rl = self.config.rl_tuning
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(
                f"render_mode must be one of {self.metadata['render_modes']}, got {render_mode!r}"
            )
        self.render_mode = render_mode
        self.batch_size, self.num_iterations = rl.batch_size, rl.num_iterations
        self.action_mode, self.data_mode, self.delta = rl.action_mode, rl.data_mode, rl.action_delta
        self.reward_metric = rl.reward_metric
        self.observe_embedding = observe_embedding

        builtin_skills: tuple[str, ...] = ()
        if target_model is None:
            from datagen_gym.targets import make_builtin_target, task_skills

            target_model, builtin_val = make_builtin_target(rl.task)
            validation_dataset = validation_dataset or builtin_val
            builtin_skills = task_skills(rl.task)
        if not callable(target_model):
            raise TypeError(
                f"target_model must be callable as target_model(data) -> dict, "
                f"got {type(target_model).__name__}"
            )
        self.target_model = target_model
        self.validation_dataset = list(validation_dataset or [])

        # What generation follows: the user's task (its seeds and labels) or the embedded world.
        self.task = resolve_task(
            self.config,
            self.validation_dataset,
            builtin_task=rl.task if builtin_skills else None,
            seed_tasks=seed_tasks,
        )
        self.generator = generator or Generator(
            self.config,
            seed_tasks=self.task.seed_tasks if self.task else None,
            label_space=self.task.label_space if self.task else None,
        )
        if rl.replay_cache is not None:
            # The replay tier: cached teacher batches of the current settings, live on a miss.
            from datagen_gym.replay import ReplayGenerator

            if not isinstance(self.generator, ReplayGenerator):
                self.generator = ReplayGenerator(self.generator, rl.replay_cache)
        self.templates = prompts.TEMPLATES
        self.focus_enabled = rl.focus
        self.observe_skills = self.focus_enabled if observe_skills is None else observe_skills
        self.skills = self._resolve_skills(rl.skills, builtin_skills)
        self.start_settings = {
            "temperature": self.config.sampling.temperature,
            "top_p": self.config.sampling.top_p,
            "template": prompts.get_template(self.config.generation.template).name,
            "focus": None,
        }
        self.seed_records = [
            {"instruction": t["instruction"], "input": t.get("input", ""), "output": t["output"]}
            for t in self.generator.pool.human
            if t.get("output")
        ]
        # The world's checker knows the world's tasks: the built-in task's seeds, not a user's.
        self.check_correctness = (
            seed_tasks is None and self.config.generation.seed_tasks_path is None
        )

        # Public action layout for generic agents (the bandits hold deltas at "keep" and pull
        # arms over the dimensions whose keep value is None).
        self.action_dim_names: tuple[str, ...] = ("temperature", "top_p", "template") + (
            ("focus",) if self.focus_enabled else ()
        )
        self.action_dim_keep: tuple[int | None, ...] = (1, 1, None) + (
            (None,) if self.focus_enabled else ()
        )
        self.action_dim_info_keys: tuple[str, ...] = ("temperature", "top_p", "template_index") + (
            ("focus_index",) if self.focus_enabled else ()
        )
        n_t, n_f = len(self.templates), 1 + len(self.skills)
        if self.action_mode == "discrete":
            self.action_space = spaces.MultiDiscrete(
                [3, 3, n_t] + ([n_f] if self.focus_enabled else [])
            )
        else:
            n = 2 + n_t + (n_f if self.focus_enabled else 0)
            self.action_space = spaces.Box(-1.0, 1.0, shape=(n,), dtype=np.float32)
        # The observation's blocks in order, with their sizes: the one definition of the layout
        # (the index table of the docstring); _obs fills them, in this order.
        k = len(self.skills)
        blocks = {"settings": 2, "template": n_t, "batch": 9}
        if self.focus_enabled:
            blocks["focus"] = n_f
        if self.observe_skills:
            blocks["skill_metric"], blocks["skill_records"] = k, k + 1
        if observe_embedding:
            blocks["embedding"] = EMBED_DIM
        self._obs_blocks = blocks
        starts = dict(zip(blocks, np.cumsum([0, *blocks.values()])[:-1].tolist()))
        self.observation_space = spaces.Box(
            -OBS_CLIP, OBS_CLIP, shape=(sum(blocks.values()),), dtype=np.float32
        )
        # Where the per-skill entries start in the observation (the index table's rows), for
        # policies that score every skill slot with one shared network; None without them.
        self.skill_observation: dict[str, int] | None = None
        if self.observe_skills:
            self.skill_observation = {
                "num_skills": k,
                "focus": starts.get("focus", -1),  # "any"; skill i at +1+i
                "metric": starts["skill_metric"],
                "records": starts["skill_records"],
            }
        self._baseline: dict[str, Any] | None = None
        self.last_step_seconds: dict[str, float] = {}
        self._needs_reset = True

    # ------------------------------------------------------------------ config
    @staticmethod
    def default_config() -> Config:
        """The env's options: the defaults of :class:`Config` (see its ``rl_tuning`` section)."""
        return Config()

    @staticmethod
    def _merge_config(config, **overrides) -> Config:
        # The keyword arguments that are given override the config's rl_tuning section.
        given = {k: v for k, v in overrides.items() if v is not None}
        cfg = Config.coerce(config)
        return cfg.replace(rl_tuning=given) if given else cfg

    def _resolve_skills(
        self, configured: list[str] | None, builtin: tuple[str, ...]
    ) -> tuple[str, ...]:
        if configured is not None:
            skills = tuple(configured)
        elif builtin:
            skills = builtin
        else:
            skills = tuple(
                dict.fromkeys(str(r["skill"]) for r in self.validation_dataset if r.get("skill"))
            )
        if len(set(skills)) != len(skills):
            raise ConfigError(f"rl_tuning.skills names a skill twice: {list(skills)}")
        if self.focus_enabled:
            known = self.generator.pool.skills()
            missing = [s for s in skills if s not in known]
            if missing or not skills:
                raise ConfigError(
                    f"rl_tuning.focus needs skills that the seed tasks name (their 'skill' "
                    f"field); {'no skills given' if not skills else f'unknown: {missing}'}; "
                    f"the seed tasks name {list(known)}"
                )
        return skills

    # ------------------------------------------------------------------ gym API
    def reset(
        self, *, seed: int | None = None, options: dict | None = None
    ) -> tuple[np.ndarray, dict]:
        # Set first: a reset that raises (a bad option, the target failing at the baseline) has
        # already reseeded np_random and may have touched the generator, so the old episode
        # must not go on as if nothing happened.
        self._needs_reset = True
        super().reset(seed=seed)
        options = dict(options or {})
        start = self._start_settings(options)
        self.generator.reseed(int(self.np_random.integers(2**31 - 1)))
        self.generator.reset_pool()
        self._apply_settings(start)
        if self._baseline is None or options.get("remeasure_baseline"):
            # The seed data never changes, so the baseline is measured once and reused.
            self._baseline = self._evaluate(self.seed_records)
        self._step_count = 0
        self._episode_data: list[dict[str, Any]] = []
        self._scores = self._baseline
        self._metric = self._best = self._baseline["metric"]
        self._last_reward = 0.0
        self._rewards: deque[float] = deque(maxlen=5)
        self._last_batch = Results()
        self._needs_reset = False
        return self._obs(), {
            "baseline_metric": self._metric,
            "reward_metric": self.reward_metric,
            **self._score_info(self._baseline),
            **self._settings(),
        }

    def step(self, action) -> tuple[np.ndarray, float, bool, bool, dict]:
        if self._needs_reset:
            raise RuntimeError(
                "call reset() before step(): the episode has not started or has ended"
            )
        previous = self._settings()
        try:
            self._apply_settings(self._settings_after(action))
            batch, t_gen = self._generate()
            scores, t_target = self._train_and_score(batch)
        except BaseException:
            self._apply_settings(previous)  # a failed step changes nothing
            raise
        reward = self._record_step(batch, scores)
        self.last_step_seconds = {"time_generation_s": t_gen, "time_target_s": t_target}
        truncated = self._step_count >= self.num_iterations
        self._needs_reset = truncated
        return (
            self._obs(),
            reward,
            False,
            truncated,
            self._step_info(batch, scores, reward, t_gen, t_target),
        )

    def action_masks(self) -> np.ndarray:
        """The action values allowed now, one boolean per value of each dimension, concatenated
        (the convention of sb3-contrib's ``MaskablePPO``): all of them, except a focus on a
        skill the target does not report (a task without that skill: data for it cannot move
        the metric). Before the first ``reset``, or with a target that reports no skills,
        every focus is allowed. ``action_mode="discrete"`` only."""
        if self.action_mode != "discrete":
            raise ValueError(
                "action_masks() needs action_mode='discrete' (masks are per "
                f"discrete value), this env has action_mode={self.action_mode!r}"
            )
        masks = [np.ones(n, dtype=bool) for n in self.action_space.nvec]
        reported = self._baseline["skills"] if self._baseline is not None else {}
        if self.focus_enabled and reported:
            masks[3][1:] = [s in reported for s in self.skills]
        return np.concatenate(masks)

    def render(self) -> str | None:
        if self.render_mode != "ansi":
            return None
        s = self._settings()
        focus = f" focus={s['focus'] or 'any'}" if self.focus_enabled else ""
        return (
            f"step {self._step_count}/{self.num_iterations}  T={s['temperature']:.2f} "
            f"top_p={s['top_p']:.2f} template={s['template']}{focus}  "
            f"{self.reward_metric}={self._metric:.4f} (best {self._best:.4f})"
        )

    # ------------------------------------------------------------------ step hooks
    def _settings_after(self, action) -> dict[str, Any]:
        """The settings the action leads to (nothing is changed yet)."""
        d_temp, d_top_p, template_index, focus_index = self._decode(action)
        params = self.generator.get_sampling_params()
        # Rounded: repeated +-0.05 steps would otherwise drift into 0.7999999999999999.
        return {
            "temperature": round(
                float(np.clip(params["temperature"] + d_temp, *TEMPERATURE_RANGE)), 6
            ),
            "top_p": round(float(np.clip(params["top_p"] + d_top_p, *TOP_P_RANGE)), 6),
            "template": self.templates[template_index].name,
            "focus": self._focus_name(focus_index) if self.focus_enabled else None,
        }

    def _generate(self) -> tuple[Results, float]:
        t0 = time.perf_counter()
        batch = self.generator.generate(self.batch_size, step=self._step_count)
        return batch, time.perf_counter() - t0

    def _train_and_score(self, batch: Results) -> tuple[dict[str, Any] | None, float]:
        """Train the target on the seed tasks and the step's data; ``None`` for an empty batch
        (the target is not called)."""
        if len(batch) == 0:
            return None, 0.0
        t0 = time.perf_counter()
        episode = self._episode_data if self.data_mode == "episode" else []
        scores = self._evaluate(self.seed_records + episode + batch.data)
        return scores, time.perf_counter() - t0

    def _record_step(self, batch: Results, scores: dict[str, Any] | None) -> float:
        """Commit a finished step to the episode; returns the reward."""
        if scores is not None:
            self._episode_data.extend(batch.data)
            self._scores = scores
        metric = self._scores["metric"]
        reward = float(metric - self._metric)
        self._metric, self._best = metric, max(self._best, metric)
        self._last_reward = reward
        self._rewards.append(reward)
        self._last_batch = batch
        self._step_count += 1
        return reward

    def _step_info(
        self,
        batch: Results,
        scores: dict[str, Any] | None,
        reward: float,
        t_gen: float,
        t_target: float,
    ) -> dict[str, Any]:
        return {
            "baseline_metric": self._baseline["metric"],
            "best_metric": self._best,
            "reward_metric": self.reward_metric,
            "reward": reward,
            **self._score_info(self._scores),
            **self._settings(),
            "num_candidates": batch.num_candidates,
            "num_kept": batch.num_kept,
            "num_off_label": batch.num_off_label,
            "num_records": len(batch),
            "dataset_size": len(self._episode_data),
            "kept_fraction": batch.kept_fraction,
            "unique_ratio": batch.unique_ratio,
            "mean_length": batch.mean_length,
            "skill_counts": self._skill_counts(),
            # None, not NaN, when not measured (a user's task, an empty batch): NaN != NaN
            # would make two identical steps' infos unequal for both env checkers.
            "correctness": (
                checker.correctness(batch.data) if self.check_correctness and len(batch) else None
            ),
            "all_filtered": scores is None,
            "examples": [
                {k: r[k] for k in ("instruction", "input", "output")} for r in batch.data[:3]
            ],
        }

    # ------------------------------------------------------------------ pieces
    @property
    def start_params(self) -> dict[str, float]:
        """The configured starting temperature and top_p (``reset(options=...)`` overrides)."""
        return {k: self.start_settings[k] for k in ("temperature", "top_p")}

    @property
    def start_template(self) -> prompts.Template:
        """The configured starting template (``reset(options=...)`` overrides)."""
        return prompts.get_template(self.start_settings["template"])

    @property
    def dataset(self) -> list[dict[str, Any]]:
        """Every record generated in the current episode."""
        return list(self._episode_data)

    def _settings(self) -> dict[str, Any]:
        t = self.generator.template
        focus = self.generator.focus
        return {
            **self.generator.get_sampling_params(),
            "template": t.name,
            "template_index": prompts.TEMPLATE_NAMES.index(t.name),
            "method": t.method,
            "focus": focus,
            "focus_index": 0
            if focus is None or focus not in self.skills
            else 1 + self.skills.index(focus),
        }

    def _apply_settings(self, settings: dict[str, Any]) -> None:
        self.generator.set_sampling_params(
            temperature=settings["temperature"], top_p=settings["top_p"]
        )
        self.generator.select_template(settings["template"])
        self.generator.set_focus(settings["focus"])

    def _start_settings(self, options: dict[str, Any]) -> dict[str, Any]:
        """The episode's first settings: the configured ones, randomised and/or overridden."""
        allowed = {"temperature", "top_p", "template", "focus", "randomize", "remeasure_baseline"}
        unknown = sorted(set(options) - allowed)
        if unknown:
            raise ValueError(
                f"unknown reset option {unknown[0]!r}; valid options: {sorted(allowed)}"
            )
        start = dict(self.start_settings)
        if options.get("randomize"):
            rng = self.np_random
            start["temperature"] = float(rng.uniform(0.2, 1.6))
            start["top_p"] = float(rng.uniform(0.5, 1.0))
            start["template"] = self.templates[int(rng.integers(len(self.templates)))].name
            if self.focus_enabled:
                start["focus"] = self._focus_name(int(rng.integers(1 + len(self.skills))))
        for key, (lo, hi) in (("temperature", TEMPERATURE_RANGE), ("top_p", TOP_P_RANGE)):
            if key in options:
                value = options[key]
                if (
                    isinstance(value, bool)
                    or not isinstance(value, (int, float))
                    or not lo <= value <= hi
                ):
                    raise ValueError(
                        f"reset option {key}={value!r}: expected a number in [{lo}, {hi}]"
                    )
                start[key] = float(value)
        if "template" in options:
            start["template"] = prompts.get_template(options["template"]).name
        if "focus" in options:
            focus = options["focus"]
            if focus is not None and (not self.focus_enabled or focus not in self.skills):
                raise ValueError(
                    f"reset option focus={focus!r}: expected None or one of "
                    f"{list(self.skills)} (and an env made with focus=True)"
                )
            start["focus"] = focus
        return start

    def _focus_name(self, index: int) -> str | None:
        return None if index == 0 else self.skills[index - 1]

    def _decode(self, action) -> tuple[float, float, int, int]:
        try:
            a = np.asarray(action, dtype=np.float64)
        except (TypeError, ValueError):
            a = None
        if (
            a is None
            or a.shape != self.action_space.shape
            or not np.all(np.isfinite(a))
            or not self.action_space.contains(a.astype(self.action_space.dtype))
            or (self.action_mode == "discrete" and not np.all(a == np.round(a)))
        ):
            raise ValueError(
                f"invalid action {action!r}: expected an element of "
                f"{self.action_space} (action_mode={self.action_mode!r})"
            )
        n_t = len(self.templates)
        if self.action_mode == "discrete":
            a = a.astype(int)
            return (
                (a[0] - 1) * self.delta,
                (a[1] - 1) * self.delta,
                int(a[2]),
                int(a[3]) if self.focus_enabled else 0,
            )
        focus = int(np.argmax(a[2 + n_t :])) if self.focus_enabled else 0
        return (
            float(a[0]) * self.delta,
            float(a[1]) * self.delta,
            int(np.argmax(a[2 : 2 + n_t])),
            focus,
        )

    def _evaluate(self, data: list[dict[str, Any]]) -> dict[str, Any]:
        """Call the target model, check what it returns and sort its metrics: ``metric``
        (the reward metric), ``metrics`` (validation), ``skills`` (``skill/<name>``), ``test``
        (``test/<key>``, prefix removed)."""
        # A fresh list of fresh records at every call: the target may edit what it gets (drop
        # fields, clear the list), and the env's seeds, episode data and examples must not
        # change with it.
        records = _copy_records(data)
        try:
            result = self.target_model(records)
        except Exception as exc:
            raise TargetModelError(
                f"target_model raised {type(exc).__name__}: {exc} (called with {len(data)} "
                f"records; expected it to fine-tune, evaluate and return a dict with "
                f"{self.reward_metric!r})"
            ) from exc
        if not isinstance(result, dict):
            raise TargetModelError(
                f"target_model returned {type(result).__name__}; expected a "
                f"dict of metrics with {self.reward_metric!r}"
            )
        if self.reward_metric not in result:
            raise TargetModelError(
                f"target_model's result has no {self.reward_metric!r} "
                f"(the reward metric); it returned keys {sorted(map(str, result))}"
            )
        value = result[self.reward_metric]
        metric = _real_number(value)
        if metric is None:
            # Not float(value): "0.75" or True would pass as a reward and hide a target bug.
            raise TargetModelError(
                f"target_model returned {self.reward_metric}={value!r} "
                f"({type(value).__name__}); expected a number (int or float, not bool or str)"
            )
        if not math.isfinite(metric):
            raise TargetModelError(
                f"target_model returned {self.reward_metric}={metric}; expected a finite number"
            )
        # Extra keys are diagnostics: a non-number or NaN / inf one is dropped, not refused
        # (a target may report text, or NaN for "not measured"), so info's metrics stay
        # plottable and equal between identical steps (NaN != NaN fails both env checkers).
        numeric = {
            str(k): x
            for k, v in result.items()
            if (x := _real_number(v)) is not None and math.isfinite(x)
        }
        test = {k[len(TEST_PREFIX) :]: v for k, v in numeric.items() if k.startswith(TEST_PREFIX)}
        metrics = {k: v for k, v in numeric.items() if not k.startswith(TEST_PREFIX)}
        return {"metric": metric, "metrics": metrics, "skills": _skill_part(metrics), "test": test}

    def _score_info(self, scores: dict[str, Any]) -> dict[str, Any]:
        test = scores["test"]  # copies: infos must not share objects between calls
        return {
            "metric": scores["metric"],
            "metrics": dict(scores["metrics"]),
            "skill_metrics": dict(scores["skills"]),
            # None, not NaN, when there is no test split: NaN != NaN, so two identical steps
            # would compare unequal in check_env's determinism check (a user target without
            # test/ keys failed it while the built-in target, which reports them, passed).
            "test_metric": test.get(self.reward_metric),
            "test_metrics": dict(test),
            "test_skill_metrics": _skill_part(test),
        }

    def _skill_counts(self) -> dict[str, int]:
        """Records of the episode per skill tag (``"untagged"``: generated without a focus)."""
        counts = {s: 0 for s in self.skills}
        counts["untagged"] = 0
        for r in self._episode_data:
            tag = r.get("skill")
            key = tag if tag in counts else "untagged"
            counts[key] += 1
        return counts

    def _obs(self) -> np.ndarray:
        p = self.generator.get_sampling_params()
        b = self._last_batch
        n_clf = sum(bool(r.get("is_classification")) for r in b.data)
        values: dict[str, Any] = {
            "settings": [p["temperature"] / TEMPERATURE_RANGE[1], p["top_p"]],
            "template": _one_hot(
                len(self.templates), prompts.TEMPLATE_NAMES.index(self.generator.template.name)
            ),
            "batch": [
                self._metric,
                self._last_reward,
                float(np.mean(self._rewards)) if self._rewards else 0.0,
                self._best,
                self._step_count / self.num_iterations,
                b.kept_fraction,
                b.unique_ratio,
                b.mean_length / 100.0,
                n_clf / len(b) if len(b) else 0.0,
            ],
        }
        if "focus" in self._obs_blocks:
            focus = self.generator.focus
            values["focus"] = _one_hot(
                1 + len(self.skills), 0 if focus is None else 1 + self.skills.index(focus)
            )
        if "skill_metric" in self._obs_blocks:
            # -1: the target does not report this skill (a task without it).
            values["skill_metric"] = [self._scores["skills"].get(s, -1.0) for s in self.skills]
            capacity = self.batch_size * self.num_iterations
            values["skill_records"] = [n / capacity for n in self._skill_counts().values()]
        if "embedding" in self._obs_blocks:
            values["embedding"] = _embed(b.data)
        obs = np.concatenate(
            [np.asarray(values[name], dtype=np.float32) for name in self._obs_blocks]
        )
        return np.clip(obs, -OBS_CLIP, OBS_CLIP).astype(np.float32)


def _one_hot(n: int, index: int) -> np.ndarray:
    out = np.zeros(n, dtype=np.float32)
    out[index] = 1.0
    return out


def _real_number(value: Any) -> float | None:
    """``value`` as a float if it is a real number (int, float, NumPy integer or floating),
    else None: bools (``True`` is an int) and strings are not metrics."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        return None
    try:
        return float(value)
    except OverflowError:  # an int past float's range (10**400): not a finite number
        return math.inf if value > 0 else -math.inf


def _skill_part(metrics: dict[str, float]) -> dict[str, float]:
    return {k[len(SKILL_PREFIX) :]: v for k, v in metrics.items() if k.startswith(SKILL_PREFIX)}


def _embed(records: list[dict[str, Any]]) -> np.ndarray:
    """A 16-d summary of a batch: the mean of hashed, l2-normalised bags of words."""
    if not records:
        return np.zeros(EMBED_DIM, dtype=np.float32)
    from sklearn.feature_extraction.text import HashingVectorizer

    vec = HashingVectorizer(n_features=EMBED_DIM, alternate_sign=True, norm="l2")
    texts = [f"{r['instruction']} {r['input']} {r['output']}" for r in records]
    return np.asarray(vec.transform(texts).mean(axis=0)).ravel().astype(np.float32)
