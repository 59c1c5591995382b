"""An SB3 ``VecEnv`` whose envs live in Ray actors: one actor per env, on any node of a cluster.

    import ray
    ray.init(address="auto")            # or nothing: a local Ray starts on first use
    venv = RayVecEnv({"task": "sentiment"}, num_envs=16, num_gpus_per_env=0.25)
    PPO("MlpPolicy", venv).learn(10_000)

``step_async`` sends every actor its action and keeps the futures; ``step_wait`` gathers them,
so all envs step concurrently, wherever Ray placed them. Semantics follow SB3's
``DummyVecEnv``: a finished env is reset inside the step that ends it, its last observation is
in ``info["terminal_observation"]`` and ``info["TimeLimit.truncated"]`` tells truncation from
termination; ``seed()`` and ``set_options()`` apply at the next ``reset()``. With the same seeds
and actions a deterministic env gives exactly what ``DummyVecEnv`` gives.

Ray is optional: ``pip install "datagen-gym[ray]"`` (or ``pip install "ray[default]"``).
"""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from stable_baselines3.common.vec_env import VecEnv
from stable_baselines3.common.vec_env.base_vec_env import VecEnvIndices

from datagen_gym.envs.vector import DEFAULT_ENV_ID, check_picklable, env_factory

RAY_HINT = 'RayVecEnv needs Ray: pip install "datagen-gym[ray]" (or pip install "ray[default]")'


def _import_ray():
    try:
        import ray
    except ImportError as exc:
        raise ImportError(f"{RAY_HINT} ({exc})") from exc
    return ray


class _EnvWorker:
    """Holds one env inside a Ray actor; each method is one remote call."""

    def __init__(self, env_fn: Callable[[], gym.Env]) -> None:
        self.env = env_fn()

    def spaces(self) -> tuple[spaces.Space, spaces.Space, str | None, dict]:
        return (
            self.env.observation_space,
            self.env.action_space,
            getattr(self.env, "render_mode", None),
            dict(getattr(self.env, "metadata", {})),
        )

    def reset(self, seed: int | None, options: dict | None) -> tuple[Any, dict]:
        kwargs = {"options": options} if options else {}
        return self.env.reset(seed=seed, **kwargs)

    def step(self, action: Any) -> tuple[Any, float, bool, dict, dict | None]:
        """Step; on episode end reset at once (SB3 auto-reset) and return the reset info."""
        obs, reward, terminated, truncated, info = self.env.step(action)
        done = bool(terminated or truncated)
        info["TimeLimit.truncated"] = bool(truncated and not terminated)
        reset_info = None
        if done:
            info["terminal_observation"] = obs
            obs, reset_info = self.env.reset()
        return obs, float(reward), done, info, reset_info

    def env_method(self, name: str, args: tuple, kwargs: dict) -> Any:
        return self.env.get_wrapper_attr(name)(*args, **kwargs)

    def get_attr(self, name: str) -> Any:
        return self.env.get_wrapper_attr(name)

    def set_attr(self, name: str, value: Any) -> None:
        setattr(self.env, name, value)  # as SB3's SubprocVecEnv does

    def is_wrapped(self, wrapper_class: type) -> bool:
        from stable_baselines3.common.env_util import is_wrapped

        return is_wrapped(self.env, wrapper_class)

    def render(self) -> Any:
        return self.env.render()

    def close(self) -> None:
        self.env.close()


@functools.lru_cache(maxsize=1)
def _remote_worker_class():
    return _import_ray().remote(_EnvWorker)


def _worker_pythonpath() -> str:
    """PYTHONPATH that lets Ray workers import this checkout of datagen_gym (also when it is
    not installed, e.g. run from a source tree)."""
    root = str(Path(__file__).resolve().parents[2])
    old = os.environ.get("PYTHONPATH", "")
    return root if not old else root + os.pathsep + old


