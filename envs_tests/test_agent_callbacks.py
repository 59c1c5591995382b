"""The hand-rolled agents on SB3's machinery: callbacks, logger, checkpoints (fast fake envs).

One SB3 ``BaseCallback`` must behave the same in ``make_agent("reinforce", ...)`` and
``make_agent("ppo", ...)``; SB3's own ``CheckpointCallback`` and ``StopTrainingOnMaxEpisodes``
must work with the hand-rolled agents; their logs go through SB3's ``Logger``.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from stable_baselines3.common.callbacks import (
    BaseCallback,
    CallbackList,
    CheckpointCallback,
    ConvertCallback,
    StopTrainingOnMaxEpisodes,
)
from stable_baselines3.common.logger import Logger
from test_agents import FakeDataGenEnv, read_events  # envs_tests/ is on sys.path

from agents import BaseAgent, ReinforceAgent, SB3Agent, load_agent, make_agent

torch.set_num_threads(1)

EPISODE = 5  # FakeDataGenEnv's default num_iterations


class Recorder(BaseCallback):
    """Records SB3's callback protocol as it is driven; stops after ``stop_at`` calls."""

    def __init__(self, stop_at: int | None = None) -> None:
        super().__init__()
        self.stop_at = stop_at
        self.events: list[str] = []
        self.models: list[Any] = []
        self.metrics: list[float] = []
        self.steps: list[int] = []

    def _init_callback(self) -> None:
        self.events.append("init")
        self.models.append(self.model)

    def _on_training_start(self) -> None:
        self.events.append("training_start")

    def _on_rollout_start(self) -> None:
        self.events.append("rollout_start")

    def _on_step(self) -> bool:
        self.events.append("step")
        assert self.model is self.models[-1] and self.logger is self.model.logger
        assert self.training_env.num_envs == 1
        self.metrics.append(float(np.ravel(self.locals["infos"])[0]["metric"]))
        self.steps.append(self.num_timesteps)
        return self.stop_at is None or self.n_calls < self.stop_at

    def _on_rollout_end(self) -> None:
        self.events.append("rollout_end")

    def _on_training_end(self) -> None:
        self.events.append("training_end")


def rollout(n: int) -> list[str]:
    return ["rollout_start", *["step"] * n, "rollout_end"]


def test_callback_protocol_in_order_with_the_agent_as_model() -> None:
    env = FakeDataGenEnv()
    agent = make_agent("reinforce", env, seed=0)
    rec = Recorder()
    agent.learn(2 * EPISODE, callback=rec)
    assert rec.events == [
        "init",
        "training_start",
        *rollout(EPISODE),
        *rollout(EPISODE),
        "training_end",
    ]
    assert rec.models == [agent] and rec.model is agent
    assert rec.steps == list(range(1, 2 * EPISODE + 1)) and len(rec.metrics) == 2 * EPISODE
    assert isinstance(agent.logger, Logger) and agent.get_vec_normalize_env() is None
    assert agent.get_env().unwrapped is env.unwrapped
    # Random search (and the bandits) have no rollouts: steps only.
    rec = Recorder()
    searcher = make_agent("random_search", FakeDataGenEnv(), seed=0)
    searcher.learn(7, callback=rec)
    assert rec.events == ["init", "training_start", *["step"] * 7, "training_end"]
    assert rec.models == [searcher]


@pytest.mark.parametrize("name", ["reinforce", "random_search", "ucb"])
def test_on_step_false_stops_at_that_exact_step(name: str) -> None:
    env = FakeDataGenEnv()
    rec = Recorder(stop_at=7)
    agent = make_agent(name, env, seed=0).learn(50, callback=rec)
    assert agent.num_timesteps == 7 and env.total_steps == 7 and rec.n_calls == 7
    assert rec.events[-1] == "training_end"  # SB3 also ends training after a stop
    if name == "reinforce":  # the partial second batch is still closed and used
        assert rec.events == [
            "init",
            "training_start",
            *rollout(EPISODE),
            *rollout(2),
            "training_end",
        ]


