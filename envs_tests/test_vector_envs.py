"""DataGen-v0 in many processes: SubprocVecEnv (forkserver, spawn), Gymnasium's AsyncVectorEnv
and RayVecEnv each train PPO for a few steps; RayVecEnv matches DummyVecEnv step for step."""

import importlib.util
import sys
import threading
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from support.sizes import TINY_BATCH

from datagen_gym.envs.vector import (
    GymnasiumVecEnvAdapter,
    check_picklable,
    make_async_vector_env,
    make_vec_env,
)

SMALL = {"batch_size": TINY_BATCH, "num_iterations": 2}  # many envs at once
N_ENVS = 2


def _ppo_few_steps(venv) -> None:
    from stable_baselines3 import PPO

    model = PPO("MlpPolicy", venv, n_steps=4, batch_size=4, n_epochs=1, seed=0, device="cpu")
    model.learn(total_timesteps=4 * N_ENVS)
    assert model.num_timesteps == 4 * N_ENVS
    # num_iterations=2: each env finished two episodes, which Monitor reported to SB3.
    assert len(model.ep_info_buffer) == 2 * N_ENVS
    obs = venv.reset()
    assert obs.shape == (N_ENVS,) + venv.observation_space.shape


@pytest.mark.parametrize("start_method", ["forkserver", "spawn"])
def test_subproc_vec_env_ppo(start_method):
    venv = make_vec_env(N_ENVS, start_method=start_method, env_kwargs=SMALL, seed=0)
    try:
        assert type(venv).__name__ == "SubprocVecEnv"
        _ppo_few_steps(venv)
        assert venv.get_attr("batch_size") == [4, 4]
    finally:
        venv.close()


def test_gymnasium_async_vector_env_ppo():
    from stable_baselines3.common.monitor import Monitor

    # The plain Gymnasium API: an AsyncVectorEnv of registered DataGen-v0 envs. SAME_STEP
    # autoreset and Monitor are what SB3 needs on top (make_async_vector_env sets both).
    raw = gym.make_vec(
        "DataGen-v0",
        num_envs=N_ENVS,
        vectorization_mode="async",
        vector_kwargs={
            "context": "forkserver",
            "autoreset_mode": gym.vector.AutoresetMode.SAME_STEP,
        },
        wrappers=[Monitor],
        **SMALL,
    )
    try:
        assert isinstance(raw, gym.vector.AsyncVectorEnv)
        obs, infos = raw.reset(seed=0)
        assert obs.shape == (N_ENVS,) + raw.single_observation_space.shape
        obs, rew, term, trunc, infos = raw.step(raw.action_space.sample())
        assert rew.shape == (N_ENVS,) and not trunc.any() and "metric" in infos
        venv = GymnasiumVecEnvAdapter(raw)  # SB3 on top
        venv.reset()
        for _ in range(2):  # num_iterations=2: the second step ends the episodes
            obs, rew, dones, infos = venv.step(np.zeros((N_ENVS, 3), dtype=int))
        assert dones.all() and all(i["TimeLimit.truncated"] for i in infos)
        assert all("terminal_observation" in i and "episode" in i for i in infos)
        assert obs.shape == (N_ENVS,) + venv.observation_space.shape  # already reset
        venv.seed(0)
        _ppo_few_steps(venv)
        assert venv.get_attr("batch_size") == [4, 4]
    finally:
        raw.close()


def test_make_async_vector_env_arguments(monkeypatch):
    from stable_baselines3.common.monitor import Monitor

    seen = {}
    monkeypatch.setattr(gym, "make_vec", lambda *a, **kw: seen.update(args=a, **kw) or "venv")
    assert make_async_vector_env(3, env_kwargs=SMALL) == "venv"
    assert seen["args"] == ("DataGen-v0",) and seen["num_envs"] == 3
    assert seen["vectorization_mode"] == "async" and seen["wrappers"] == [Monitor]
    assert seen["vector_kwargs"] == {
        "context": "forkserver",
        "autoreset_mode": gym.vector.AutoresetMode.SAME_STEP,
    }
    assert seen["batch_size"] == 4 and seen["num_iterations"] == 2
    with pytest.raises(ValueError, match="SAME_STEP"):
        GymnasiumVecEnvAdapter(_NextStepStub())


class _NextStepStub:
    metadata = {"autoreset_mode": gym.vector.AutoresetMode.NEXT_STEP}


