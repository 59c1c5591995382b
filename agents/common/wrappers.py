"""Gymnasium wrappers the agents need to fit algorithms to DataGen's action space."""

from __future__ import annotations

from collections import deque
from typing import Any, SupportsFloat

import gymnasium as gym
import numpy as np
from gymnasium import spaces


class MultiDiscreteToDiscrete(gym.ActionWrapper):
    """Flatten ``MultiDiscrete(nvec)`` into ``Discrete(prod(nvec))`` (row-major, like ``np.ravel``).

    DQN and QR-DQN only take a ``Discrete`` space. Enumerating the joint actions is exact and
    cheap for DataGen's ``MultiDiscrete([3, 3, 10])`` (90 actions); it is not meant for huge
    products, so it refuses anything above ``max_actions``.
    """

    def __init__(self, env: gym.Env, max_actions: int = 100_000) -> None:
        super().__init__(env)
        space = env.action_space
        if not isinstance(space, spaces.MultiDiscrete):
            raise TypeError(
                f"MultiDiscreteToDiscrete needs a MultiDiscrete action space, got {space}"
            )
        self.nvec = np.asarray(space.nvec, dtype=np.int64)
        # gymnasium >= 0.29 lets MultiDiscrete start at an offset; keep it so actions round-trip.
        self.start = np.asarray(getattr(space, "start", np.zeros_like(self.nvec)), dtype=np.int64)
        n = int(np.prod(self.nvec))
        if n > max_actions:
            raise ValueError(f"flattening {space} gives {n} actions (> max_actions={max_actions})")
        self.action_space = spaces.Discrete(n)

    def action(self, action: Any) -> np.ndarray:
        """Discrete index (or an array of them) -> MultiDiscrete action(s)."""
        return unflatten_discrete(action, self.nvec, self.start).astype(self.env.action_space.dtype)

    def reverse_action(self, action: Any) -> np.ndarray | int:
        """MultiDiscrete action(s) -> Discrete index (a plain int for a single action)."""
        return flatten_multidiscrete(action, self.nvec, self.start)


def unflatten_discrete(index: Any, nvec: Any, start: Any = 0) -> np.ndarray:
    """Discrete index (any shape) -> MultiDiscrete actions (shape + nvec.shape), row-major.

    A free function so a loaded agent can map its actions back without the wrapped env.
    """
    nvec = np.asarray(nvec, dtype=np.int64)
    idx = np.asarray(index, dtype=np.int64)
    parts = np.unravel_index(idx.ravel(), nvec.ravel())
    return np.stack(parts, axis=-1).reshape(idx.shape + nvec.shape) + np.asarray(
        start, dtype=np.int64
    )


def flatten_multidiscrete(action: Any, nvec: Any, start: Any = 0) -> np.ndarray | int:
    """Inverse of :func:`unflatten_discrete`; a plain int for a single action."""
    nvec = np.asarray(nvec, dtype=np.int64)
    md = np.asarray(action, dtype=np.int64) - np.asarray(start, dtype=np.int64)
    flat = md.reshape(-1, nvec.size)
    idx = np.ravel_multi_index(tuple(flat.T), nvec.ravel())
    if md.shape == nvec.shape:
        return int(idx[0])
    return idx.reshape(md.shape[: md.ndim - nvec.ndim])


class StepInfoRecorder(gym.Wrapper):
    """Remember the ``(reward, info)`` of recent steps so a callback can read them later.

    Some SB3-contrib algorithms (ARS evaluates candidates through ``evaluate_policy``) call
    ``callback.on_step()`` without exposing the step's ``infos`` in ``callback.locals``; the
    DataGen TensorBoard callback drains this buffer instead. Bounded so it cannot grow without
    limit when nobody drains it.
    """

    def __init__(self, env: gym.Env, maxlen: int = 1024) -> None:
        super().__init__(env)
        self.buffer: deque[tuple[float, dict[str, Any]]] = deque(maxlen=maxlen)

    def step(self, action: Any) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        """Step the wrapped env and record its reward and info."""
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.buffer.append((float(reward), info))
        return obs, reward, terminated, truncated, info

    def drain(self) -> list[tuple[float, dict[str, Any]]]:
        """Return and forget everything recorded since the last drain."""
        items = list(self.buffer)
        self.buffer.clear()
        return items
