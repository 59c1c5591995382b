"""RLTuner: training history, best settings, save/load, atomic checkpoints, kill + resume.

Runs on the embedded teacher with tiny batches (4 records, 3-step episodes) and a cheap,
deterministic target, so the whole file takes well under a minute on 2 cores.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from datagen.rl_tuning import HISTORY_KEYS, RLTuner
from datagen.rl_tuning.rl_tuner import TUNER_FILE
from datagen_gym.config import ConfigError
from datagen_gym.envs.datagen_env import TargetModelError
from datagen_gym.results import read_jsonl

LABELS = {"positive", "negative", "yes", "no", "true", "false"}


def cheap_target(records):
    """Deterministic and instant: rewards short, label-like answers."""
    labelled = sum(str(r.get("output", "")).strip().lower() in LABELS for r in records)
    short = sum(len(str(r.get("output", "")).split()) <= 3 for r in records)
    n = len(records)
    return {"accuracy": (labelled + 0.5 * short) / (n + 1), "n": float(n)}


class KillWhen:
    """The cheap target, raising (a simulated kill) once ``condition()`` holds."""

    def __init__(self, condition=lambda: False):
        self.condition = condition

    def __call__(self, records):
        if self.condition():
            raise RuntimeError("simulated kill")
        return cheap_target(records)


def config(**rl):
    return {"rl_tuning": {"batch_size": 4, "num_iterations": 3, "seed": 0, **rl}}


def comparable(history):
    """History without wall-clock timings (everything else is deterministic)."""
    return [{k: v for k, v in e.items() if not k.startswith("time_")} for e in history]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A random-search tuner trained for its default budget (one 3-step episode)."""
    tb = tmp_path_factory.mktemp("tb")
    tuner = RLTuner(config(), target_model=cheap_target)
    history = tuner.train(tensorboard_log=tb, progress=False)
    return tuner, history, tb


# ----------------------------------------------------------------------------- training
def test_train_history_keys_length_and_best(trained):
    tuner, history, tb = trained
    assert len(history) == 3 == tuner.steps_done == tuner.total_planned
    assert [h["iteration"] for h in history] == [1, 2, 3]
    assert [h["episode"] for h in history] == [1, 1, 1]
    assert [h["episode_step"] for h in history] == [1, 2, 3]
    for h in history:
        assert set(HISTORY_KEYS) <= set(h)
        assert h["metrics"]["accuracy"] == h["metric"]
        assert 0.0 <= h["temperature"] <= 2.0 and 0.05 <= h["top_p"] <= 1.0
        assert h["time_generation_s"] > 0 and h["time_target_s"] > 0  # from the env's timer
        json.dumps(h, allow_nan=False)  # strict JSON: NaN correctness is stored as null
    # Rewards telescope from the baseline.
    assert sum(h["reward"] for h in history) == pytest.approx(
        history[-1]["metric"] - tuner.baseline_metric
    )
    # best_params is the best step of the history.
    candidates = [h for h in history if not h["all_filtered"]]
    best = max(candidates, key=lambda h: h["metric"])
    assert tuner.best_params == {
        "temperature": best["temperature"],
        "top_p": best["top_p"],
        "template": best["template"],
        "focus": None,
        "metric": best["metric"],
        "test_metric": None,
        "iteration": best["iteration"],
    }
    assert [h["best_metric"] for h in history] == [
        max(c["metric"] for c in candidates if c["iteration"] <= h["iteration"]) for h in history
    ]
    # TensorBoard events under <root>/random_search_1.
    assert list(Path(tb).glob("random_search_*/events.out.tfevents.*"))


def test_tensorboard_shows_the_env_tags_and_where_the_time_goes(trained):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    _, history, tb = trained
    (run_dir,) = {p.parent for p in tb.rglob("events.out.tfevents.*")}
    acc = EventAccumulator(str(run_dir))
    acc.Reload()
    tags = set(acc.Tags()["scalars"])
    assert {
        "datagen/metric",
        "datagen/reward",
        "datagen/time_generation_s",
        "datagen/time_target_s",
    } <= tags, tags
    assert len(acc.Scalars("datagen/time_generation_s")) == len(history)


