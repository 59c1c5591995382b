"""Many DataGen envs at once: Stable-Baselines3 vector envs and Gymnasium's AsyncVectorEnv.

    from datagen_gym.envs.vector import make_vec_env
    venv = make_vec_env(4, env_kwargs={"task": "sentiment", "batch_size": 32})
    model = PPO("MlpPolicy", venv, n_steps=16).learn(1000)

A DataGen step is dominated by the teacher's generation and the target's training, both
CPU/GPU-bound Python, so envs run in separate processes (``SubprocVecEnv``, Gymnasium's
``AsyncVectorEnv``) or Ray actors (:mod:`datagen_gym.envs.ray_vec_env`) to use more cores or
machines.

Everything an env needs is sent to the worker by pickling (cloudpickle): the factory made by
:func:`env_factory` is a :func:`functools.partial` of the module-level :func:`make_env`, which
imports :mod:`datagen_gym` in the worker so ``DataGen-v0`` is registered there whatever the
start method. Objects passed in ``env_kwargs`` (a custom ``target_model``, a ``config``) must be
picklable too; :func:`check_picklable` names the one that is not. The built-in targets are
built inside each worker, so the default env needs nothing pickled but its arguments.
"""

from __future__ import annotations

import functools
import multiprocessing as mp
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from stable_baselines3.common.vec_env import VecEnv

DEFAULT_ENV_ID = "DataGen-v0"
START_METHODS = ("forkserver", "spawn", "fork")
# Imported once by the fork server, so that its workers start without re-importing torch,
# transformers and scikit-learn each (seconds per worker on a small machine).
FORKSERVER_PRELOAD = ("datagen_gym.envs.datagen_env",)


def preload_forkserver(modules: Sequence[str] = FORKSERVER_PRELOAD) -> None:
    """Have multiprocessing's fork server import ``modules`` when it starts.

    The fork server is one per process and starts with the first ``forkserver`` worker; once it
    runs, this has no effect (its workers then import what they need themselves).
    ``__main__`` stays in the list, as in multiprocessing's default.
    """
    if "forkserver" in mp.get_all_start_methods():
        mp.get_context("forkserver").set_forkserver_preload(["__main__", *modules])


def make_env(
    env_id: str = DEFAULT_ENV_ID,
    env_kwargs: Mapping[str, Any] | None = None,
    monitor: bool = True,
    torch_threads: int | None = 1,
) -> gym.Env:
    """Build one env; runs in the worker process (or Ray actor).

    Args:
        env_id: a registered id (``DataGen-v0``, ``DataGen-LM-v0``...).
        env_kwargs: keyword arguments of ``gym.make(env_id, ...)``.
        monitor: wrap in SB3's ``Monitor`` (episode returns in ``info["episode"]``, which SB3
            algorithms log).
        torch_threads: CPU threads of this process for torch and for the BLAS / OpenMP pools
            of numpy, scipy and scikit-learn; ``None`` leaves the defaults. One per worker by
            default: N workers with N threads each oversubscribe the cores, and OpenBLAS's
            spinning threads then slow the scikit-learn target's fit several times over.
    """
    import datagen_gym  # noqa: F401  (registers the env ids in a freshly started process)

    if torch_threads:
        limit_threads(int(torch_threads))
    env = gym.make(env_id, **dict(env_kwargs or {}))
    if monitor:
        from stable_baselines3.common.monitor import Monitor

        env = Monitor(env)
    return env


def limit_threads(n: int) -> None:
    """Cap torch's and the BLAS/OpenMP thread pools of this (worker) process at ``n``."""
    import torch

    torch.set_num_threads(n)
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # comes with scikit-learn; without it only torch is capped
        return
    threadpool_limits(n)  # not as a context manager: the cap lasts for the worker's life


def env_factory(
    env_id: str = DEFAULT_ENV_ID,
    env_kwargs: Mapping[str, Any] | None = None,
    monitor: bool = True,
    torch_threads: int | None = 1,
) -> Callable[[], gym.Env]:
    """A picklable zero-argument env constructor (a ``functools.partial`` of :func:`make_env`)."""
    return functools.partial(make_env, env_id, dict(env_kwargs or {}), monitor, torch_threads)


