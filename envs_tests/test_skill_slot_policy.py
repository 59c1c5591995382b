"""SkillSlotPolicy: one shared network scores every skill slot of the focus action."""

import numpy as np
import pytest
import torch
from gymnasium import spaces

from agents import make_agent
from agents.sb3 import SB3Agent
from agents.sb3.skill_slot_policy import SkillSlotActorCriticPolicy
from datagen_gym.envs import DataGenEnv
from datagen_gym.world.tasks import CLASSIFICATION_TASKS


def _env(task="topic+spam+parity", **kw):
    kw = {"batch_size": 4, "num_iterations": 3, **kw}
    return DataGenEnv(task=task, skills=list(CLASSIFICATION_TASKS), focus=True, **kw)


def _policy(env):
    return SkillSlotActorCriticPolicy(
        env.observation_space,
        env.action_space,
        lambda _: 1e-3,
        skill_observation=env.skill_observation,
    )


def test_env_declares_where_the_skill_entries_are():
    env = _env()
    layout = env.skill_observation
    obs, _ = env.reset(seed=0)
    k = layout["num_skills"]
    assert k == len(CLASSIFICATION_TASKS)
    metric = obs[layout["metric"] : layout["metric"] + k]
    # the task's skills have a metric, the others read -1
    present = [s in ("topic", "spam", "parity") for s in env.skills]
    assert list(metric >= 0) == present
    assert obs[layout["focus"]] == 1.0  # start focus: any
    assert DataGenEnv(task="sentiment", batch_size=4).skill_observation is None


def test_focus_logits_follow_a_permutation_of_the_skill_slots():
    """Swap two skills' entries in the observation: their focus logits swap, nothing else moves
    (the property a held-out skill set relies on)."""
    env = _env()
    torch.manual_seed(0)
    policy = _policy(env)
    layout, k = env.skill_observation, env.skill_observation["num_skills"]
    obs = torch.as_tensor(env.reset(seed=0)[0]).unsqueeze(0)
    obs[0, layout["metric"] : layout["metric"] + k] = torch.tensor([-1.0, 0.4, 0.7, 0.55, -1.0])
    obs[0, layout["records"] : layout["records"] + k] = torch.tensor([0, 0.1, 0.3, 0.2, 0])
    perm = [0, 3, 2, 1, 4]  # swap slots 1 and 3
    swapped = obs.clone()
    for block in (layout["metric"], layout["records"], layout["focus"] + 1):
        swapped[0, block : block + k] = obs[0, block : block + k][perm]
    with torch.no_grad():
        a = policy.action_net(policy.mlp_extractor.forward_actor(obs))[0]
        b = policy.action_net(policy.mlp_extractor.forward_actor(swapped))[0]
    n_focus = 1 + k
    assert torch.allclose(a[:-n_focus], b[:-n_focus], atol=1e-6)  # template etc. unchanged
    fa, fb = a[-n_focus:], b[-n_focus:]
    assert torch.allclose(fa[0], fb[0], atol=1e-6)  # "any"
    assert torch.allclose(fa[1:][perm], fb[1:], atol=1e-6)
    assert not torch.allclose(fa[2], fa[4])  # slots do see their own entries


@pytest.mark.parametrize("algo", ["ppo", "maskable_ppo"])
def test_skill_slot_policy_learns_saves_and_loads(algo, tmp_path):
    env = _env()
    agent = make_agent(algo, env, seed=0, policy="SkillSlotPolicy", n_steps=6, batch_size=6)
    assert isinstance(agent.model.policy.mlp_extractor.slot_net, torch.nn.Module)
    agent.learn(12)
    agent.save(tmp_path / "ckpt")
    loaded = SB3Agent.load(tmp_path / "ckpt", env=_env())
    obs, _ = env.reset(seed=3)
    kw = {"action_masks": env.action_masks()} if algo == "maskable_ppo" else {}
    for _ in range(3):
        a, _ = agent.predict(obs, deterministic=True, **kw)
        b, _ = loaded.predict(obs, deterministic=True, **kw)
        assert np.array_equal(a, b)
        obs, *_ = env.step(a)
        kw = {"action_masks": env.action_masks()} if algo == "maskable_ppo" else {}


def test_skill_slot_policy_errors_name_what_is_missing():
    with pytest.raises(ValueError, match="per-skill observation"):
        make_agent("ppo", DataGenEnv(task="sentiment", batch_size=4), policy="SkillSlotPolicy")
    with pytest.raises(ValueError, match="works with"):
        make_agent("trpo", _env(), policy="SkillSlotPolicy")
    env = _env()
    with pytest.raises(ValueError, match="last dimension is the focus"):
        SkillSlotActorCriticPolicy(
            env.observation_space,
            spaces.MultiDiscrete([3, 10]),
            lambda _: 1e-3,
            skill_observation=env.skill_observation,
        )
