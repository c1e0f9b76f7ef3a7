"""The frozen reference student: per-step KL shaping and top-p / top-k action masks.

``ReferenceVecEnv`` wraps a stable-baselines3 VecEnv. Each step it adds
``kl_coef * log p_ref(token | prefix)`` to the reward, where ``p_ref`` is a frozen copy
of the starting student; with an entropy bonus of the same coefficient this is the
KL-regularised objective ``E[R] - kl_coef * KL(pi || p_ref)`` the paper optimises. It
also answers ``action_masks()`` with the reference's top-p / top-k set (the NLPO idea),
which MaskablePPO uses to keep the policy among tokens the reference finds plausible.
The reference keeps its own key/value cache per env slot, so it costs one token's
forward pass per step.

Training runs without action masks use ``deferred=True``: no reference pass during the
rollout; at its end, one teacher-forced pass over the rollout buffer's stories gives
every step's ``log p_ref`` and ``end_rollout`` adds the whole penalty. The reference is
frozen, so the keys and values of a story still in flight stay valid into the next
rollout, and those of a prompt for good: each story is read once, whatever the rollout
boundaries. The sum is the same up to float rounding, and a forward pass over a
rollout's stories costs a fraction of 16-row single-token steps.

The per-token penalty makes a story's KL cost grow with its length: once the policy has
moved from the reference, ending a story early is the cheapest way to pay less, and
with a reward that carries no signal (the random-reward control) stories shrink.
``story_tokens`` charges each story as if it ran that many tokens at its own mean
rate: the per-token penalty as usual, plus at the story's last step the tokens it did
not write times its mean.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch
from stable_baselines3.common.vec_env import VecEnv, VecEnvWrapper

from story_env.agents.rl.kvcache import IncrementalLM, continue_rows
from story_env.errors import ConfigError
from story_env.registry import resolve_student


class ReferenceVecEnv(VecEnvWrapper):
    """Adds the reference model's log-probabilities as shaping and provides action masks.

    Args:
        venv: The Storytelling vector env (e.g. ``story_env.sb3.make_sb3_vec_env``).
        student: The starting student (name or folder); a frozen copy is the reference.
        student_kwargs: Its factory's keyword arguments.
        kl_coef: Shaping coefficient (>= 0); 0 turns shaping off.
        story_tokens: Charge each story's KL as this many tokens at its own mean rate
            (the story's length limit; None: per token, the cost grows with length).
        top_p: Mask tokens outside the reference's nucleus of this mass (None: no mask).
        top_k: Mask tokens outside the reference's k most likely (None: no mask).
        deferred: Score the whole rollout at ``end_rollout`` instead of at every step
            (the env's own rewards come through unshaped); not with masks, which need
            the reference at every step.
    """

    def __init__(
        self,
        venv: VecEnv,
        student: str,
        student_kwargs: Mapping[str, Any] | None = None,
        kl_coef: float = 0.0,
        story_tokens: int | None = None,
        top_p: float | None = None,
        top_k: int | None = None,
        deferred: bool = False,
    ) -> None:
        if kl_coef < 0:
            raise ConfigError(f"kl_coef must be >= 0, got {kl_coef}")
        if story_tokens is not None and story_tokens < 1:
            raise ConfigError(f"story_tokens must be >= 1 (or None), got {story_tokens}")
        if top_p is not None and not 0.0 < top_p <= 1.0:
            raise ConfigError(f"top_p must be in (0, 1], got {top_p}")
        if top_k is not None and top_k < 1:
            raise ConfigError(f"top_k must be >= 1, got {top_k}")
        if deferred and (top_p is not None or top_k is not None):
            raise ConfigError(
                f"action masks (top_p={top_p}, top_k={top_k}) need the reference at every "
                "step; use deferred=False with masks"
            )
        super().__init__(venv)
        self.deferred = deferred
        self.rollout_ref: np.ndarray | None = None  # (n_steps, n_envs) of the last rollout
        model = resolve_student(student, dict(student_kwargs or {})).model
        self.model = model.eval().requires_grad_(False)
        self.pad_id = int(venv.observation_space.high.max())
        self.incremental = IncrementalLM(self.model, self.pad_id)
        self.kl_coef, self.top_p, self.top_k = float(kl_coef), top_p, top_k
        self.story_tokens = story_tokens
        # per env: the shaping summed over its story so far, and the story's steps
        self._story_kl: dict[int, tuple[float, int]] = {}
        self._logp: torch.Tensor | None = None  # (N, V) log p_ref at the current observations
        self._actions: np.ndarray | None = None
        self.ref_logps: list[float] = []  # log p_ref of every action since the last pop
        self.rollout = RolloutReference(self.model, self.pad_id)  # deferred mode's pass

    def pop_ref_logps(self) -> np.ndarray:
        """The reference log-probabilities of the actions taken since the last call."""
        out, self.ref_logps = np.asarray(self.ref_logps), []
        return out

    def end_rollout(
        self,
        buffer: Any,
        kl_target: float | None,
        record: Callable[[str, float], None],
        dones: np.ndarray | None = None,
    ) -> bool:
        """Close one rollout's KL penalty; True if it changed ``buffer.rewards``
        (``rollout_ref`` keeps the rollout's ``log p_ref``).

        Each step added ``kl_coef * log p_ref(a)``; subtracting ``kl_coef * log pi(a)``
        here (the buffer holds the policy's log-probabilities) makes it the per-token
        penalty ``kl_coef * (log p_ref - log pi)`` of the paper (and TRL), whose
        expectation is 0 for the starting policy. Without it every token costs about
        ``kl_coef * 5`` nats and the policy learns to end stories at once. Then the
        rollout's KL (nats/token) goes to ``record``, and with ``kl_target`` the
        coefficient moves toward it (Ziegler et al. 2019: at most 2% per rollout).
        With ``story_tokens``, each story that ends in this rollout (``dones``: the
        envs' done flags at its last step) also pays its unwritten tokens' share.
        """
        changed = bool(self.kl_coef) and hasattr(buffer, "log_probs")
        if self.deferred:
            ref = self.rollout_logps(buffer)
            if changed:
                buffer.rewards += self.kl_coef * (ref - buffer.log_probs)
        else:
            ref = self.pop_ref_logps().reshape(buffer.rewards.shape)
            if changed:
                buffer.rewards -= self.kl_coef * buffer.log_probs
        if changed and self.story_tokens is not None:
            if dones is None:
                raise ConfigError("story_tokens needs the rollout's last done flags (dones)")
            shaping = ref - buffer.log_probs
            buffer.rewards += self.kl_coef * self._unwritten_share(
                shaping, buffer.episode_starts, np.asarray(dones, dtype=bool)
            )
        self.rollout_ref = ref
        ref = ref.ravel()
        kl = float(np.mean(buffer.log_probs) - np.mean(ref)) if len(ref) else 0.0
        record("train/kl", kl)
        if kl_target is not None:
            self.kl_coef = adapt_kl_coef(self.kl_coef, kl, kl_target)
            record("train/kl_coef", self.kl_coef)
        return changed

    def _unwritten_share(
        self, shaping: np.ndarray, starts: np.ndarray, last_dones: np.ndarray
    ) -> np.ndarray:
        """(n_steps, n_envs): at each story's last step, ``story_tokens`` less its
        steps, times its mean shaping (``log p_ref - log pi``); 0 elsewhere. A story
        begun in an earlier rollout counts its steps there too."""
        assert self.story_tokens is not None
        n_steps, n_envs = shaping.shape
        ends = np.zeros(shaping.shape, dtype=bool)
        ends[:-1], ends[-1] = starts[1:].astype(bool), last_dones
        extra = np.zeros(shaping.shape, dtype=np.float32)
        for env in range(n_envs):
            total, count = self._story_kl.get(env, (0.0, 0))
            for t in range(n_steps):
                total, count = total + float(shaping[t, env]), count + 1
                if ends[t, env]:
                    extra[t, env] = (self.story_tokens - count) * total / count
                    total, count = 0.0, 0
            self._story_kl[env] = (total, count)
        return extra

    def rollout_logps(self, buffer: Any) -> np.ndarray:
        """(n_steps, n_envs) ``log p_ref`` of every action in the rollout buffer
        (``RolloutReference.rollout_logps``)."""
        return self.rollout.rollout_logps(buffer)

    @torch.no_grad()
    def _reference_logp(self, obs: np.ndarray) -> torch.Tensor:
        ids = torch.as_tensor(obs, dtype=torch.long)
        hidden = self.incremental(ids, (ids != self.pad_id).sum(dim=1))  # (N, H)
        logits = self.model.get_output_embeddings()(hidden)  # (N, V)
        return torch.log_softmax(logits.float(), dim=-1)

    def reset(self) -> np.ndarray:
        obs = self.venv.reset()
        if not self.deferred:
            self._logp = self._reference_logp(obs)
        return obs

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = np.asarray(actions)
        self.venv.step_async(actions)

    def step_wait(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[dict[str, Any]]]:
        obs, rewards, dones, infos = self.venv.step_wait()
        if self.deferred:
            return obs, rewards, dones, infos
        assert self._logp is not None and self._actions is not None
        ref_logp = self._logp[
            torch.arange(len(self._actions)), torch.as_tensor(self._actions)
        ].numpy()
        shaped = rewards + self.kl_coef * ref_logp.astype(np.float32)
        self.ref_logps.extend(ref_logp.tolist())
        self._logp = self._reference_logp(obs)
        return obs, shaped.astype(np.float32), dones, infos

    def action_masks(self) -> np.ndarray:
        """(N, V) booleans: the reference's top-p / top-k tokens at the current prefixes."""
        if self._logp is None:
            raise ConfigError("action_masks() called before reset()")
        return reference_masks(self._logp, self.top_p, self.top_k)

    def env_method(
        self, method_name: str, *args: Any, indices: Any = None, **kwargs: Any
    ) -> list[Any]:
        if method_name == "action_masks":
            masks = self.action_masks()
            rows = range(self.num_envs) if indices is None else np.atleast_1d(indices)
            return [masks[i] for i in rows]
        return self.venv.env_method(method_name, *args, indices=indices, **kwargs)

    def has_attr(self, attr_name: str) -> bool:
        if attr_name == "action_masks":
            return self.top_p is not None or self.top_k is not None
        return self.venv.has_attr(attr_name)


def adapt_kl_coef(coef: float, kl: float, target: float) -> float:
    """The adaptive KL coefficient after a rollout whose KL (nats/token) was ``kl``:
    toward ``target`` by at most 2% (Ziegler et al. 2019)."""
    return coef * float(1.0 + np.clip(kl / target - 1.0, -0.2, 0.2) * 0.1)


class RolloutReference:
    """``log p_ref`` of a whole rollout's actions in one teacher-forced pass at its end.

    The per-step path (``ReferenceVecEnv`` without ``deferred``) runs the reference once
    per step because action masks need it then; without masks this pass gives the same
    numbers (up to float rounding) for a fraction of the cost. Used by
    ``ReferenceVecEnv(deferred=True)`` and by ``StoryPPO``.

    Args:
        model: The frozen reference causal LM.
        pad_id: The observations' padding id (the env's ``vocab_size``).
    """

    def __init__(self, model: Any, pad_id: int) -> None:
        self.model, self.pad_id = model, pad_id
        # keys/values of each env's story in flight at the last rollout's end (its
        # tokens, per layer (keys, values)), and of prompts seen (by tokens)
        self._carry: dict[int, tuple[torch.Tensor, Any]] = {}
        self._prompts: dict[tuple[int, ...], Any] = {}

    @torch.no_grad()
    def rollout_logps(self, buffer: Any) -> np.ndarray:
        """(n_steps, n_envs) ``log p_ref`` of every action in an SB3 rollout buffer.

        Each env's steps are cut into stories (a row that does not extend the one before
        starts a new one); each story runs once, teacher-forced, after the keys and
        values it can reuse: the reference is frozen, so those of a story still in
        flight at the last rollout's end (``_carry``) and those of a prompt already seen
        (``_prompts``) stay exact. A story spanning two rollouts is not read twice.
        """
        n_steps, n_envs = buffer.actions.shape[:2]
        obs = torch.as_tensor(buffer.observations).long()  # (S, E, W)
        actions = torch.as_tensor(buffer.actions).long().reshape(n_steps, n_envs)
        lengths = (obs != self.pad_id).sum(dim=-1)  # (S, E)
        cols = torch.arange(obs.shape[-1])
        same = ((obs[1:] == obs[:-1]) | (cols >= lengths[:-1, :, None])).all(-1)
        grew = lengths[1:] - lengths[:-1]
        # (S - 1, E): row t extends row t - 1, or repeats it (a slot held by training
        # waits with its next prompt: those steps are not trained, any position serves)
        extends = same & ((grew == 1) | (grew == 0))
        stories, rows = [], []
        for env in range(n_envs):
            cuts = [0, *(torch.nonzero(~extends[:, env])[:, 0] + 1).tolist(), n_steps]
            for t0, t1 in itertools.pairwise(cuts):
                tokens = obs[t1 - 1, env, : lengths[t1 - 1, env]]
                past, reused = self._past(env, tokens, int(lengths[t0, env]))
                stories.append((env, t0, t1, reused, tokens))
                rows.append((past, tokens[reused:]))
        self._carry = {}
        wanted, where = [], []  # each story's hidden states at its steps, and their slots
        for (env, t0, t1, reused, tokens), (hidden, states) in zip(
            stories, continue_rows(self.model, rows), strict=True
        ):
            wanted.append(hidden[lengths[t0:t1, env] - 1 - reused])
            where.append(torch.arange(t0, t1) * n_envs + env)
            first = int(lengths[t0, env]) - 1  # the story's first row, less its last token
            if reused == 0 and first > 0 and bool(buffer.episode_starts[t0, env]):
                if len(self._prompts) >= 64:
                    self._prompts.clear()
                key = tuple(tokens[:first].tolist())
                self._prompts[key] = [(k[:, :, :first], v[:, :, :first]) for k, v in states]
            if t1 == n_steps:
                self._carry[env] = (tokens, states)
        # the head and softmax over many stories at once (per story, they cost a seventh
        # of the pass), in chunks that keep the logits small for a large vocabulary
        slots, hidden = torch.cat(where), torch.cat(wanted)
        taken = actions.ravel()[slots, None]
        head, out = self.model.get_output_embeddings(), torch.empty(n_steps * n_envs)
        for i in range(0, len(slots), 1024):
            logits = head(hidden[i : i + 1024]).float()
            out[slots[i : i + 1024]] = torch.log_softmax(logits, -1).gather(1, taken[i : i + 1024])[
                :, 0
            ]
        return out.reshape(n_steps, n_envs).numpy()

    def _past(self, env: int, tokens: torch.Tensor, first: int) -> tuple[Any, int]:
        """The keys and values a story can reuse, and how many of its tokens they cover.

        At most ``first - 1`` tokens: the story's first row needs its last token's
        hidden state, so that token is run again.
        """
        carried = self._carry.get(env)
        if carried is not None:
            seen, states = carried
            if len(seen) <= first - 1 and torch.equal(tokens[: len(seen)], seen):
                return states, len(seen)
        prompt = self._prompts.get(tuple(tokens[: first - 1].tolist()))
        if prompt is not None:
            return prompt, first - 1
        return None, 0


def reference_masks(logp: torch.Tensor, top_p: float | None, top_k: int | None) -> np.ndarray:
    """Boolean masks of each row's top-k tokens and smallest set with mass >= top_p."""
    keep = torch.ones_like(logp, dtype=torch.bool)
    if top_k is not None:
        kth = torch.topk(logp, min(top_k, logp.shape[-1]), dim=-1).values[:, -1:]
        keep &= logp >= kth
    if top_p is not None:
        sorted_logp, order = torch.sort(logp, dim=-1, descending=True)
        mass_before = torch.cumsum(sorted_logp.exp(), dim=-1) - sorted_logp.exp()
        inside = mass_before < top_p  # the token that crosses top_p is kept
        nucleus = torch.zeros_like(keep).scatter(-1, order, inside)
        keep &= nucleus
    return keep.numpy()
