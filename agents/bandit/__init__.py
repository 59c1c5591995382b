"""Bandit baselines over discrete actions: UCB1, Gaussian Thompson sampling and EXP3.

Each arm is one fixed action (see :mod:`agents.bandit.base` for how arms are built from a
``MultiDiscrete`` space); the algorithms differ only in their selection rule.
"""

from agents.bandit.base import BanditAgent
from agents.bandit.exp3 import EXP3Agent
from agents.bandit.thompson import ThompsonAgent
from agents.bandit.ucb import UCBAgent

__all__ = ["BanditAgent", "EXP3Agent", "ThompsonAgent", "UCBAgent"]
