"""DataGen-v0: learn how to generate instruction data that makes a target model best."""

from __future__ import annotations

import math
import time
from collections import deque
from pathlib import Path
from typing import Any, Callable, Optional, Sequence, Union

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from datagen_gym.config import Config, ConfigError
from datagen_gym.generators import prompts
from datagen_gym.generators.generator import Generator
from datagen_gym.results import Results
from datagen_gym.sampler import TEMPERATURE_RANGE, TOP_P_RANGE
from datagen_gym.world import checker

TargetModel = Callable[[list[dict[str, Any]]], dict[str, float]]
OBS_CLIP = 10.0  # metrics and rewards are clipped into the bounded observation box
EMBED_DIM = 16


class Seconds(float):
    """A wall-clock duration in ``info``. Any two compare equal: timings are measurements, not
    outcomes of the step, so determinism checks (gymnasium's ``check_env`` compares the infos
    of two identical steps) must not see them. Otherwise it is a plain float."""

    def __eq__(self, other: object) -> bool:
        return True if isinstance(other, Seconds) else float.__eq__(self, other)

    def __ne__(self, other: object) -> bool:
        return not self.__eq__(other)

    __hash__ = float.__hash__


class TargetModelError(RuntimeError):
    """The target model failed or returned something the env cannot use as a reward."""


