"""Stable-Baselines3 / sb3-contrib algorithms behind the common agent API."""

from agents.sb3.sb3_agent import ALGORITHMS, SB3Agent

__all__ = ["ALGORITHMS", "SB3Agent"]
