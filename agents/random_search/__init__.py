"""Accept/revert random search over the teacher's sampling settings."""

from agents.random_search.random_search import RandomSearchAgent

__all__ = ["RandomSearchAgent"]