def check_picklable(env_kwargs: Mapping[str, Any] | None, where: str = "worker processes") -> None:
    """Raise a ``TypeError`` naming the first ``env_kwargs`` value that cloudpickle cannot
    serialise (it has to travel to the worker that builds the env)."""
    import cloudpickle

    for key, value in (env_kwargs or {}).items():
        try:
            cloudpickle.dumps(value)
        except Exception as exc:  # pickling raises TypeError, PicklingError, AttributeError...
            raise TypeError(
                f"env_kwargs[{key!r}] ({type(value).__name__}) cannot be pickled to send it to "
                f"{where}: {type(exc).__name__}: {exc}. Objects passed to envs in other processes "
                "must be picklable: a module-level class or function, no open sockets, locks, "
                "CUDA contexts or API clients. Pass what is needed to build it instead (a path, a "
                "config dict) and build it inside the env, e.g. register your own env factory and "
                "use it as env_id."
            ) from exc


def make_vec_env(
    n_envs: int,
    start_method: str | None = "forkserver",
    vec_cls: str = "subproc",
    env_kwargs: Mapping[str, Any] | None = None,
    env_id: str = DEFAULT_ENV_ID,
    seed: int | None = None,
    monitor: bool = True,
    torch_threads: int | None = 1,
):
    """An SB3 ``VecEnv`` of ``n_envs`` DataGen envs.

    Args:
        n_envs: number of envs (one worker process each for ``"subproc"``).
        start_method: how ``"subproc"`` workers start: ``"forkserver"`` (default; safe with
            threads and torch), ``"spawn"`` (most portable; macOS/Windows default), ``"fork"``
            (fastest start but unsafe once torch has started threads), or ``None`` for
            multiprocessing's default.
        vec_cls: ``"subproc"`` (``SubprocVecEnv``) or ``"dummy"`` (``DummyVecEnv``, all envs
            in this process, stepped one after another).
        env_kwargs: ``gym.make`` keyword arguments for every env; must be picklable for
            ``"subproc"`` (see :func:`check_picklable`).
        env_id: the registered env id.
        seed: if given, env ``i`` is reset with ``seed + i`` on the first ``reset()``.
        monitor: wrap each env in SB3's ``Monitor``.
        torch_threads: torch and BLAS threads per worker process (not applied with
            ``"dummy"``, which runs in this process).
    """
    from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv

    if n_envs < 1:
        raise ValueError(f"n_envs must be >= 1, got {n_envs}")
    if vec_cls not in ("subproc", "dummy"):
        raise ValueError(f"vec_cls must be 'subproc' or 'dummy', got {vec_cls!r}")
    if vec_cls == "dummy":
        fns = [env_factory(env_id, env_kwargs, monitor, None) for _ in range(n_envs)]
        venv = DummyVecEnv(fns)
    else:
        if start_method is not None and start_method not in mp.get_all_start_methods():
            raise ValueError(
                f"start_method {start_method!r} is not available here; choose one "
                f"of {mp.get_all_start_methods()} or None"
            )
        check_picklable(env_kwargs, "SubprocVecEnv worker processes")
        if start_method == "forkserver":
            preload_forkserver()
        fns = [env_factory(env_id, env_kwargs, monitor, torch_threads) for _ in range(n_envs)]
        venv = SubprocVecEnv(fns, start_method=start_method)
    if seed is not None:
        venv.seed(seed)
    return venv


# ---------------------------------------------------------------------------- gymnasium
def make_async_vector_env(
    num_envs: int,
    env_id: str = DEFAULT_ENV_ID,
    context: str | None = "forkserver",
    env_kwargs: Mapping[str, Any] | None = None,
    same_step_autoreset: bool = True,
    monitor: bool = True,
    **vector_kwargs: Any,
) -> gym.vector.VectorEnv:
    """Gymnasium's ``AsyncVectorEnv`` via ``gym.make_vec(env_id, vectorization_mode="async")``.

    ``same_step_autoreset`` picks ``AutoresetMode.SAME_STEP`` (a finished env is reset in the
    step that ends it and the last observation is in ``info["final_obs"]``), the convention of
    SB3, and what :class:`GymnasiumVecEnvAdapter` needs; Gymnasium's own default is
    ``NEXT_STEP``. ``monitor`` wraps each env in SB3's ``Monitor`` (in the worker), so episode
    returns reach SB3's logger. ``vector_kwargs`` go to ``AsyncVectorEnv`` (``shared_memory``,
    ``daemon``...).
    """
    import datagen_gym  # noqa: F401

    check_picklable(env_kwargs, "AsyncVectorEnv worker processes")
    vk = dict(vector_kwargs)
    if context is not None:
        vk.setdefault("context", context)
    if vk.get("context") == "forkserver":
        preload_forkserver()
    if same_step_autoreset:
        vk.setdefault("autoreset_mode", gym.vector.AutoresetMode.SAME_STEP)
    wrappers = None
    if monitor:
        from stable_baselines3.common.monitor import Monitor

        wrappers = [Monitor]
    return gym.make_vec(
        env_id,
        num_envs=num_envs,
        vectorization_mode="async",
        vector_kwargs=vk,
        wrappers=wrappers,
        **dict(env_kwargs or {}),
    )