@pytest.mark.parametrize("name", ["reinforce", "random_search"])
def test_sb3_checkpoint_callback_writes_loadable_checkpoints(tmp_path: Path, name: str) -> None:
    agent = make_agent(name, FakeDataGenEnv(), seed=0)
    agent.learn(
        12, callback=CheckpointCallback(save_freq=5, save_path=str(tmp_path), name_prefix=name)
    )
    # SB3 names them <prefix>_<n>_steps.zip; agent checkpoints are directories without the suffix
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"{name}_10_steps", f"{name}_5_steps"]
    for steps in (5, 10):
        for path in (tmp_path / f"{name}_{steps}_steps.zip", tmp_path / f"{name}_{steps}_steps"):
            loaded = load_agent(path, env=FakeDataGenEnv())
            assert type(loaded) is type(agent) and loaded.num_timesteps == steps
            action, _ = loaded.predict(FakeDataGenEnv().reset()[0], deterministic=True)
            assert FakeDataGenEnv().action_space.contains(action)
    if name == "reinforce":  # the step-5 checkpoint precedes the first update, step 10 follows it
        first = load_agent(tmp_path / "reinforce_5_steps")
        second = load_agent(tmp_path / "reinforce_10_steps")
        assert any(
            not torch.equal(p, second.policy.state_dict()[k])
            for k, p in first.policy.state_dict().items()
        )
    # A continued run from a checkpoint keeps counting where it stopped.
    resumed = load_agent(tmp_path / f"{name}_10_steps", env=FakeDataGenEnv())
    rec = Recorder()
    resumed.learn(3, callback=rec, reset_num_timesteps=False)
    assert resumed.num_timesteps == 13 and rec.steps == [11, 12, 13]


@pytest.mark.parametrize("name", ["reinforce", "random_search"])
def test_sb3_stop_on_max_episodes(name: str) -> None:
    env = FakeDataGenEnv()
    agent = make_agent(name, env, seed=0).learn(100, callback=StopTrainingOnMaxEpisodes(2))
    assert agent.num_timesteps == 2 * EPISODE == env.total_steps and agent.num_episodes == 2


def test_function_callback_and_mixed_lists() -> None:
    seen: list[int] = []

    def count(locals_: dict[str, Any], globals_: dict[str, Any]) -> bool:
        seen.append(locals_["num_timesteps"])
        assert locals_["self"] is agent and locals_["dones"] == [seen[-1] % EPISODE == 0]
        return True

    agent = make_agent("reinforce", FakeDataGenEnv(), seed=0)
    agent.learn(6, callback=count)
    assert seen == list(range(1, 7))
    for mixed in (
        lambda rec: [count, rec],
        lambda rec: CallbackList([ConvertCallback(count), rec]),
    ):
        seen.clear()
        rec = Recorder(stop_at=4)
        agent = make_agent("random_search", FakeDataGenEnv(), seed=0)
        agent.learn(20, callback=mixed(rec))
        assert seen == [1, 2, 3, 4] and rec.n_calls == 4 and agent.num_timesteps == 4
        assert rec.events[:2] == ["init", "training_start"] and rec.events[-1] == "training_end"
    with pytest.raises(TypeError, match="BaseCallback"):
        make_agent("random_search", FakeDataGenEnv(), seed=0).learn(2, callback=42)


def test_one_callback_object_serves_a_hand_rolled_and_an_sb3_agent() -> None:
    rec = Recorder()
    hand = make_agent("reinforce", FakeDataGenEnv(), seed=0)
    hand.learn(EPISODE, callback=rec)
    assert isinstance(hand, BaseAgent) and rec.model is hand and rec.n_calls == EPISODE
    sb3 = make_agent("ppo", FakeDataGenEnv(), seed=0, n_steps=8)
    assert isinstance(sb3, SB3Agent)
    before = len(rec.events)
    sb3.learn(16, callback=rec)
    assert rec.model is sb3.model and rec.n_calls == EPISODE + 16
    assert rec.events[before:] == [
        "init",
        "training_start",
        *rollout(8),
        *rollout(8),
        "training_end",
    ]
    assert len(rec.metrics) == EPISODE + 16  # the same `infos` key in both kinds of locals
    assert sb3.logger is sb3.model.logger