def test_default_budget_and_agent_choices():
    rs = RLTuner(config(), target_model=cheap_target)
    assert rs.is_random_search and rs.default_timesteps() == 3
    rf = RLTuner(config(rl_algorithm="reinforce", learning_rate=0.05), target_model=cheap_target)
    assert rf.default_timesteps() == 20 * 3
    assert rf.agent.learning_rate == 0.05  # config's learning rate reaches the agent
    ppo = RLTuner(config(), target_model=cheap_target, rl_agent="ppo", agent_kwargs={"n_steps": 4})
    assert ppo.algorithm == "ppo" and ppo.agent.model.learning_rate == 0.001
    from agents import make_agent

    other = RLTuner(config(), target_model=cheap_target)
    agent = make_agent("reinforce", other.recorder, seed=1)
    given = RLTuner(config(), target_model=cheap_target, rl_agent=agent)
    assert given.agent is agent and agent.env is given.recorder
    with pytest.raises(ValueError, match="unknown RL algorithm 'nope'"):
        RLTuner(config(rl_algorithm="nope"), target_model=cheap_target)
    with pytest.raises(ValueError, match="action_mode"):
        RLTuner(config(rl_algorithm="sac"), target_model=cheap_target)
    with pytest.raises(ConfigError, match="rl_tuning.batch_size"):
        RLTuner(config(batch_size=0), target_model=cheap_target)


def test_learning_agent_runs_episodes_and_budget():
    tuner = RLTuner(config(rl_algorithm="reinforce"), target_model=cheap_target)
    history = tuner.train(total_timesteps=4, progress=False)
    assert [(h["episode"], h["episode_step"]) for h in history] == [(1, 1), (1, 2), (1, 3), (2, 1)]
    history = tuner.train(total_timesteps=2, progress=False)  # continues mid-episode
    assert [(h["episode"], h["episode_step"]) for h in history[4:]] == [(2, 2), (2, 3)]
    assert tuner.steps_done == 6


def test_generate_dataset_uses_best_settings(trained, tmp_path):
    tuner, _, _ = trained
    best = tuner.best_params
    env_params = tuner.env.generator.get_sampling_params()
    data = tuner.generate_dataset(6, tmp_path / "data.jsonl")
    assert 0 < len(data) <= 6
    for r in data:
        assert r["template"] == best["template"]
        assert r["temperature"] == pytest.approx(best["temperature"], abs=1e-4)
        assert r["top_p"] == pytest.approx(best["top_p"], abs=1e-4)
    assert read_jsonl(tmp_path / "data.jsonl") == data.data
    again = tuner.generate_dataset(6)  # seeded: the same records again
    assert again.data == data.data
    # The env's own generator is untouched (a training episode can go on).
    assert tuner.env.generator.get_sampling_params() == env_params


# ----------------------------------------------------------------------------- persistence
def test_save_load_same_state_and_same_continuation(tmp_path):
    tuner = RLTuner(config(rl_algorithm="reinforce"), target_model=cheap_target)
    tuner.train(total_timesteps=4, progress=False)  # ends mid-episode (episode 2, step 1)
    tuner.save(tmp_path / "ckpt")
    state = json.loads((tmp_path / "ckpt" / TUNER_FILE).read_text())
    assert {"config", "history", "best", "generator", "counters", "env"} <= set(state)
    assert (tmp_path / "ckpt" / "agent" / "agent.json").is_file()
    assert not list((tmp_path / "ckpt").rglob("*.pkl"))

    loaded = RLTuner.load(tmp_path / "ckpt", target_model=cheap_target)
    assert loaded.history == tuner.history
    assert loaded.best == tuner.best and loaded.best_params == tuner.best_params
    assert loaded.baseline_metric == tuner.baseline_metric
    assert (loaded.steps_done, loaded.total_planned) == (4, 4)
    assert loaded.config == tuner.config
    assert loaded.env.generator.get_sampling_params() == tuner.env.generator.get_sampling_params()
    assert loaded.env.generator.template.name == tuner.env.generator.template.name
    assert loaded.recorder.state_dict() == tuner.recorder.state_dict()
    obs = np.stack([tuner.env.observation_space.sample() for _ in range(5)])
    np.testing.assert_array_equal(
        loaded.agent.predict(obs, deterministic=True)[0],
        tuner.agent.predict(obs, deterministic=True)[0],
    )
    # Both continue identically (same mid-episode env state, same agent state).
    a = tuner.train(total_timesteps=3, progress=False)
    b = loaded.train(total_timesteps=3, progress=False)
    assert comparable(a) == comparable(b)
    assert [h["iteration"] for h in b] == list(range(1, 8))


