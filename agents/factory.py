"""Build any agent by name: ``make_agent("reinforce", env)``, ``make_agent("ppo", env)``, ..."""

from __future__ import annotations

import inspect
from typing import Any

import gymnasium as gym

from agents.bandit import EXP3Agent, ThompsonAgent, UCBAgent
from agents.common.base import META_FILE, BaseAgent, checkpoint_dir
from agents.common.checkpoint import PathLike, read_json_object
from agents.common.parsing import normalize_agent_name
from agents.random_search.random_search import RandomSearchAgent
from agents.reinforce.reinforce import ReinforceAgent
from agents.sb3.sb3_agent import SB3_NAMES, SB3Agent, algo_class

#: The hand-rolled agents: adding one means adding its class here (its ``agent_name`` and
#: ``aliases`` are the names :func:`make_agent` takes; SB3's come from :data:`SB3_NAMES`).
HAND_ROLLED: tuple[type[BaseAgent], ...] = (
    RandomSearchAgent,
    ReinforceAgent,
    UCBAgent,
    ThompsonAgent,
    EXP3Agent,
)
_HAND_ROLLED: dict[str, type[BaseAgent]] = {
    name: cls for cls in HAND_ROLLED for name in (cls.agent_name, *cls.aliases)
}


def list_agents() -> list[str]:
    """Every name :func:`make_agent` accepts (aliases included), sorted."""
    return sorted(set(_HAND_ROLLED) | set(SB3_NAMES))


def agent_class(name: str) -> type[BaseAgent]:
    """The class :func:`make_agent` builds for ``name`` (:class:`SB3Agent` for SB3's)."""
    key = normalize_agent_name(name)
    if key in _HAND_ROLLED:
        return _HAND_ROLLED[key]
    if key in SB3_NAMES:
        return SB3Agent
    raise ValueError(f"unknown agent {name!r}; valid names: {', '.join(list_agents())}")


def agent_accepts(name: str, parameter: str) -> bool:
    """Whether the agent called ``name`` takes the constructor argument ``parameter`` (for SB3
    names: the algorithm's own constructor, e.g. ``learning_rate``)."""
    key = normalize_agent_name(name)
    if key in _HAND_ROLLED:
        cls: type = _HAND_ROLLED[key]
    elif key in SB3_NAMES:
        cls = algo_class(key)
    else:
        raise ValueError(f"unknown agent {name!r}; valid names: {', '.join(list_agents())}")
    return parameter in inspect.signature(cls.__init__).parameters


def make_agent(name: str, env: gym.Env, **kwargs: Any) -> BaseAgent:
    """Create the agent called ``name`` (case-insensitive) for ``env``.

    ``kwargs`` go to the agent's constructor (for SB3 names: ``seed``, ``tensorboard_log``,
    ``policy`` and any algorithm hyper-parameter).
    """
    key = normalize_agent_name(name)
    if key in _HAND_ROLLED:
        return _HAND_ROLLED[key](env, **kwargs)
    if key in SB3_NAMES:
        return SB3Agent(key, env, **kwargs)
    raise ValueError(f"unknown agent {name!r}; valid names: {', '.join(list_agents())}")


def load_agent(path: PathLike, env: gym.Env | None = None, **kwargs: Any) -> BaseAgent:
    """Load any agent saved with ``agent.save(path)``, dispatching on ``agent.json`` (an SB3-style
    ``.zip`` path, as ``CheckpointCallback`` reports it, names the same checkpoint)."""
    meta_path = checkpoint_dir(path, existing=True) / META_FILE
    kind = read_json_object(meta_path, {"agent": str})["agent"]
    classes = {cls.agent_name: cls for cls in (*HAND_ROLLED, SB3Agent)}
    if kind not in classes:
        raise ValueError(f"{path} does not hold a known agent checkpoint (agent={kind!r})")
    return classes[kind].load(path, env=env, **kwargs)