def _info_at(infos: Mapping[str, Any], i: int) -> dict[str, Any]:
    """Env ``i``'s info out of a Gymnasium vector info dict (values batched, ``_key`` masks)."""
    out: dict[str, Any] = {}
    for key, value in infos.items():
        if key.startswith("_"):
            continue
        mask = infos.get("_" + key)
        if mask is not None and not bool(mask[i]):
            continue
        if isinstance(value, Mapping):
            out[key] = _info_at(value, i)
        elif isinstance(value, np.ndarray) and value.ndim >= 1:
            v = value[i]
            out[key] = v.item() if isinstance(v, np.generic) else v
        else:
            out[key] = value
    return out


class GymnasiumVecEnvAdapter(VecEnv):
    """Presents a Gymnasium ``VectorEnv`` (``AsyncVectorEnv``/``SyncVectorEnv`` with
    ``SAME_STEP`` autoreset) as an SB3 ``VecEnv``, so SB3 algorithms can train on it.

    Infos become one dict per env; at an episode end the step's info carries
    ``terminal_observation`` and ``TimeLimit.truncated`` as SB3 expects.
    """

    def __init__(self, venv: gym.vector.VectorEnv) -> None:
        mode = venv.metadata.get("autoreset_mode")
        if mode is not None and mode != gym.vector.AutoresetMode.SAME_STEP:
            raise ValueError(
                f"the vector env uses autoreset_mode={mode}; build it with "
                "autoreset_mode=AutoresetMode.SAME_STEP (make_async_vector_env "
                "does) so that finished envs reset as SB3 expects"
            )
        self.venv = venv
        self._actions: np.ndarray | None = None
        super().__init__(venv.num_envs, venv.single_observation_space, venv.single_action_space)

    def reset(self):
        seeds = self._seeds if any(s is not None for s in self._seeds) else None
        # Gymnasium's vector reset takes one options dict for all envs.
        opts = self._options[0] if any(self._options) else None
        obs, infos = self.venv.reset(seed=seeds, options=opts)
        self.reset_infos = [_info_at(infos, i) for i in range(self.num_envs)]
        self._reset_seeds()
        self._reset_options()
        return obs

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = actions

    def step_wait(self):
        obs, rewards, terminated, truncated, infos = self.venv.step(self._actions)
        dones = np.logical_or(terminated, truncated)
        out = []
        for i in range(self.num_envs):
            if dones[i]:
                # SAME_STEP: obs[i] is already the reset observation; the step's own info
                # and last observation are under final_info / final_obs.
                info = _info_at(infos["final_info"], i) if "final_info" in infos else {}
                info["terminal_observation"] = infos["final_obs"][i]
                info["TimeLimit.truncated"] = bool(truncated[i] and not terminated[i])
                self.reset_infos[i] = {
                    k: v
                    for k, v in _info_at(infos, i).items()
                    if k not in ("final_info", "final_obs")
                }
            else:
                info = _info_at(infos, i)
                info["TimeLimit.truncated"] = False
            out.append(info)
        return obs, np.asarray(rewards, dtype=np.float32), dones, out

    def close(self) -> None:
        self.venv.close()

    def get_attr(self, attr_name: str, indices=None) -> list[Any]:
        values = self.venv.get_attr(attr_name)
        return [values[i] for i in self._get_indices(indices)]

    def set_attr(self, attr_name: str, value: Any, indices=None) -> None:
        if list(self._get_indices(indices)) != list(range(self.num_envs)):
            raise NotImplementedError("Gymnasium vector envs set an attribute in all envs")
        self.venv.set_attr(attr_name, value)

    def env_method(self, method_name: str, *method_args, indices=None, **method_kwargs):
        values = self.venv.call(method_name, *method_args, **method_kwargs)
        return [values[i] for i in self._get_indices(indices)]

    def env_is_wrapped(self, wrapper_class, indices=None) -> list[bool]:
        # Gymnasium's vector envs do not expose their workers' wrapper stacks.
        return [False for _ in self._get_indices(indices)]

    def get_images(self) -> Sequence[np.ndarray | None]:
        return [None for _ in range(self.num_envs)]


__all__ = [
    "make_env",
    "env_factory",
    "make_vec_env",
    "check_picklable",
    "preload_forkserver",
    "make_async_vector_env",
    "GymnasiumVecEnvAdapter",
    "DEFAULT_ENV_ID",
]