class DataGenEnv(gym.Env):
    """Control a teacher LM's sampling and prompt template to generate data for a target model.

    ## Action space
    ``action_mode="discrete"`` (default): ``MultiDiscrete([3, 3, n_templates])``.

    | dim | meaning | values |
    |-----|---------|--------|
    | 0 | temperature change | 0: -d, 1: keep, 2: +d |
    | 1 | top_p change | 0: -d, 1: keep, 2: +d |
    | 2 | prompt template | index into :data:`datagen_gym.generators.prompts.TEMPLATES` |

    ``d`` is ``action_delta`` (0.05). Templates 0-3 are Self-Instruct prompts (general,
    classification, text editing, math), 4-9 Evol-Instruct operations (add constraints, deepen,
    concretize, reasoning, complicate input, in-breadth), so the template also picks the
    generator. ``action_mode="continuous"``: ``Box(-1, 1, (2 + n_templates,))``; the first two
    components times ``d`` are the changes, the template is the argmax of the rest (for
    SAC / TD3). Temperature stays in [0, 2] and top_p in [0.05, 1] (changes are clipped).

    ## Observation space
    ``Box(float32)`` of ``11 + n_templates`` values (``+16`` with ``observe_embedding``):
    temperature / 2, top_p, the template one-hot, last metric, last reward, moving-average
    reward (5 steps), best metric, episode progress, and of the last batch: kept fraction,
    unique ratio, mean length / 100, share of classification records. Metrics and rewards are
    clipped to [-10, 10]. With ``observe_embedding`` a 16-d hashed bag-of-words mean of the last
    batch follows.

    ## Reward
    The change of the target's ``reward_metric`` (``"accuracy"`` by default): this step's value
    minus the previous step's; the first step compares with the baseline measured at ``reset``
    (the target trained on the human seed tasks alone). The episode return telescopes to
    ``final metric - baseline``.

    ## Starting state
    The configured sampling (temperature 1.0, top_p 0.9) and template (``self_instruct``), the
    human seed pool only, and the baseline metric.

    ## Episode end
    Truncated after ``num_iterations`` steps (10); never terminated.

    ## Step
    Generate ``batch_size`` records (64) with the current settings, train the target on the
    seed tasks plus every record of the episode so far (``data_mode="episode"``) or plus this
    batch only (``data_mode="batch"``), read its metric. ``info`` holds the metrics, settings,
    counts, the world checker's correctness of the batch (a diagnostic, never the reward), up to
    3 example records and the time spent generating and in the target.

    A batch whose every candidate is filtered out is a valid step: reward 0, the target is not
    called, ``info["all_filtered"]`` is True.

    ## Arguments
    ``gym.make("DataGen-v0", target_model=None, validation_dataset=None, config=None,
    task="sentiment", batch_size=64, num_iterations=10, action_mode="discrete",
    data_mode="episode", action_delta=0.05, observe_embedding=False)``. ``config`` is a
    :class:`Config`, a dict of its sections, or a YAML path; the keyword arguments override its
    ``rl_tuning`` section. Without ``target_model`` the built-in scikit-learn target of
    ``task`` is used (its validation set comes from the world's held-out seeds).

    On the embedded teacher the env is deterministic: the same ``reset(seed=...)`` and actions
    give the same rewards on a given machine. A remote backend is not.
    """

    metadata = {"render_modes": ["ansi"], "render_fps": 1}

    def __init__(self, target_model: Optional[TargetModel] = None,
                 validation_dataset: Optional[Sequence[dict[str, Any]]] = None,
                 config: Union[Config, dict, str, Path, None] = None,
                 task: Optional[str] = None, batch_size: Optional[int] = None,
                 num_iterations: Optional[int] = None, action_mode: Optional[str] = None,
                 data_mode: Optional[str] = None, action_delta: Optional[float] = None,
                 observe_embedding: bool = False, generator: Optional[Generator] = None,
                 render_mode: Optional[str] = None) -> None:
        self.config = self._merge_config(config, task=task, batch_size=batch_size,
                                         num_iterations=num_iterations, action_mode=action_mode,
                                         data_mode=data_mode, action_delta=action_delta)
        rl = self.config.rl_tuning
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be one of {self.metadata['render_modes']}, "
                             f"got {render_mode!r}")
        self.render_mode = render_mode
        self.batch_size, self.num_iterations = rl.batch_size, rl.num_iterations
        self.action_mode, self.data_mode, self.delta = rl.action_mode, rl.data_mode, \
            rl.action_delta
        self.reward_metric = rl.reward_metric
        self.observe_embedding = observe_embedding

        if target_model is None:
            from datagen_gym.targets import make_builtin_target
            target_model, builtin_val = make_builtin_target(rl.task)
            validation_dataset = validation_dataset or builtin_val
        if not callable(target_model):
            raise TypeError(f"target_model must be callable as target_model(data) -> dict, "
                            f"got {type(target_model).__name__}")
        self.target_model = target_model
        self.validation_dataset = list(validation_dataset or [])

        self.generator = generator or Generator(self.config)
        self.start_params = {"temperature": self.config.sampling.temperature,
                             "top_p": self.config.sampling.top_p}
        self.start_template = prompts.get_template(self.config.generation.template)
        self.templates = prompts.TEMPLATES
        self.seed_records = [
            {"instruction": t["instruction"], "input": t.get("input", ""),
             "output": t["output"]}
            for t in self.generator.pool.human if t.get("output")]
        self.check_correctness = self.config.generation.seed_tasks_path is None

        n_t = len(self.templates)
        if self.action_mode == "discrete":
            self.action_space = spaces.MultiDiscrete([3, 3, n_t])
        else:
            self.action_space = spaces.Box(-1.0, 1.0, shape=(2 + n_t,), dtype=np.float32)
        obs_dim = 11 + n_t + (EMBED_DIM if observe_embedding else 0)
        self.observation_space = spaces.Box(-OBS_CLIP, OBS_CLIP, shape=(obs_dim,),
                                            dtype=np.float32)
        self._baseline: Optional[float] = None
        self._needs_reset = True

    # ------------------------------------------------------------------ config
    @staticmethod
    def default_config() -> Config:
        """The env's options: the defaults of :class:`Config` (see its ``rl_tuning`` section)."""
        return Config()

    @staticmethod
    def _merge_config(config, **overrides) -> Config:
        if config is None:
            cfg = Config()
        elif isinstance(config, Config):
            cfg = config
        elif isinstance(config, dict):
            cfg = Config.from_dict(config)
        elif isinstance(config, (str, Path)):
            cfg = Config.load(config)
        else:
            raise ConfigError(f"config must be a Config, a dict or a YAML path, "
                              f"got {type(config).__name__}")
        given = {k: v for k, v in overrides.items() if v is not None}
        return cfg.replace(rl_tuning=given) if given else cfg.validate()

    # ------------------------------------------------------------------ gym API
    def reset(self, *, seed: Optional[int] = None, options: Optional[dict] = None
              ) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        self.generator.reseed(int(self.np_random.integers(2**31 - 1)))
        self.generator.reset_pool()
        self.generator.set_sampling_params(**self.start_params)
        self.generator.select_template(self.start_template.name)
        if self._baseline is None or (options or {}).get("remeasure_baseline"):
            # The seed data never changes, so the baseline is measured once and reused.
            self._baseline = self._evaluate(self.seed_records)[0]
        self._step_count = 0
        self._episode_data: list[dict[str, Any]] = []
        self._metric = self._best = self._baseline
        self._last_reward = 0.0
        self._rewards: deque[float] = deque(maxlen=5)
        self._last_batch = Results()
        self._needs_reset = False
        return self._obs(), {"metric": self._metric, "baseline_metric": self._baseline,
                             "reward_metric": self.reward_metric, **self._settings()}

    def step(self, action) -> tuple[np.ndarray, float, bool, bool, dict]:
        if self._needs_reset:
            raise RuntimeError("call reset() before step(): the episode has not started or "
                               "has ended")
        d_temp, d_top_p, template_index = self._decode(action)
        params = self.generator.get_sampling_params()
        self.generator.set_sampling_params(
            temperature=float(np.clip(params["temperature"] + d_temp, *TEMPERATURE_RANGE)),
            top_p=float(np.clip(params["top_p"] + d_top_p, *TOP_P_RANGE)))
        self.generator.select_template(template_index)

        t0 = time.perf_counter()
        batch = self.generator.generate(self.batch_size, step=self._step_count)
        t_gen = time.perf_counter() - t0
        all_filtered = len(batch) == 0
        t0 = time.perf_counter()
        if all_filtered:
            metrics, metric = {self.reward_metric: self._metric}, self._metric
        else:
            train = self.seed_records + (self._episode_data if self.data_mode == "episode"
                                         else []) + batch.data
            metric, metrics = self._evaluate(train)
            self._episode_data.extend(batch.data)
        t_target = time.perf_counter() - t0

        reward = float(metric - self._metric)
        self._metric, self._best = metric, max(self._best, metric)
        self._last_reward = reward
        self._rewards.append(reward)
        self._last_batch = batch
        self._step_count += 1
        truncated = self._step_count >= self.num_iterations
        self._needs_reset = truncated
        info = {
            "metric": metric, "metrics": metrics, "reward_metric": self.reward_metric,
            "baseline_metric": self._baseline, "best_metric": self._best, "reward": reward,
            **self._settings(),
            "num_candidates": batch.num_candidates, "num_kept": batch.num_kept,
            "num_records": len(batch), "dataset_size": len(self._episode_data),
            "kept_fraction": batch.kept_fraction, "unique_ratio": batch.unique_ratio,
            "mean_length": batch.mean_length,
            "correctness": checker.correctness(batch.data) if self.check_correctness
            else math.nan,
            "all_filtered": all_filtered,
            "time_generation_s": Seconds(t_gen), "time_target_s": Seconds(t_target),
            "examples": [{k: r[k] for k in ("instruction", "input", "output")}
                         for r in batch.data[:3]],
        }
        return self._obs(), reward, False, truncated, info

    def render(self) -> Optional[str]:
        if self.render_mode != "ansi":
            return None
        s = self._settings()
        return (f"step {self._step_count}/{self.num_iterations}  T={s['temperature']:.2f} "
                f"top_p={s['top_p']:.2f} template={s['template']}  "
                f"{self.reward_metric}={self._metric:.4f} (best {self._best:.4f})")

    # ------------------------------------------------------------------ pieces
    @property
    def dataset(self) -> list[dict[str, Any]]:
        """Every record generated in the current episode."""
        return list(self._episode_data)

    def _settings(self) -> dict[str, Any]:
        t = self.generator.template
        return {**self.generator.get_sampling_params(), "template": t.name,
                "template_index": prompts.TEMPLATE_NAMES.index(t.name), "method": t.method}

    def _decode(self, action) -> tuple[float, float, int]:
        a = np.asarray(action)
        if not self.action_space.contains(a.astype(self.action_space.dtype)) or \
                a.shape != self.action_space.shape or \
                (self.action_mode == "discrete" and not np.all(a == np.round(a))):
            raise ValueError(f"invalid action {action!r}: expected an element of "
                             f"{self.action_space} (action_mode={self.action_mode!r})")
        if self.action_mode == "discrete":
            a = a.astype(int)
            return (a[0] - 1) * self.delta, (a[1] - 1) * self.delta, int(a[2])
        return float(a[0]) * self.delta, float(a[1]) * self.delta, int(np.argmax(a[2:]))

    def _evaluate(self, data: list[dict[str, Any]]) -> tuple[float, dict[str, float]]:
        """Call the target model and check what it returns."""
        try:
            result = self.target_model(data)
        except Exception as exc:
            raise TargetModelError(
                f"target_model raised {type(exc).__name__}: {exc} (called with {len(data)} "
                f"records; expected it to fine-tune, evaluate and return a dict with "
                f"{self.reward_metric!r})") from exc
        if not isinstance(result, dict):
            raise TargetModelError(f"target_model returned {type(result).__name__}; expected a "
                                   f"dict of metrics with {self.reward_metric!r}")
        if self.reward_metric not in result:
            raise TargetModelError(f"target_model's result has no {self.reward_metric!r} "
                                   f"(the reward metric); it returned keys {sorted(result)}")
        try:
            metric = float(result[self.reward_metric])
        except (TypeError, ValueError):
            raise TargetModelError(f"target_model returned {self.reward_metric}="
                                   f"{result[self.reward_metric]!r}; expected a number") from None
        if not math.isfinite(metric):
            raise TargetModelError(f"target_model returned {self.reward_metric}={metric}; "
                                   "expected a finite number")
        return metric, {k: float(v) for k, v in result.items()
                        if isinstance(v, (int, float)) and not isinstance(v, bool)}

    def _obs(self) -> np.ndarray:
        p = self.generator.get_sampling_params()
        onehot = np.zeros(len(self.templates), dtype=np.float32)
        onehot[prompts.TEMPLATE_NAMES.index(self.generator.template.name)] = 1.0
        b = self._last_batch
        n_clf = sum(bool(r.get("is_classification")) for r in b.data)
        parts = [
            [p["temperature"] / TEMPERATURE_RANGE[1], p["top_p"]], onehot,
            [self._metric, self._last_reward,
             float(np.mean(self._rewards)) if self._rewards else 0.0, self._best,
             self._step_count / self.num_iterations, b.kept_fraction, b.unique_ratio,
             b.mean_length / 100.0, n_clf / len(b) if len(b) else 0.0],
        ]
        if self.observe_embedding:
            parts.append(_embed(b.data))
        obs = np.concatenate([np.asarray(x, dtype=np.float32) for x in parts])
        return np.clip(obs, -OBS_CLIP, OBS_CLIP).astype(np.float32)


def _embed(records: list[dict[str, Any]]) -> np.ndarray:
    """A 16-d summary of a batch: the mean of hashed, l2-normalised bags of words."""
    if not records:
        return np.zeros(EMBED_DIM, dtype=np.float32)
    from sklearn.feature_extraction.text import HashingVectorizer
    vec = HashingVectorizer(n_features=EMBED_DIM, alternate_sign=True, norm="l2")
    texts = [f"{r['instruction']} {r['input']} {r['output']}" for r in records]
    return np.asarray(vec.transform(texts).mean(axis=0)).ravel().astype(np.float32)