def _stack(obs: Sequence[Any], space: spaces.Space) -> Any:
    if isinstance(space, spaces.Dict):
        return {k: _stack([o[k] for o in obs], s) for k, s in space.spaces.items()}
    if isinstance(space, spaces.Tuple):
        return tuple(_stack([o[i] for o in obs], s) for i, s in enumerate(space.spaces))
    return np.stack(obs)


class RayVecEnv(VecEnv):
    """SB3 ``VecEnv`` over Ray actors, one env per actor, stepped concurrently.

    Args:
        envs: a list of zero-argument env constructors (their count is the number of envs), or
            a dict of ``gym.make(env_id, ...)`` keyword arguments for every env (``None``: the
            defaults). Everything is shipped to the actors by cloudpickle, so it must be
            picklable (module-level functions or ``functools.partial``; see
            :func:`~datagen_gym.envs.vector.env_factory`).
        num_envs: number of envs when ``envs`` is a dict or None.
        num_gpus_per_env, num_cpus_per_env: each actor's Ray resource request (fractions
            allowed, e.g. 0.25 GPUs to put four envs on one GPU).
        ray_address: the cluster to join if Ray is not initialised yet (``"auto"``: the one
            ``ray start --head`` started on this machine; None: start a local one).
        env_id: the registered env id used with a dict of kwargs.
        monitor: wrap each env in SB3's ``Monitor`` (dict/None ``envs`` only).
        torch_threads: torch threads per actor (dict/None ``envs`` only).
        ray_init_kwargs: more ``ray.init`` arguments when this class starts Ray
            (``num_cpus``, ``include_dashboard``...).
        actor_options: more ``.options(...)`` for each actor (``runtime_env``, ``resources``,
            ``scheduling_strategy``...).

    If this object started Ray, :meth:`close` leaves it running (other work may use it); call
    ``ray.shutdown()`` when done.
    """

    def __init__(
        self,
        envs: Sequence[Callable[[], gym.Env]] | Mapping[str, Any] | None = None,
        num_envs: int | None = None,
        num_gpus_per_env: float = 0,
        num_cpus_per_env: float = 1,
        ray_address: str | None = None,
        env_id: str = DEFAULT_ENV_ID,
        monitor: bool = True,
        torch_threads: int | None = 1,
        ray_init_kwargs: dict[str, Any] | None = None,
        actor_options: dict[str, Any] | None = None,
    ) -> None:
        ray = _import_ray()
        if envs is None or isinstance(envs, Mapping):
            if num_envs is None or num_envs < 1:
                raise ValueError(
                    "num_envs (>= 1) is needed when envs is a dict of env kwargs "
                    f"or None; got {num_envs}"
                )
            check_picklable(envs, "Ray actors")
            env_fns = [env_factory(env_id, envs, monitor, torch_threads) for _ in range(num_envs)]
        else:
            env_fns = list(envs)
            if not env_fns or not all(callable(f) for f in env_fns):
                raise TypeError(
                    "envs must be a non-empty list of zero-argument env "
                    "constructors, or a dict of env kwargs"
                )
            if num_envs is not None and num_envs != len(env_fns):
                raise ValueError(f"num_envs={num_envs} but {len(env_fns)} env constructors")
        if num_gpus_per_env < 0 or num_cpus_per_env < 0:
            raise ValueError("num_gpus_per_env and num_cpus_per_env must be >= 0")

        if not ray.is_initialized():
            kwargs = dict(ray_init_kwargs or {})
            kwargs.setdefault("include_dashboard", False)
            kwargs.setdefault("runtime_env", {"env_vars": {"PYTHONPATH": _worker_pythonpath()}})
            ray.init(address=ray_address, **kwargs)
        self._ray = ray
        opts = dict(actor_options or {})
        opts.update(num_cpus=num_cpus_per_env, num_gpus=num_gpus_per_env)
        worker_cls = _remote_worker_class()
        self.actors = [worker_cls.options(**opts).remote(fn) for fn in env_fns]
        self.closed = False
        try:
            obs_space, act_space, render_mode, metadata = ray.get(self.actors[0].spaces.remote())
        except Exception:
            self._kill_actors()
            raise
        self.metadata = metadata
        self._futures: list | None = None
        super().__init__(len(self.actors), obs_space, act_space)

    # ------------------------------------------------------------------ core
    def reset(self):
        futures = [
            a.reset.remote(self._seeds[i], self._options[i] or None)
            for i, a in enumerate(self.actors)
        ]
        results = self._ray.get(futures)
        self.reset_infos = [info for _, info in results]
        self._reset_seeds()
        self._reset_options()
        return _stack([obs for obs, _ in results], self.observation_space)

    def step_async(self, actions: np.ndarray) -> None:
        if self._futures is not None:
            raise RuntimeError("step_async called twice without step_wait")
        self._futures = [a.step.remote(act) for a, act in zip(self.actors, actions)]

    def step_wait(self):
        if self._futures is None:
            raise RuntimeError("step_wait called without step_async")
        try:
            results = self._ray.get(self._futures)
        finally:
            self._futures = None
        obs, rews, dones, infos = [], [], [], []
        for i, (o, r, d, info, reset_info) in enumerate(results):
            obs.append(o)
            rews.append(r)
            dones.append(d)
            infos.append(info)
            if reset_info is not None:
                self.reset_infos[i] = reset_info
        return (
            _stack(obs, self.observation_space),
            np.asarray(rews, dtype=np.float32),
            np.asarray(dones, dtype=bool),
            infos,
        )

    def close(self) -> None:
        """Close every env and kill the actors (frees their CPUs/GPUs in the cluster)."""
        if self.closed:
            return
        if self._futures is not None:
            try:
                self._ray.get(self._futures)
            except Exception:
                pass
            self._futures = None
        try:
            self._ray.get([a.close.remote() for a in self.actors], timeout=60)
        except Exception:
            pass  # the actors are killed below whatever happened
        self._kill_actors()
        self.closed = True

    def _kill_actors(self, wait_s: float = 30.0) -> None:
        for a in self.actors:
            try:
                self._ray.kill(a)
            except Exception:
                pass
        # ray.kill only sends the request: until the worker process is gone the actor still
        # runs tasks and holds its CPUs/GPUs. Wait for that, so that resources are free (and
        # nothing runs on the envs) once close() returns.
        deadline = time.monotonic() + wait_s
        for a in self.actors:
            while time.monotonic() < deadline:
                remaining = max(0.1, deadline - time.monotonic())
                try:
                    self._ray.get(a.__ray_ready__.remote(), timeout=remaining)
                except Exception:
                    break  # dead (or unreachable): either way it no longer serves the env
                time.sleep(0.05)

    # ------------------------------------------------------------------ attributes
    def _targets(self, indices: VecEnvIndices) -> list:
        return [self.actors[i] for i in self._get_indices(indices)]

    def get_attr(self, attr_name: str, indices: VecEnvIndices = None) -> list[Any]:
        return self._ray.get([a.get_attr.remote(attr_name) for a in self._targets(indices)])

    def set_attr(self, attr_name: str, value: Any, indices: VecEnvIndices = None) -> None:
        self._ray.get([a.set_attr.remote(attr_name, value) for a in self._targets(indices)])

    def env_method(
        self, method_name: str, *method_args, indices: VecEnvIndices = None, **method_kwargs
    ) -> list[Any]:
        return self._ray.get(
            [
                a.env_method.remote(method_name, method_args, method_kwargs)
                for a in self._targets(indices)
            ]
        )

    def env_is_wrapped(
        self, wrapper_class: type[gym.Wrapper], indices: VecEnvIndices = None
    ) -> list[bool]:
        return self._ray.get([a.is_wrapped.remote(wrapper_class) for a in self._targets(indices)])

    def get_images(self) -> Sequence[np.ndarray | None]:
        if self.render_mode != "rgb_array":
            return [None for _ in self.actors]
        return self._ray.get([a.render.remote() for a in self.actors])

    def __del__(self) -> None:
        try:
            if not getattr(self, "closed", True):
                self.close()
        except Exception:
            pass


__all__ = ["RayVecEnv", "RAY_HINT"]
