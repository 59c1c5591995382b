"""Pieces shared by every agent: the base API, TensorBoard logging, wrappers, checkpoints."""

from agents.common.base import BaseAgent
from agents.common.tensorboard import InfoTBWriter, InfoTensorboardCallback
from agents.common.wrappers import MultiDiscreteToDiscrete, StepInfoRecorder

__all__ = [
    "BaseAgent",
    "InfoTBWriter",
    "InfoTensorboardCallback",
    "MultiDiscreteToDiscrete",
    "StepInfoRecorder",
]
