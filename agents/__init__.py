"""Agents for DataGen-v0 (and any gymnasium env): random search, bandits, REINFORCE, SB3.

All share the SB3-shaped :class:`~agents.common.base.BaseAgent` API and write the same
``datagen/*`` TensorBoard tags, so their curves overlay::

    from agents import make_agent
    agent = make_agent("reinforce", env, seed=0, tensorboard_log="runs")
    agent.learn(200)
    action, _ = agent.predict(obs, deterministic=True)
"""

from agents.bandit import EXP3Agent, ThompsonAgent, UCBAgent
from agents.common.base import BaseAgent
from agents.factory import agent_accepts, list_agents, load_agent, make_agent
from agents.random_search.random_search import RandomSearchAgent
from agents.reinforce.reinforce import ReinforceAgent
from agents.sb3.sb3_agent import SB3Agent

__all__ = [
    "BaseAgent",
    "EXP3Agent",
    "RandomSearchAgent",
    "ReinforceAgent",
    "SB3Agent",
    "ThompsonAgent",
    "UCBAgent",
    "agent_accepts",
    "list_agents",
    "load_agent",
    "make_agent",
]
