"""Hand-rolled REINFORCE with a baseline."""

from agents.reinforce.reinforce import ReinforceAgent, ReinforcePolicy

__all__ = ["ReinforceAgent", "ReinforcePolicy"]