# ----------------------------------------------------------------------------- logging
def test_logger_writes_sb3_run_dirs_and_continues_them(tmp_path: Path) -> None:
    class Custom(BaseCallback):  # a callback logging through the agent's logger, as with SB3
        def _on_step(self) -> bool:
            self.logger.record("custom/calls", self.n_calls)
            return True

    agent = make_agent("reinforce", FakeDataGenEnv(), seed=0, tensorboard_log=tmp_path)
    agent.learn(2 * EPISODE, callback=Custom(), tb_log_name="r")
    assert agent.logger_dir == str(tmp_path / "r_1")
    agent.learn(EPISODE, tb_log_name="r")  # reset_num_timesteps=True: a new run
    assert agent.logger_dir == str(tmp_path / "r_2")
    agent.learn(EPISODE, tb_log_name="r", reset_num_timesteps=False)  # continues r_2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r_1", "r_2"]
    first = read_events(tmp_path / "r_1")
    # rollout/* and train/* are dumped at every episode end, at that step
    for tag in ("rollout/ep_rew_mean", "train/policy_loss", "custom/calls"):
        assert [e.step for e in first.Scalars(tag)] == [5, 10], tag
    assert [e.value for e in first.Scalars("custom/calls")] == [5, 10]
    assert [e.step for e in first.Scalars("datagen/metric")] == list(range(1, 11))
    second = read_events(tmp_path / "r_2")
    assert [e.step for e in second.Scalars("datagen/metric")] == list(range(1, 11))
    # a continued run with no earlier run in its root starts at _1, as a fresh one would
    resumed = ReinforceAgent(FakeDataGenEnv(), seed=0, tensorboard_log=tmp_path / "new")
    resumed.learn(2, tb_log_name="c", reset_num_timesteps=False)
    assert resumed.logger_dir == str(tmp_path / "new" / "c_1")


def test_resume_from_a_checkpoint_purges_the_redone_steps(tmp_path: Path) -> None:
    tb = tmp_path / "tb"
    agent = make_agent("reinforce", FakeDataGenEnv(), seed=0, tensorboard_log=tb)
    agent.learn(
        2 * EPISODE,
        tb_log_name="r",
        callback=CheckpointCallback(2 * EPISODE, str(tmp_path / "ck"), "r"),
    )
    agent.learn(2 * EPISODE, tb_log_name="r", reset_num_timesteps=False)  # "lost" steps 11-20
    resumed = load_agent(
        tmp_path / "ck" / "r_10_steps.zip", env=FakeDataGenEnv(), tensorboard_log=tb
    )
    resumed.learn(2 * EPISODE, tb_log_name="r", reset_num_timesteps=False)
    assert sorted(p.name for p in tb.iterdir()) == ["r_1"]
    acc = read_events(tb / "r_1")
    assert [e.step for e in acc.Scalars("datagen/metric")] == list(range(1, 21))  # each once
    assert [e.step for e in acc.Scalars("rollout/ep_rew_mean")] == [5, 10, 15, 20]


def test_no_tensorboard_log_writes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # where SB3's configure() would go

    def written() -> list[str]:  # torch's own compile cache dir may appear on first use
        return [p.name for p in tmp_path.iterdir() if not p.name.startswith("torchinductor_")]

    # SB3's own configure_logger() makes an empty tempdir/SB3-<date> folder per learn()
    for name in ("reinforce", "random_search", "exp3", "ppo", "dqn"):
        agent = make_agent(name, FakeDataGenEnv(), seed=0)
        agent.learn(EPISODE)
        assert agent.logger_dir is None
    assert written() == []
    assert capsys.readouterr().out == ""
    # verbose=1: SB3's stdout table at every episode end, still no files
    make_agent("reinforce", FakeDataGenEnv(), seed=0, verbose=1).learn(2 * EPISODE)
    out = capsys.readouterr().out
    assert out.count("ep_rew_mean") == 2 and "policy_loss" in out and "datagen/" in out
    assert written() == []


def test_end_learn_after_an_exception_closes_the_logger(tmp_path: Path) -> None:
    class Boom(BaseCallback):
        def _on_step(self) -> bool:
            if self.n_calls == 3:
                raise RuntimeError("boom")
            return True

    agent = make_agent("random_search", FakeDataGenEnv(), seed=0, tensorboard_log=tmp_path)
    with pytest.raises(RuntimeError, match="boom"):
        agent.learn(10, callback=Boom())
    agent.end_learn()  # what the application layer calls; nothing left open, so a no-op
    agent.end_learn()
    assert [e.step for e in read_events(tmp_path / "run_1").Scalars("datagen/metric")] == [1, 2, 3]
    agent.learn(EPISODE, reset_num_timesteps=False)  # the agent stays usable
    assert agent.num_timesteps == 3 + EPISODE
