"""REINFORCE (Williams, 1992) with a baseline, hand-rolled in torch, CleanRL-style.

Read top to bottom: observation preprocessing -> policy network -> ``learn`` (collect whole
episodes, discounted returns, baseline, normalised advantages, one gradient step) -> save/load.

* Action spaces: ``MultiDiscrete`` (one Categorical head per dimension, log-probs summed),
  ``Discrete`` (one Categorical head) and ``Box`` (diagonal Gaussian over a pre-activation
  ``u``, squashed by ``tanh`` and rescaled to the bounds; unbounded dimensions pass ``u``
  through). Squashing rather than clipping: once a clipped Gaussian's mean drifts past a bound
  every sample is clipped to the same action, the rewards stop differing and the gradient
  vanishes (we saw the mean stick at the bound on a bandit). The score-function gradient is
  taken on ``u``'s density, which is exact because ``a = f(u)`` does not depend on the
  parameters; no tanh Jacobian is needed.
* Baseline: by default a **learned value network** (separate from the policy trunk, so the value
  loss does not pull on the policy's features) regressed on the Monte-Carlo returns;
  ``baseline="mean"`` uses an exponential running mean of the returns instead, ``"none"`` none.
* Advantage normalisation (on by default) always *scales* the advantages by their batch std, but
  only *centres* them (subtracts their batch mean) for ``baseline="value"``, as PPO does.
  Centring is itself a baseline, the batch mean of the returns: applied to ``"mean"`` and
  ``"none"`` it would cancel any constant baseline and make the two identical, so there it is
  left out and the baseline is the one the name says.
* Log-probabilities are computed **in the autograd graph** at update time, recomputed from the
  stored observations/actions in one batched forward pass (equivalent: the parameters do not
  change between acting and updating); computed while acting, under ``no_grad``, they would
  carry no gradient and the policy would never learn.
* Observations are standardised with running statistics by default (see
  :class:`RunningMeanStd` for why not the Box bounds); the statistics are saved with the agent.
* Episodes that are truncated (DataGen's always are, after ``num_iterations`` steps) are treated
  as finished: plain Monte-Carlo returns, no bootstrapping.
"""

from __future__ import annotations

from typing import Any, Literal

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces
from torch import nn
from torch.distributions import Categorical, Independent, Normal

from agents.common.base import META_FILE, BaseAgent, checkpoint_dir
from agents.common.checkpoint import (
    PathLike,
    atomic_save_safetensors,
    atomic_write_json,
    flatten_state,
    load_safetensors,
    space_from_dict,
    space_to_dict,
)

TENSORS_FILE = "policy.safetensors"
FORMAT_VERSION = 1
# Below this std, relative to the largest advantage, a batch's spread is float32 rounding noise
# (all episodes returned the same) and scale-only normalisation leaves the advantages as they are.
MIN_RELATIVE_ADV_STD = 1e-6


# ----------------------------------------------------------------------------- observations
def obs_dim(space: spaces.Space) -> int:
    """Length of the flat float vector :func:`flatten_obs` produces."""
    return int(spaces.flatdim(space))


def flatten_obs(obs: Any, space: spaces.Space, batch: bool) -> np.ndarray:
    """Observation(s) -> float64 array ``(B, obs_dim)``; Discrete parts become one-hot."""
    if isinstance(space, spaces.Box):
        return np.asarray(obs, dtype=np.float64).reshape(-1, int(np.prod(space.shape)))
    items = list(obs) if batch else [obs]
    return np.stack([spaces.flatten(space, o) for o in items]).astype(np.float64)


def scale_to_bounds(x: np.ndarray, space: spaces.Space) -> np.ndarray:
    """Rescale the finite dimensions of a Box observation to [-1, 1]."""
    if not isinstance(space, spaces.Box):
        return x
    low = space.low.reshape(-1).astype(np.float64)
    high = space.high.reshape(-1).astype(np.float64)
    finite = np.isfinite(low) & np.isfinite(high) & (high > low)
    x = x.copy()
    x[:, finite] = 2.0 * (x[:, finite] - low[finite]) / (high[finite] - low[finite]) - 1.0
    return x


