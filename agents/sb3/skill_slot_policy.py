"""An actor-critic policy that scores every skill slot with one shared network.

An MLP over DataGen's observation sees the per-skill entries (each skill's validation metric,
its share of the episode's records, whether it is the current focus) as unrelated inputs, so a
rule such as "focus on the weakest skill" must be learnt once per slot, and a task whose skills
fill the slots in a pattern never seen in training (a held-out skill set) meets untrained
weights. :class:`SkillSlotPolicy` is permutation-equivariant over the slots instead (Deep Sets,
Zaheer et al., 2017): one small network reads each slot's entries together with an encoding of
the rest of the observation and gives that skill's focus logit; the "any" focus and the other
action dimensions (template, temperature, ...) are read from the rest of the observation. The
critic is a plain MLP over the whole observation.

The layout comes from the env (:attr:`DataGenEnv.skill_observation`); the focus must be the
action's last dimension, with ``1 + num_skills`` values (DataGen's order: any, then the skills).
Use it by name: ``SB3Agent("ppo" | "maskable_ppo" | "a2c", env, policy="SkillSlotPolicy")``.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from sb3_contrib.common.maskable.policies import MaskableActorCriticPolicy
from stable_baselines3.common.policies import ActorCriticPolicy
from torch import nn

SKILL_SLOT_POLICY = "SkillSlotPolicy"
SLOT_FEATURES = 6  # metric, records, is focus, present, metric - mean, metric - min (present)


def _mlp(n_in: int, width: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(n_in, width), nn.Tanh(), nn.Linear(width, width), nn.Tanh())


def check_layout(layout: dict[str, int], obs_dim: int, action_space: spaces.Space) -> None:
    """One-line errors for a layout that does not fit the spaces."""
    missing = {"num_skills", "focus", "metric", "records"} - set(layout)
    if missing:
        raise ValueError(f"skill_observation lacks {sorted(missing)}")
    k = int(layout["num_skills"])
    if k < 1:
        raise ValueError(f"skill_observation['num_skills'] must be >= 1, got {k}")
    for key, width in (("metric", k), ("records", k + 1), ("focus", k + 1)):
        start = int(layout[key])
        if key == "focus" and start < 0:
            continue
        if not 0 <= start <= obs_dim - width:
            raise ValueError(
                f"skill_observation[{key!r}]={start} does not fit an observation of {obs_dim}"
            )
    if not isinstance(action_space, spaces.MultiDiscrete) or int(action_space.nvec[-1]) != k + 1:
        raise ValueError(
            f"SkillSlotPolicy needs a MultiDiscrete action whose last dimension is the focus "
            f"(1 + {k} values), got {action_space}"
        )


class SkillSlotExtractor(nn.Module):
    """Latents: ``[global (width), slot 1 (slot_width), ..., slot K]`` for the actor, a plain
    MLP encoding for the critic."""

    def __init__(
        self, obs_dim: int, layout: dict[str, int], width: int = 64, slot_width: int = 32
    ) -> None:
        super().__init__()
        k = int(layout["num_skills"])
        self.k, self.width, self.slot_width = k, width, slot_width
        metric, records, focus = (int(layout[key]) for key in ("metric", "records", "focus"))
        self.register_buffer("metric_idx", torch.arange(metric, metric + k))
        self.register_buffer("records_idx", torch.arange(records, records + k))
        per_slot = set(range(metric, metric + k)) | set(range(records, records + k))
        if focus >= 0:  # the "any" entry stays global; skill i is at focus + 1 + i
            self.register_buffer("focus_idx", torch.arange(focus + 1, focus + 1 + k))
            per_slot |= set(range(focus + 1, focus + 1 + k))
        else:
            self.focus_idx = None
        self.register_buffer(
            "global_idx", torch.tensor([i for i in range(obs_dim) if i not in per_slot])
        )
        self.global_net = _mlp(len(self.global_idx), width)
        self.slot_net = _mlp(SLOT_FEATURES + width, slot_width)  # shared by every slot
        self.critic_net = _mlp(obs_dim, width)
        self.latent_dim_pi = width + k * slot_width
        self.latent_dim_vf = width

    def slot_features(self, obs: torch.Tensor) -> torch.Tensor:
        """``(batch, K, SLOT_FEATURES)``; absent skills (metric -1) read present 0 and 0 gaps."""
        metric = obs[:, self.metric_idx]
        present = (metric >= 0).float()
        n = present.sum(dim=1, keepdim=True).clamp(min=1.0)
        mean = (metric * present).sum(dim=1, keepdim=True) / n
        lowest = torch.where(present > 0, metric, torch.full_like(metric, 2.0)).min(
            dim=1, keepdim=True
        )[0]
        focus = obs[:, self.focus_idx] if self.focus_idx is not None else torch.zeros_like(metric)
        feats = [
            metric,
            obs[:, self.records_idx],
            focus,
            present,
            (metric - mean) * present,
            (metric - lowest) * present,
        ]
        return torch.stack(feats, dim=-1)

    def forward_actor(self, obs: torch.Tensor) -> torch.Tensor:
        g = self.global_net(obs[:, self.global_idx])
        slots = self.slot_features(obs)
        context = g.unsqueeze(1).expand(-1, self.k, -1)
        s = self.slot_net(torch.cat([slots, context], dim=-1))
        return torch.cat([g, s.flatten(start_dim=1)], dim=1)

    def forward_critic(self, obs: torch.Tensor) -> torch.Tensor:
        return self.critic_net(obs)

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.forward_actor(obs), self.forward_critic(obs)


class SkillSlotHead(nn.Module):
    """The MultiDiscrete logits in dimension order: each non-focus dimension from the global
    latent, the focus as ``[any (global), skill 1 .. skill K (one shared scorer per slot)]``."""

    def __init__(self, nvec: np.ndarray, k: int, width: int, slot_width: int) -> None:
        super().__init__()
        self.k, self.width, self.slot_width = k, width, slot_width
        self.dim_heads = nn.ModuleList(nn.Linear(width, int(n)) for n in nvec[:-1])
        self.any_head = nn.Linear(width, 1)
        self.slot_head = nn.Linear(slot_width, 1)

    def forward(self, latent: torch.Tensor) -> torch.Tensor:
        g = latent[:, : self.width]
        slots = latent[:, self.width :].reshape(-1, self.k, self.slot_width)
        focus = torch.cat([self.any_head(g), self.slot_head(slots).squeeze(-1)], dim=1)
        return torch.cat([head(g) for head in self.dim_heads] + [focus], dim=1)


class _SkillSlotMixin:
    """Replaces the MLP extractor and the action net of an SB3 actor-critic policy."""

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Space,
        *args: Any,
        skill_observation: dict[str, int],
        width: int = 64,
        slot_width: int = 32,
        **kwargs: Any,
    ) -> None:
        check_layout(skill_observation, int(np.prod(observation_space.shape)), action_space)
        self.skill_observation = {k: int(v) for k, v in skill_observation.items()}
        self.width, self.slot_width = int(width), int(slot_width)
        super().__init__(observation_space, action_space, *args, **kwargs)

    def _build_mlp_extractor(self) -> None:
        self.mlp_extractor = SkillSlotExtractor(
            self.features_dim, self.skill_observation, self.width, self.slot_width
        )

    def _build(self, lr_schedule: Any) -> None:
        super()._build(lr_schedule)
        self.action_net = SkillSlotHead(
            self.action_space.nvec,
            self.skill_observation["num_skills"],
            self.width,
            self.slot_width,
        )
        if self.ortho_init:  # SB3's small initial weights for the output layer
            self.action_net.apply(partial(self.init_weights, gain=0.01))
        self.optimizer = self.optimizer_class(
            self.parameters(), lr=lr_schedule(1), **self.optimizer_kwargs
        )

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()
        data.update(
            skill_observation=self.skill_observation, width=self.width, slot_width=self.slot_width
        )
        return data


class SkillSlotActorCriticPolicy(_SkillSlotMixin, ActorCriticPolicy):
    """:class:`SkillSlotExtractor` + :class:`SkillSlotHead` for PPO and A2C."""


class MaskableSkillSlotPolicy(_SkillSlotMixin, MaskableActorCriticPolicy):
    """The same for sb3-contrib's MaskablePPO."""


#: The policy class of :data:`SKILL_SLOT_POLICY` for each algorithm that takes it.
POLICY_CLASSES: dict[str, type] = {
    "ppo": SkillSlotActorCriticPolicy,
    "a2c": SkillSlotActorCriticPolicy,
    "maskable_ppo": MaskableSkillSlotPolicy,
}