def test_atomic_save_keeps_previous_checkpoint(tmp_path, monkeypatch):
    tuner = RLTuner(config(), target_model=cheap_target)
    tuner.train(total_timesteps=2, progress=False)
    ckpt = tmp_path / "ckpt"
    tuner.save(ckpt)
    before = (ckpt / TUNER_FILE).read_text()
    tuner.train(total_timesteps=1, progress=False)

    real_save = tuner.agent.save

    def failing_save(path):
        real_save(path)  # the agent files are written ...
        raise OSError("disk full")  # ... then the save dies before tuner.json

    monkeypatch.setattr(tuner.agent, "save", failing_save)
    with pytest.raises(OSError, match="disk full"):
        tuner.save(ckpt)
    assert (ckpt / TUNER_FILE).read_text() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]  # no temp dirs left
    assert len(RLTuner.load(ckpt, target_model=cheap_target).history) == 2

    # A crash between the two renames of a save: the old checkpoint sits in its backup name.
    (ckpt).rename(tmp_path / ".ckpt.old-deadbeef")
    assert len(RLTuner.load(ckpt, target_model=cheap_target).history) == 2
    monkeypatch.undo()
    tuner.save(ckpt)  # the next save cleans the backup up
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]
    assert len(RLTuner.load(ckpt, target_model=cheap_target).history) == 3
    with pytest.raises(FileNotFoundError, match="no RLTuner checkpoint"):
        RLTuner.load(tmp_path / "missing", target_model=cheap_target)


@pytest.mark.parametrize(
    "algo, agent_kwargs", [("random_search", {}), ("ppo", {"n_steps": 2, "batch_size": 2})]
)
def test_kill_and_resume_continues(tmp_path, algo, agent_kwargs):
    total, every = 6, 2
    ckpt = tmp_path / "ckpt"
    target = KillWhen()
    tuner = RLTuner(config(rl_algorithm=algo), target_model=target, agent_kwargs=agent_kwargs)
    # Steps 1-4 succeed, the next one calling the target "dies" (a step whose batch is
    # entirely filtered out does not call the target).
    target.condition = lambda: tuner.steps_done >= 4
    with pytest.raises(TargetModelError, match="simulated kill"):
        tuner.train(
            total_timesteps=total, checkpoint_dir=ckpt, checkpoint_every=every, progress=False
        )
    assert 4 <= tuner.steps_done < total
    killed_history = list(tuner.history)

    resumed = RLTuner.load(ckpt, target_model=cheap_target)
    assert (resumed.steps_done, resumed.total_planned) == (4, total)
    assert resumed.history == killed_history[:4]
    assert resumed.best_params["metric"] == max(
        h["metric"] for h in killed_history[:4] if not h["all_filtered"]
    )
    # Mid-episode (episode 2, step 1): the episode was replayed, not restarted.
    assert (resumed.recorder.episode, resumed.recorder.episode_step) == (2, 1)
    history = resumed.train(checkpoint_dir=ckpt, checkpoint_every=every, progress=False)
    assert [h["iteration"] for h in history] == list(range(1, total + 1))
    assert [(h["episode"], h["episode_step"]) for h in history] == [
        (1, 1),
        (1, 2),
        (1, 3),
        (2, 1),
        (2, 2),
        (2, 3),
    ]
    assert json.loads((ckpt / TUNER_FILE).read_text())["counters"]["steps_done"] == total
    if algo == "random_search":
        # The search state and the env were restored exactly: the same run as without a kill.
        uninterrupted = RLTuner(config(), target_model=cheap_target).train(
            total_timesteps=total, progress=False
        )
        assert comparable(history) == comparable(uninterrupted)
    else:
        assert resumed.agent.num_timesteps >= 4
    # Nothing more to do: train() without a budget after a finished run starts a new one.
    assert resumed.total_planned == resumed.steps_done == total


def test_summary_and_repr(trained):
    tuner, history, _ = trained
    s = tuner.summary()
    assert s["steps_done"] == 3 and s["best_metric"] == tuner.best_params["metric"]
    assert s["improvement"] == pytest.approx(s["best_metric"] - s["baseline_metric"])
    assert not math.isnan(s["best_metric"])
    assert "random_search" in repr(tuner)


def test_focus_runs_through_the_tuner(tmp_path):
    """A skills config (built-in two-skill target, focus action): history, best settings,
    the final dataset and a checkpoint round trip all carry the focus."""
    cfg = {
        "rl_tuning": {
            "batch_size": 4,
            "num_iterations": 2,
            "seed": 0,
            "task": "topic+spam",
            "focus": True,
            "rl_algorithm": "ucb",
        }
    }
    tuner = RLTuner(cfg)
    assert tuner.env.action_space.nvec.tolist() == [3, 3, 10, 3]
    history = tuner.train(num_iterations=4, progress=False)
    assert {e["focus"] for e in history} <= {None, "topic", "spam"}
    assert all(0.0 <= e["test_metric"] <= 1.0 for e in history)
    assert set(history[0]["skill_metrics"]) == {"topic", "spam"}
    best = tuner.best_params
    assert best["focus"] == tuner.best["focus"] and best["test_metric"] is not None
    records = tuner.generate_dataset(6, seed=1).data
    assert records and {r.get("skill") for r in records} == {best["focus"]}
    tuner.save(tmp_path / "ckpt")
    again = RLTuner.load(tmp_path / "ckpt")
    assert again.best_params == best
    assert again.env.generator.focus == tuner.env.generator.focus