class RunningMeanStd:
    """Running mean/variance of the observations (parallel Welford update, as in SB3).

    Why running statistics rather than the Box bounds: DataGen's bounds are a loose clip
    (+-10) around features of very different scales (a temperature around 1, metric changes
    around 0.01); dividing by the bounds would squash the informative ones to nothing.
    """

    def __init__(self, dim: int, epsilon: float = 1e-4) -> None:
        self.mean = np.zeros(dim, dtype=np.float64)
        self.var = np.ones(dim, dtype=np.float64)
        self.count = float(epsilon)  # a tiny prior count avoids dividing by zero on first update

    def update(self, x: np.ndarray) -> None:
        """Fold a batch ``(B, dim)`` into the statistics."""
        batch_mean, batch_var, n = x.mean(axis=0), x.var(axis=0), x.shape[0]
        delta, total = batch_mean - self.mean, self.count + n
        self.mean = self.mean + delta * n / total
        m2 = self.var * self.count + batch_var * n + delta**2 * self.count * n / total
        self.var, self.count = m2 / total, total

    def normalize(self, x: np.ndarray, clip: float = 10.0) -> np.ndarray:
        """Standardise and clip (a far outlier must not saturate every tanh unit)."""
        return np.clip((x - self.mean) / np.sqrt(self.var + 1e-8), -clip, clip)


# ----------------------------------------------------------------------------- policy
def mlp(in_dim: int, hidden_sizes: tuple[int, ...], out_dim: int, out_gain: float) -> nn.Sequential:
    """Tanh MLP with orthogonal init (CleanRL's choice; a small output gain starts the policy
    close to uniform, so early episodes explore)."""
    layers: list[nn.Module] = []
    last = in_dim
    for h in hidden_sizes:
        lin = nn.Linear(last, h)
        nn.init.orthogonal_(lin.weight, gain=np.sqrt(2))
        nn.init.zeros_(lin.bias)
        layers += [lin, nn.Tanh()]
        last = h
    out = nn.Linear(last, out_dim)
    nn.init.orthogonal_(out.weight, gain=out_gain)
    nn.init.zeros_(out.bias)
    layers.append(out)
    return nn.Sequential(*layers)