def test_unpicklable_env_kwargs_are_named():
    with pytest.raises(TypeError, match=r"env_kwargs\['target_model'\].*picklable"):
        make_vec_env(2, env_kwargs={"target_model": threading.Lock(), **SMALL})
    check_picklable({"target_model": len, **SMALL})  # module-level functions are fine


def test_ray_missing_gives_install_hint(monkeypatch):
    from datagen_gym.envs import ray_vec_env

    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(ImportError, match=r"pip install \"datagen-gym\[ray\]\""):
        ray_vec_env.RayVecEnv(SMALL, num_envs=1)


# ---------------------------------------------------------------------------- Ray
def _brief(infos):
    """What a mismatch message needs to tell where two runs diverged."""
    return [
        (i["metric"], i["template"], i["temperature"], i["top_p"], i["num_records"]) for i in infos
    ]


needs_ray = pytest.mark.skipif(
    importlib.util.find_spec("ray") is None,
    reason='ray is not installed (pip install "ray[default]")',
)


@pytest.fixture(scope="module")
def ray_local():
    import ray

    started = not ray.is_initialized()
    if started:
        root = str(Path(__file__).resolve().parents[1])
        ray.init(
            num_cpus=2,
            include_dashboard=False,
            log_to_driver=False,
            runtime_env={"env_vars": {"PYTHONPATH": root}},
        )
    yield ray
    if started:
        ray.shutdown()


# Ray actors run torch with 1 thread (Ray sets OMP_NUM_THREADS=1), the test process with more;
# a different thread count changes float reduction order, which now and then flips a sampled
# token. Pinning the teacher to 1 thread on both sides makes the comparison exact.
RAY_SMALL = dict(SMALL, config={"sampling": {"num_threads": 1}})


@needs_ray
def test_ray_vec_env_matches_dummy_and_trains_ppo(ray_local):
    from datagen_gym.envs.ray_vec_env import RayVecEnv

    ray_env = RayVecEnv(RAY_SMALL, num_envs=N_ENVS)
    dummy = make_vec_env(N_ENVS, vec_cls="dummy", env_kwargs=RAY_SMALL)
    try:
        rng = np.random.default_rng(0)
        for venv in (ray_env, dummy):
            venv.seed(7)
        o_ray, o_dummy = ray_env.reset(), dummy.reset()
        np.testing.assert_array_equal(o_ray, o_dummy)
        for t in range(3):  # crosses an episode end (num_iterations=2): auto-reset
            actions = rng.integers(0, ray_env.action_space.nvec, size=(N_ENVS, 3))
            r1, r2 = ray_env.step(actions), dummy.step(actions)
            why = f"step {t}, actions {actions.tolist()}: ray {_brief(r1[3])} dummy {_brief(r2[3])}"
            np.testing.assert_array_equal(r1[0], r2[0], err_msg=why)
            np.testing.assert_array_equal(r1[1], r2[1], err_msg=why)
            np.testing.assert_array_equal(r1[2], r2[2], err_msg=why)
            for i1, i2 in zip(r1[3], r2[3]):
                assert i1["metric"] == i2["metric"] and i1["examples"] == i2["examples"]
                assert ("terminal_observation" in i1) == ("terminal_observation" in i2)
                if "terminal_observation" in i1:
                    np.testing.assert_array_equal(
                        i1["terminal_observation"], i2["terminal_observation"]
                    )
                    assert i1["TimeLimit.truncated"] is True
        assert ray_env.reset_infos[0]["baseline_metric"] == dummy.reset_infos[0]["baseline_metric"]

        assert ray_env.get_attr("num_iterations") == [2, 2]
        ray_env.set_attr("num_iterations", 3, indices=[1])  # on the outer wrapper, as SB3 does
        assert ray_env.get_attr("num_iterations") == [2, 3]
        assert ray_env.env_method("get_wrapper_attr", "batch_size", indices=1) == [4]
        ray_env.set_attr("num_iterations", 2)
        from stable_baselines3.common.monitor import Monitor

        assert ray_env.env_is_wrapped(Monitor) == [True, True]

        _ppo_few_steps(ray_env)
    finally:
        dummy.close()
        ray_env.close()
    assert ray_env.closed
    # the actors are gone (Ray's error class for a dead actor differs between versions)
    with pytest.raises(Exception):  # noqa: B017
        ray_local.get(ray_env.actors[0].get_attr.remote("batch_size"), timeout=30)