class ReinforcePolicy(nn.Module):
    """Policy network with one head per action dimension, plus an optional value network."""

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Space,
        hidden_sizes: tuple[int, ...] = (64, 64),
        log_std_init: float = 0.0,
        use_value: bool = True,
    ) -> None:
        super().__init__()
        self.action_space = action_space
        in_dim = obs_dim(observation_space)
        if isinstance(action_space, spaces.Discrete):
            self.kind = "discrete"
            self.split: list[int] = [int(action_space.n)]
        elif isinstance(action_space, spaces.MultiDiscrete):
            if action_space.nvec.ndim != 1:
                raise ValueError(f"only 1-D MultiDiscrete spaces are supported, got {action_space}")
            self.kind = "multi_discrete"
            self.split = [int(n) for n in action_space.nvec]
        elif isinstance(action_space, spaces.Box):
            self.kind = "box"
            self.split = [int(np.prod(action_space.shape))]
        else:
            raise TypeError(
                f"REINFORCE supports Discrete, MultiDiscrete and Box actions, got {action_space}"
            )
        self.actor = mlp(in_dim, hidden_sizes, sum(self.split), out_gain=0.01)
        if self.kind == "box":
            # State-independent log-std (CleanRL/SB3 default): one std per action dimension.
            self.log_std = nn.Parameter(torch.full((self.split[0],), float(log_std_init)))
        self.critic = mlp(in_dim, hidden_sizes, 1, out_gain=1.0) if use_value else None

    def distributions(self, obs: torch.Tensor) -> list[torch.distributions.Distribution]:
        """One distribution per head, each with batch shape ``(B,)``."""
        out = self.actor(obs)
        if self.kind == "box":
            return [Independent(Normal(out, self.log_std.exp().expand_as(out)), 1)]
        return [Categorical(logits=logits) for logits in torch.split(out, self.split, dim=-1)]

    def evaluate_actions(
        self, obs: torch.Tensor, actions: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Joint log-prob and entropy of ``actions`` (B, n_heads or act_dim), in the graph."""
        dists = self.distributions(obs)
        if self.kind == "box":
            return dists[0].log_prob(actions), dists[0].entropy()
        log_prob = torch.stack(
            [d.log_prob(actions[:, i]) for i, d in enumerate(dists)], dim=-1
        ).sum(-1)
        entropy = torch.stack([d.entropy() for d in dists], dim=-1).sum(-1)
        return log_prob, entropy

    def act(
        self, obs: torch.Tensor, deterministic: bool, generator: torch.Generator
    ) -> torch.Tensor:
        """Sample (or take the mode of) the policy; raw actions (B, n_heads or act_dim).

        Sampling draws from the agent's own ``generator`` rather than torch's global RNG, so a
        saved agent reproduces its stochastic actions after loading and other code drawing
        random numbers cannot perturb it.
        """
        dists = self.distributions(obs)
        if self.kind == "box":
            normal = dists[0].base_dist
            if deterministic:
                return normal.loc
            noise = torch.randn(normal.loc.shape, generator=generator, dtype=normal.loc.dtype)
            return normal.loc + normal.scale * noise
        if deterministic:
            heads = [d.probs.argmax(dim=-1) for d in dists]
        else:
            heads = [torch.multinomial(d.probs, 1, generator=generator).squeeze(-1) for d in dists]
        return torch.stack(heads, dim=-1)

    def value(self, obs: torch.Tensor) -> torch.Tensor:
        """Baseline estimate V(s) of shape (B,)."""
        assert self.critic is not None
        return self.critic(obs).squeeze(-1)


# ----------------------------------------------------------------------------- agent
class ReinforceAgent(BaseAgent):
    """Monte-Carlo policy gradient with a baseline, updated every ``n_episodes`` episodes.

    :param env: gymnasium env with a Discrete, MultiDiscrete or Box action space.
    :param learning_rate: Adam step size; large-ish by default because DataGen budgets are a few
        dozen episodes (one update each), and grads are clipped and advantages normalised.
    :param gamma: discount factor of the returns.
    :param n_episodes: episodes per gradient step (one step per batch: the REINFORCE estimator is
        on-policy, so a batch cannot be reused after the policy moved).
    :param ent_coef: entropy bonus weight (keeps the policy from collapsing on a lucky action).
    :param vf_coef: weight of the value-network regression loss.
    :param max_grad_norm: global gradient-norm clip.
    :param baseline: what is subtracted from the returns G_t to form the advantages.
        ``"value"``: a learned V(s_t) (then centred on the batch mean, see
        ``normalize_advantage``). ``"mean"``: an exponential running mean of the batch-mean
        returns, taken from *before* the current batch (a baseline must not depend on the actions
        it weights); the first batch, before any running mean exists, uses its own mean.
        ``"none"``: nothing, plain REINFORCE (the highest-variance estimator).
    :param baseline_decay: decay of the running mean for ``baseline="mean"``.
    :param normalize_advantage: normalise the advantages within the batch (skipped for a single
        sample). They are always divided by their batch std (+1e-8), which makes the step size
        independent of the reward scale. Only ``baseline="value"`` also subtracts their batch mean
        (standardisation, as PPO does): for ``"mean"`` and
        ``"none"`` centring would replace the chosen baseline by the batch mean and make the two
        options the same. A batch whose advantages do not (numerically) vary is left unscaled,
        since dividing by a std of rounding noise would blow the advantages up.
    :param hidden_sizes: MLP hidden layer widths of the policy and the value network.
    :param log_std_init: initial log standard deviation of the Gaussian head (Box actions).
    :param normalize_obs: ``"running"`` standardises observations with running statistics
        (updated while learning, frozen in ``predict``, saved with the agent), ``"bounds"``
        rescales finite Box bounds to [-1, 1], ``"none"`` feeds them raw.
    :param device: torch device; the tiny MLPs are fastest on the CPU.
    """

    agent_name = "reinforce"

    def __init__(
        self,
        env: gym.Env | None,
        learning_rate: float = 1e-2,
        gamma: float = 0.99,
        n_episodes: int = 1,
        ent_coef: float = 0.01,
        vf_coef: float = 0.5,
        max_grad_norm: float = 0.5,
        baseline: Literal["value", "mean", "none"] = "value",
        baseline_decay: float = 0.9,
        normalize_advantage: bool = True,
        hidden_sizes: tuple[int, ...] | list[int] = (64, 64),
        log_std_init: float = 0.0,
        normalize_obs: Literal["running", "bounds", "none"] = "running",
        seed: int | None = None,
        tensorboard_log: PathLike | None = None,
        text_every: int = 10,
        verbose: int = 0,
        device: str = "cpu",
        observation_space: spaces.Space | None = None,
        action_space: spaces.Space | None = None,
    ) -> None:
        if baseline not in ("value", "mean", "none"):
            raise ValueError(f"baseline must be 'value', 'mean' or 'none', got {baseline!r}")
        if normalize_obs not in ("running", "bounds", "none"):
            raise ValueError(
                f"normalize_obs must be 'running', 'bounds' or 'none', got {normalize_obs!r}"
            )
        if n_episodes < 1:
            raise ValueError("n_episodes must be >= 1")
        self.device = torch.device(device)
        super().__init__(
            env,
            seed=seed,
            tensorboard_log=tensorboard_log,
            text_every=text_every,
            verbose=verbose,
            observation_space=observation_space,
            action_space=action_space,
        )
        self.learning_rate = float(learning_rate)
        self.gamma = float(gamma)
        self.n_episodes = int(n_episodes)
        self.ent_coef = float(ent_coef)
        self.vf_coef = float(vf_coef)
        self.max_grad_norm = float(max_grad_norm)
        self.baseline = baseline
        self.baseline_decay = float(baseline_decay)
        self.normalize_advantage = bool(normalize_advantage)
        self.hidden_sizes = tuple(int(h) for h in hidden_sizes)
        self.log_std_init = float(log_std_init)
        self.baseline_mean: float | None = None
        self.normalize_obs = normalize_obs
        self.obs_rms = RunningMeanStd(obs_dim(self.observation_space))
        # set_random_seed (called by BaseAgent) has already seeded torch, so the init is repeatable.
        self.policy = ReinforcePolicy(
            self.observation_space,
            self.action_space,
            self.hidden_sizes,
            self.log_std_init,
            use_value=baseline == "value",
        ).to(self.device)
        self.optimizer = torch.optim.Adam(self.policy.parameters(), lr=self.learning_rate)

    def set_random_seed(self, seed: int | None) -> None:
        """Seed numpy, torch (network init) and the private action-sampling generator."""
        super().set_random_seed(seed)
        if seed is not None:
            torch.manual_seed(seed)
        self.generator = torch.Generator(device="cpu")
        if seed is not None:
            self.generator.manual_seed(seed)
        else:
            self.generator.seed()

    # ---------------------------------------------------------------- action conversion
    def _to_env_action(self, raw: torch.Tensor) -> np.ndarray:
        """Raw policy output (B, ...) -> actions the env accepts (B, ...)."""
        space = self.action_space
        a = raw.cpu().numpy()
        if isinstance(space, spaces.Discrete):
            return (a[:, 0] + space.start).astype(np.int64)
        if isinstance(space, spaces.MultiDiscrete):
            return (a + space.start).astype(space.dtype)
        # Box: squash u with tanh into (-1, 1) and rescale where the bounds are finite.
        low, high = space.low.reshape(-1), space.high.reshape(-1)
        finite = np.isfinite(low) & np.isfinite(high)
        out = a.astype(np.float64)
        out[:, finite] = low[finite] + (np.tanh(out[:, finite]) + 1.0) * 0.5 * (
            high[finite] - low[finite]
        )
        out = np.clip(out, low, high)  # only guards float rounding at the bounds
        return out.reshape((-1, *space.shape)).astype(space.dtype)

    def _from_env_action(self, action: Any) -> torch.Tensor:
        """Env action(s) -> raw policy units (B, ...), the inverse of :meth:`_to_env_action`."""
        space = self.action_space
        if isinstance(space, spaces.Discrete):
            a = np.asarray(action, dtype=np.int64).reshape(-1, 1) - space.start
            return torch.as_tensor(a)
        if isinstance(space, spaces.MultiDiscrete):
            a = np.asarray(action, dtype=np.int64).reshape(-1, len(space.nvec)) - space.start
            return torch.as_tensor(a)
        low, high = space.low.reshape(-1), space.high.reshape(-1)
        a = np.asarray(action, dtype=np.float64).reshape(-1, low.size).copy()
        finite = np.isfinite(low) & np.isfinite(high) & (high > low)
        scaled = 2.0 * (a[:, finite] - low[finite]) / (high[finite] - low[finite]) - 1.0
        a[:, finite] = np.arctanh(np.clip(scaled, -1.0 + 1e-6, 1.0 - 1e-6))
        return torch.as_tensor(a, dtype=torch.float32)

    def _obs_tensor(
        self, observation: Any, batch: bool, update_stats: bool = False
    ) -> torch.Tensor:
        """Observation(s) -> normalised float tensor ``(B, obs_dim)`` on the agent's device."""
        x = flatten_obs(observation, self.observation_space, batch)
        if self.normalize_obs == "bounds":
            x = scale_to_bounds(x, self.observation_space)
        elif self.normalize_obs == "running":
            if update_stats:
                self.obs_rms.update(x)
            x = self.obs_rms.normalize(x)
        return torch.as_tensor(x, dtype=torch.float32, device=self.device)

    # ---------------------------------------------------------------- acting
    def predict(
        self,
        observation: Any,
        state: Any = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = False,
    ) -> tuple[np.ndarray, Any]:
        """Sample an action (or take the most likely one with ``deterministic=True``)."""
        batch = self._is_batch(observation)
        obs = self._obs_tensor(observation, batch)
        with torch.no_grad():
            actions = self._to_env_action(self.policy.act(obs, deterministic, self.generator))
        return (actions if batch else actions[0]), state

    def action_log_prob(self, observation: Any, action: Any) -> float:
        """log pi(action | observation) for one observation.

        For Box actions it is the density of the pre-tanh ``u`` that produces ``action``.
        """
        obs = self._obs_tensor(observation, batch=False)
        with torch.no_grad():
            log_prob, _ = self.policy.evaluate_actions(
                obs, self._from_env_action(action).to(self.device)
            )
        return float(log_prob[0])

    # ---------------------------------------------------------------- learning
    # ------------------------------------------------------------------ the learn loop
    # (BaseAgent.learn): collect ``n_episodes`` episodes, take one policy-gradient step,
    # repeat. When ``total_timesteps`` ends mid-episode (or a callback stops the run) the
    # partial episode is still used (as a truncated one): a DataGen step costs a generation and
    # a target evaluation, too expensive to throw away. Each batch is a rollout for the
    # callback: ``on_rollout_start`` before its first step, ``on_rollout_end`` before its update.
    def _begin_learn(self, fresh_episode: bool) -> None:
        self._obs_buf: list[torch.Tensor] = []
        self._act_buf: list[torch.Tensor] = []
        self._rew_buf: list[float] = []
        self._done_buf: list[bool] = []
        self._episodes_in_batch = 0

    def _begin_step(self, callback: Any) -> None:
        if not self._rew_buf:
            callback.on_rollout_start()

    def _act(self) -> tuple[np.ndarray, dict[str, Any] | None]:
        # Normalised with the statistics of the moment and stored as such, so the update
        # re-evaluates exactly the distribution the action was sampled from.
        obs_t = self._obs_tensor(self._last_obs, batch=False, update_stats=True)
        with torch.no_grad():  # acting only; the update recomputes log-probs with grad
            raw = self.policy.act(obs_t, deterministic=False, generator=self.generator)
        self._obs_buf.append(obs_t[0])
        self._act_buf.append(raw[0])
        return self._to_env_action(raw)[0], None

    def _record(self, action: Any, reward: float, done: bool, info: dict[str, Any]) -> None:
        self._rew_buf.append(reward)
        self._done_buf.append(done)
        self._episodes_in_batch += int(done)

    def _end_step(self, callback: Any) -> None:
        if self._episodes_in_batch >= self.n_episodes:
            self._flush(callback)

    def _end_learn(self, callback: Any) -> None:
        if self._rew_buf:
            self._flush(callback)

    def _flush(self, callback: Any) -> None:
        """One policy-gradient step on the batch collected, which then starts afresh."""
        callback.on_rollout_end()
        self._update(self._obs_buf, self._act_buf, self._rew_buf, self._done_buf)
        self._begin_learn(False)

    def _discounted_returns(self, rewards: list[float], dones: list[bool]) -> np.ndarray:
        """G_t = r_t + gamma * G_{t+1}, restarting at episode ends (and at the batch end)."""
        returns = np.zeros(len(rewards), dtype=np.float32)
        running = 0.0
        for t in reversed(range(len(rewards))):
            last = dones[t] or t == len(rewards) - 1
            running = rewards[t] + self.gamma * running * (0.0 if last else 1.0)
            returns[t] = running
        return returns

    def _normalize_advantages(self, advantages: torch.Tensor) -> torch.Tensor:
        """Batch normalisation of the advantages (``normalize_advantage``; needs 2+ samples).

        ``baseline="value"``: centre and scale, as PPO does; the batch mean then acts as a second,
        per-batch baseline on top of V(s).

        ``"mean"`` and ``"none"``: scale only. Subtracting the batch mean would remove any
        constant baseline (``(G - b) - mean(G - b) == G - mean(G)``), so the running mean would
        have no effect and ``"none"`` would silently get a batch-mean baseline.
        """
        if self.baseline == "value":
            return (advantages - advantages.mean()) / (advantages.std() + 1e-8)
        std = float(advantages.std())
        if std <= MIN_RELATIVE_ADV_STD * float(advantages.abs().max()):
            return advantages  # no spread to normalise by (all-zero advantages land here too)
        return advantages / (std + 1e-8)

    def _update(
        self,
        obs_buf: list[torch.Tensor],
        act_buf: list[torch.Tensor],
        rew_buf: list[float],
        done_buf: list[bool],
    ) -> dict[str, float]:
        """One policy-gradient step on a batch of (complete or truncated) episodes."""
        obs = torch.stack(obs_buf)
        actions = torch.stack(act_buf)
        returns = torch.as_tensor(self._discounted_returns(rew_buf, done_buf), device=self.device)

        # Log-probs WITH gradient: this is the term the policy gradient flows through.
        log_prob, entropy = self.policy.evaluate_actions(obs, actions)

        value_loss = torch.zeros((), device=self.device)
        if self.baseline == "value":
            values = self.policy.value(obs)
            advantages = returns - values.detach()  # the baseline must not receive policy gradient
            value_loss = 0.5 * (returns - values).pow(2).mean()
        elif self.baseline == "mean":
            mean = float(returns.mean()) if self.baseline_mean is None else self.baseline_mean
            advantages = returns - mean
            batch_mean = float(returns.mean())
            self.baseline_mean = (
                batch_mean
                if self.baseline_mean is None
                else (
                    self.baseline_decay * self.baseline_mean
                    + (1 - self.baseline_decay) * batch_mean
                )
            )
        else:
            advantages = returns
        if self.normalize_advantage and advantages.numel() > 1:
            # One sample has no batch std (and would centre to 0), hence the size check.
            advantages = self._normalize_advantages(advantages)

        policy_loss = -(log_prob * advantages).mean()
        entropy_loss = -entropy.mean()
        loss = policy_loss + self.ent_coef * entropy_loss + self.vf_coef * value_loss

        self.optimizer.zero_grad()
        loss.backward()
        grad_norm = nn.utils.clip_grad_norm_(self.policy.parameters(), self.max_grad_norm)
        self.optimizer.step()

        stats = {
            "train/policy_loss": policy_loss.item(),
            "train/value_loss": value_loss.item(),
            "train/entropy": -entropy_loss.item(),
            "train/grad_norm": float(grad_norm),
            "train/return_mean": float(returns.mean()),
            "train/batch_size": float(len(rew_buf)),
        }
        if self.policy.kind == "box":
            stats["train/std"] = self.policy.log_std.exp().mean().item()
        for tag, value in stats.items():
            self.logger.record(tag, value)
        return stats

    # ---------------------------------------------------------------- persistence
    def _hyperparameters(self) -> dict[str, Any]:
        return {
            "learning_rate": self.learning_rate,
            "gamma": self.gamma,
            "n_episodes": self.n_episodes,
            "ent_coef": self.ent_coef,
            "vf_coef": self.vf_coef,
            "max_grad_norm": self.max_grad_norm,
            "baseline": self.baseline,
            "baseline_decay": self.baseline_decay,
            "normalize_advantage": self.normalize_advantage,
            "hidden_sizes": list(self.hidden_sizes),
            "log_std_init": self.log_std_init,
            "normalize_obs": self.normalize_obs,
            "text_every": self.text_every,
        }

    def save(self, path: PathLike) -> None:
        """Write ``agent.json`` (hyper-parameters, spaces, counters, optimizer groups) and
        ``policy.safetensors`` (network, optimizer moments, observation statistics, sampler RNG
        state).

        The tensors are written first and the JSON last: the JSON is what :meth:`load` opens,
        so an interrupted save leaves the previous checkpoint loadable.
        """
        path = checkpoint_dir(path)
        path.mkdir(parents=True, exist_ok=True)
        opt_state = self.optimizer.state_dict()
        tensors = flatten_state("policy", self.policy.state_dict())
        tensors.update(flatten_state("optimizer.state", opt_state["state"]))
        tensors["rng.generator"] = self.generator.get_state()
        tensors["obs_rms.mean"] = torch.from_numpy(self.obs_rms.mean)
        tensors["obs_rms.var"] = torch.from_numpy(self.obs_rms.var)
        tensors["obs_rms.count"] = torch.tensor(self.obs_rms.count, dtype=torch.float64)
        atomic_save_safetensors(tensors, path / TENSORS_FILE, metadata={"agent": self.agent_name})
        meta = {
            "agent": self.agent_name,
            "format_version": FORMAT_VERSION,
            "tensors": TENSORS_FILE,
            "hyperparameters": self._hyperparameters(),
            "observation_space": space_to_dict(self.observation_space),
            "action_space": space_to_dict(self.action_space),
            "optimizer": {"type": "Adam", "param_groups": opt_state["param_groups"]},
            "num_timesteps": self.num_timesteps,
            "num_episodes": self.num_episodes,
            "seed": self.seed,
            "baseline_mean": self.baseline_mean,
        }
        atomic_write_json(path / META_FILE, meta)

    @classmethod
    def load(cls, path: PathLike, env: gym.Env | None = None, **kwargs: Any) -> ReinforceAgent:
        """Rebuild a saved agent; ``kwargs`` override stored settings (e.g. ``tensorboard_log``)."""
        path = checkpoint_dir(path, existing=True)
        meta = cls._read_meta(path, cls.agent_name)
        obs_space = space_from_dict(meta["observation_space"])
        act_space = space_from_dict(meta["action_space"])
        params = {**meta["hyperparameters"], **kwargs}
        agent = cls(env=None, observation_space=obs_space, action_space=act_space, **params)
        if env is not None:
            agent.set_env(env)
        tensors = load_safetensors(path / meta["tensors"])
        agent.policy.load_state_dict(
            {k[len("policy.") :]: v for k, v in tensors.items() if k.startswith("policy.")}
        )
        opt_state: dict[int, dict[str, torch.Tensor]] = {}
        for key, value in tensors.items():
            if key.startswith("optimizer.state."):
                index, name = key[len("optimizer.state.") :].split(".", 1)
                opt_state.setdefault(int(index), {})[name] = value
        agent.optimizer.load_state_dict(
            {"state": opt_state, "param_groups": meta["optimizer"]["param_groups"]}
        )
        agent.generator.set_state(tensors["rng.generator"])
        agent.obs_rms.mean = tensors["obs_rms.mean"].numpy().astype(np.float64)
        agent.obs_rms.var = tensors["obs_rms.var"].numpy().astype(np.float64)
        agent.obs_rms.count = float(tensors["obs_rms.count"])
        agent.num_timesteps = int(meta["num_timesteps"])
        agent.num_episodes = int(meta["num_episodes"])
        agent.seed = meta.get("seed")
        agent.baseline_mean = meta.get("baseline_mean")
        return agent
