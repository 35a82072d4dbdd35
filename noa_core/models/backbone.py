"""NOABackbone: the θ- and context-conditioned U-AFNO stepper, its rollout and feature heads.

One update is u_{t+1} = u_t + σ_f·Δ((u_t − μ_f)/σ_f, cond, F), with the dataset-level field
statistics μ_f, σ_f [C] (``set_field_stats``; default 0 and 1) stored as buffers so they travel
with checkpoints and the ONNX graph. ``cond`` [B, E] = θ embedding + context embedding.

Context: the observed states u_0 … u_K [B, K + 1, C, H, W] of the same realization (K
transitions; the rollout starts at u_K). The encoder gives the context embedding and the context
field F [B, 2C, H, W] (mean and last increment); with context, Δ also gains
g·s·F_mean, the mean observed increment scaled by a gate g [B, C] that starts at zero: the model
can extrapolate the observed motion and learns when to. g = G_1(cond) + a·G_2(settings(θ))
(a = ``GATE_TABLE_SCALE``): a table over the settings of the rule slot (the update policy,
``ThetaEmbedding.settings``) gives each update policy its own gate weight, since extrapolating
is right for one policy and ruinous for another and a shared weight's optimiser statistics
would be swamped by the ruinous side. K = 0 (None, or a single state) runs none of this: the
outputs are those of the same weights with the context branch removed, bit for bit.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint as activation_checkpoint

from noa_core.config import ModelConfig
from noa_core.models.conditioning import (
    ContextEncoder,
    Modulations,
    ThetaEmbedding,
    ZeroLinear,
    context_transitions,
)
from noa_core.models.heads import FeatureHeads, pool_features
from noa_core.models.stochastic import draw_latent_noise
from noa_core.models.u_afno import UAFNO

# The gate table's output scale. Its weights start at zero and AdamW moves a weight by about
# lr per step, so unscaled a gate of 1 (plain extrapolation, right for residual operators) took
# over 1000 steps: measured 0.04 after 60 steps of the `small` run. Scaled, a step moves it by
# ~0.025 and the table settles within the first hundred steps.
GATE_TABLE_SCALE = 25.0
# The same for the per-setting gain on u (the convex policy's −α·u_t, 0 for residual): a table
# row reaches −0.5 within ~100 steps at 0.005 per step, gently enough for the alignment terms
# (the U-AFNO's own cond-driven gain is kept small for that reason, LINEAR_GAIN_SCALE).
GAIN_TABLE_SCALE = 5.0


class Conditioning(NamedTuple):
    """What every step reads: ``vector`` [B, E] (θ + context embedding), and with context the
    context field [B, 2C, H, W] and the extrapolation gate [B, C] (both None without)."""

    vector: torch.Tensor
    field: torch.Tensor | None = None
    gate: torch.Tensor | None = None
    gain: torch.Tensor | None = None  # [B, C], per discrete θ setting (context or not)


class StepContext(NamedTuple):
    """A context's terms in one step, the same at every step of a rollout (computed once):
    ``stem`` [B, c_0, H, W], the context field's addition to the U-AFNO stem
    (``UAFNO.context_term``), and ``drift`` [B, C, H, W] = g·s·F_mean, the gated mean
    increment added to Δ."""

    stem: torch.Tensor
    drift: torch.Tensor


def grad_span(steps: int, grad_window: int | None, grad_offset: int | None
              ) -> tuple[int, int]:
    """``(warm, end)``: the updates warm … end − 1 of a ``steps``-update rollout keep their
    graph (``NOABackbone.rollout``'s ``grad_window`` and ``grad_offset``); (0, steps) for
    None."""
    if grad_window is None:
        return 0, steps
    last = max(0, steps - grad_window)
    warm = last if grad_offset is None else min(max(0, grad_offset), last)
    return warm, min(warm + grad_window, steps)


def grad_states(steps: int, grad_window: int | None, grad_offset: int | None) -> slice:
    """The states of a rollout [B, steps + 1, ...] that carry a gradient: update t produces
    state t + 1, so those of ``grad_span``, shifted by one (X_start never does)."""
    warm, end = grad_span(steps, grad_window, grad_offset)
    return slice(warm + 1, end + 1)


def _stem(ctx: StepContext | None) -> torch.Tensor | None:
    """The stem term of a step's context (None without a context)."""
    return None if ctx is None else ctx.stem


class NOABackbone(nn.Module):
    """θ-conditioned U-AFNO NOA: ``step``, ``rollout`` (TBPTT, checkpointing, noise), ``heads``.

    Args:
        cfg: the ``model`` section of the configuration.
        channels: field channels C.
        theta_dim: θ slots P (θ rows are unit vectors in [0, 1]^P, constants at 0.5).
        theta_mask: which slots are sampled; constant slots are dropped from the θ MLP input.
        horizon: rollout length used by ``heads`` when no rollout is given (the feature horizon H).
        theta_edges: per slot, the unit values where a discrete slot's setting changes
            (``ThetaSpace.edges``); None: every slot is read as a coordinate only.
        rule_slot: the θ slot of ``model.rule_slot`` (its settings index the gate and gain
            tables); None: no tables.
    """

    def __init__(self, cfg: ModelConfig, channels: int, theta_dim: int,
                 theta_mask: Sequence[bool] | None = None, horizon: int | None = None,
                 theta_edges: Sequence[Sequence[float]] | None = None,
                 rule_slot: int | None = None) -> None:
        super().__init__()
        self.cfg, self.channels, self.theta_dim, self.horizon = cfg, channels, theta_dim, horizon
        dim = cfg.theta_embed_dim
        self.theta_embedding = ThetaEmbedding(theta_dim, dim, theta_mask, theta_edges,
                                              rule_slot)
        self.context_encoder = (
            ContextEncoder(channels, cfg.base_channels, cfg.context_embed_dim, dim,
                           cfg.context_max)
            if cfg.context_max > 0 else None
        )
        field_channels = 0 if self.context_encoder is None else self.context_encoder.field_channels
        self.net = UAFNO(cfg, channels, dim, field_channels)
        context = self.context_encoder is not None
        settings = self.theta_embedding.num_settings
        self.drift_gate = ZeroLinear(dim, channels) if context else None
        self.drift_table = ZeroLinear(settings, channels, bias=False) \
            if context and settings else None
        # Δ gains b·G_3(settings(θ))·(u − μ_f)/σ_f: a linear rate per setting of the rule slot,
        # learnt per update policy apart (one policy contracts the field, the other does not).
        self.gain_table = ZeroLinear(settings, channels, bias=False) if settings else None
        ch = cfg.level_channels
        self.feature_heads = FeatureHeads(cfg.heads, ch[-1], ch[:-1], dim)
        self.register_buffer("field_mean", torch.zeros(channels))
        self.register_buffer("field_std", torch.ones(channels))
        # Std of one-step increments of the normalised field, per channel (dataset-level).
        self.register_buffer("increment_std", torch.ones(channels))

    # -- normalisation ----------------------------------------------------------------------

    @torch.no_grad()
    def set_field_stats(self, mean: torch.Tensor, std: torch.Tensor,
                        increment_std: torch.Tensor | None = None) -> None:
        """Set the dataset-level per-channel field mean and std [C] (never batch statistics)
        and, optionally, the std [C] of one-step increments in normalised units."""
        given = [torch.as_tensor(mean).float(), torch.as_tensor(std).float()]
        if increment_std is not None:
            given.append(torch.as_tensor(increment_std).float())
        if any(t.shape != (self.channels,) for t in given) or \
                not all(bool((t > 0).all()) for t in given[1:]):
            raise ValueError(f"field stats need shape [{self.channels}] and std > 0, got "
                             f"{[tuple(t.shape) for t in given]}")
        self.field_mean.copy_(given[0])
        self.field_std.copy_(given[1])
        if increment_std is not None:
            self.increment_std.copy_(given[2])

    def normalize(self, u: torch.Tensor) -> torch.Tensor:
        """(u − μ_f) / σ_f per channel over the last three axes [..., C, H, W]."""
        return (u - self.field_mean[:, None, None]) / self.field_std[:, None, None]

    def _check_field(self, u: torch.Tensor) -> None:
        if u.ndim != 4 or u.shape[1] != self.channels:
            raise ValueError(f"field has shape {tuple(u.shape)}, expected [B, {self.channels}, "
                             "H, W]")

    # -- conditioning -------------------------------------------------------------------------

    def encode_context(self, context: torch.Tensor | None, batch: int
                       ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Context u_0 … u_K [B, K + 1, C, H, W] → (embedding [B, E], field [B, 2C, H, W]).

        For K = 0 (None or one state): a zero embedding and no field.
        """
        if context is None or context_transitions(context) == 0:
            return self.field_mean.new_zeros(batch, self.cfg.theta_embed_dim), None
        if context.ndim != 5 or context.shape[0] != batch or context.shape[2] != self.channels:
            raise ValueError(f"context has shape {tuple(context.shape)}, expected "
                             f"[{batch}, K + 1, {self.channels}, H, W]")
        if self.context_encoder is None:
            raise ValueError("this model takes no context (model.context_max = 0)")
        return self.context_encoder(self.normalize(context), self.increment_std)

    def context_embedding(self, context: torch.Tensor | None, batch: int) -> torch.Tensor:
        """The context embedding [B, E] alone; exactly zero for K = 0."""
        return self.encode_context(context, batch)[0]

    def condition(self, theta: torch.Tensor, context: torch.Tensor | None = None
                  ) -> Conditioning:
        """θ [B, P] and an optional context [B, K + 1, C, H, W] → ``Conditioning``.

        Without context the vector is the θ embedding itself (nothing added), so the outputs
        equal those of the same weights with the context branch removed, bit for bit.
        """
        emb = self.theta_embedding(theta)
        gain = self.setting_gain(theta)
        if context_transitions(context) == 0:
            return Conditioning(emb, gain=gain)
        ctx_emb, field = self.encode_context(context, theta.shape[0])
        vec = emb + ctx_emb
        return Conditioning(vec, field, self.extrapolation_gate(theta, vec), gain)

    def setting_gain(self, theta: torch.Tensor) -> torch.Tensor | None:
        """The per-setting linear rate b·G_3(settings(θ)) [B, C]; None without discrete slots."""
        if self.gain_table is None:
            return None
        return GAIN_TABLE_SCALE * self.gain_table(self.theta_embedding.settings(theta))

    def extrapolation_gate(self, theta: torch.Tensor, vector: torch.Tensor) -> torch.Tensor:
        """g [B, C] = G_1(θ + context embedding) + a·G_2(settings(θ)) (module docstring)."""
        gate = self.drift_gate(vector)
        if self.drift_table is not None:
            settings = self.theta_embedding.settings(theta)
            gate = gate + GATE_TABLE_SCALE * self.drift_table(settings)
        return gate

    def embed(self, theta: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        """The conditioning vector [B, E] (θ embedding + context embedding)."""
        return self.condition(theta, context).vector

    def _as_conditioning(self, theta: torch.Tensor | None, context: torch.Tensor | None,
                         cond: Conditioning | torch.Tensor | None) -> Conditioning:
        if cond is None:
            if theta is None:
                raise ValueError("needs θ or a precomputed cond")
            return self.condition(theta, context)
        return cond if isinstance(cond, Conditioning) else Conditioning(cond)

    # -- one step and rollouts ----------------------------------------------------------------

    def noise_shape(self, u: torch.Tensor) -> tuple[int, int, int, int]:
        """Shape of the latent noise for a field u [B, C, H, W] (the bottleneck's)."""
        return self.net.latent_shape(u)

    def step(self, u: torch.Tensor, theta: torch.Tensor | None = None,
             context: torch.Tensor | None = None,
             cond: Conditioning | torch.Tensor | None = None, *,
             latent_noise: torch.Tensor | None = None) -> torch.Tensor:
        """u_{t+1} [B, C, H, W] = u + Δ; give ``cond`` from ``condition`` (or a vector from
        ``embed``) or θ (and context).

        ``latent_noise`` [B, c_L, H/2^L, W/2^L] is added to the bottleneck (stochastic block).
        """
        self._check_field(u)
        c = self._as_conditioning(theta, context, cond)
        return self._step_cond(u, c.vector, self._step_context(c.field, c.gate), c.gain,
                               latent_noise)

    def _step_context(self, field: torch.Tensor | None, gate: torch.Tensor | None
                      ) -> StepContext | None:
        """The context field [B, 2C, H, W] and its gate [B, C] → ``StepContext`` (None
        without a field)."""
        if field is None:
            return None
        if gate is None:
            raise ValueError("a context field needs its extrapolation gate (use condition)")
        drift = field[:, :self.channels] * self.increment_std[:, None, None]
        return StepContext(self.net.context_term(field), gate[:, :, None, None] * drift)

    def _update(self, u: torch.Tensor, x: torch.Tensor, delta: torch.Tensor,
                ctx: StepContext | None, gain: torch.Tensor | None) -> torch.Tensor:
        """u + σ_f·(Δ + b·G_3·x + g·s·F_mean), x = (u − μ_f)/σ_f: the gated extrapolation only
        with a context field, the per-setting gain only with discrete θ slots."""
        if gain is not None:
            delta = delta + gain[:, :, None, None] * x
        if ctx is not None:
            delta = delta + ctx.drift
        return u + delta * self.field_std[:, None, None]

    def _net_pass(self, u: torch.Tensor, cond: torch.Tensor | Modulations,
                  ctx: StepContext | None, latent_noise: torch.Tensor | None
                  ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, list[torch.Tensor]]:
        """One U-AFNO pass on u [B, C, H, W]: (x = normalised u, Δ, bottleneck, skips)."""
        x = self.normalize(u)
        return x, *self.net.forward_with_features(x, cond, latent_noise, _stem(ctx))

    def _step_cond(self, u: torch.Tensor, cond: torch.Tensor | Modulations,
                   ctx: StepContext | None, gain: torch.Tensor | None,
                   latent_noise: torch.Tensor | None) -> torch.Tensor:
        x, delta, _, _ = self._net_pass(u, cond, ctx, latent_noise)
        return self._update(u, x, delta, ctx, gain)

    def _step_pooled(self, u: torch.Tensor, cond: torch.Tensor | Modulations,
                     ctx: StepContext | None, gain: torch.Tensor | None,
                     latent_noise: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """(u_{t+1} [B, C, H, W], the heads' pooled features of u_t [B, P]) from one pass."""
        x, delta, z, skips = self._net_pass(u, cond, ctx, latent_noise)
        return self._update(u, x, delta, ctx, gain), pool_features(z, skips)

    def _pool_state(self, u: torch.Tensor, cond: torch.Tensor | Modulations,
                    ctx: StepContext | None) -> torch.Tensor:
        """The heads' pooled features [B, P] of a state u [B, C, H, W] (encoder pass only)."""
        return pool_features(*self.net.encode(self.normalize(u), cond, _stem(ctx)))

    @staticmethod
    def _run(fn: Callable[..., Any], no_grad: bool, checkpoint: bool, *args: Any) -> Any:
        """fn(*args) under no_grad (warm-up), activation checkpointing, or plainly."""
        if no_grad:
            with torch.no_grad():
                return fn(*args)
        if checkpoint and torch.is_grad_enabled():
            return activation_checkpoint(fn, *args, use_reentrant=False)
        return fn(*args)

    def rollout(self, theta: torch.Tensor, u_start: torch.Tensor, steps: int,
                context: torch.Tensor | None = None, *, grad_window: int | None = None,
                checkpoint: bool = False, noise: bool = False,
                generator: torch.Generator | None = None,
                cond: Conditioning | torch.Tensor | None = None,
                grad_offset: int | None = None) -> torch.Tensor:
        """Autoregressive rollout → [B, steps + 1, C, H, W], X_start first.

        ``context``: the observed states u_0 … u_K [B, K + 1, C, H, W] (u_start is normally
        u_K); None or a single state: no context.

        Args:
            grad_window: W: the first steps − W updates run under ``no_grad`` (warm-up; their
                states do not require grad) and gradients flow only through the last W. None:
                every step keeps its graph.
            grad_offset: with ``grad_window``, the warm-up length: gradients flow through
                updates offset … offset + W − 1 only (later ones run under ``no_grad`` too);
                None: steps − W (the last W).
            checkpoint: recompute each grad-window step in the backward pass (activation
                checkpointing); same gradients, less memory.
            noise: add the stochastic block's latent noise; only when the config enables it.
                Noise is drawn here, before each (possibly checkpointed) step, from
                ``generator`` (or the global RNG).
            cond: a precomputed ``condition(theta, context)`` to reuse.
        """
        return self._rollout(theta, u_start, steps, context, grad_window, checkpoint, noise,
                             generator, cond, pooled=False, grad_offset=grad_offset)[0]

    def _rollout(self, theta: torch.Tensor, u_start: torch.Tensor, steps: int,
                 context: torch.Tensor | None, grad_window: int | None, checkpoint: bool,
                 noise: bool, generator: torch.Generator | None,
                 cond: Conditioning | torch.Tensor | None, pooled: bool,
                 grad_offset: int | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``rollout`` [B, steps + 1, C, H, W] and, when ``pooled``, the heads' pooled features
        of every state [B, steps + 1, P], taken from the steps' own encoder passes (the last
        state's from one more encoder pass) under the same gradient rule as the step."""
        if steps < 0:
            raise ValueError(f"steps must be non-negative, got {steps}")
        if grad_window is not None and grad_window < 0:
            raise ValueError(f"grad_window must be non-negative, got {grad_window}")
        self._check_field(u_start)
        vec, field, gate, gain = self._as_conditioning(theta, context, cond)
        # Once for every step (and its gradient window): neither changes along the rollout.
        mods = Modulations.of(self.net, vec)
        ctx = self._step_context(field, gate)
        warm, end = grad_span(steps, grad_window, grad_offset)
        noisy = noise and self.cfg.stochastic.enabled
        states, pools, u = [u_start], [], u_start
        for t in range(steps):
            eps = (draw_latent_noise(self.cfg.stochastic, t, self.noise_shape(u), u, generator)
                   if noisy else None)
            if pooled:
                u, feats = self._run(self._step_pooled, not warm <= t < end, checkpoint, u,
                                     mods, ctx, gain, eps)
                pools.append(feats)
            else:
                u = self._run(self._step_cond, not warm <= t < end, checkpoint, u, mods, ctx,
                              gain, eps)
            states.append(u)
        if not pooled:
            return torch.stack(states, dim=1), None
        pools.append(self._run(self._pool_state, not warm <= steps - 1 < end, checkpoint, u,
                               mods, ctx))
        return torch.stack(states, dim=1), torch.stack(pools, dim=1)

    def forward(self, theta: torch.Tensor, u_start: torch.Tensor, steps: int,
                context: torch.Tensor | None = None, *, grad_window: int | None = None,
                checkpoint: bool = False, noise: bool = False,
                generator: torch.Generator | None = None, grad_offset: int | None = None
                ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Rollout [B, steps + 1, C, H, W] and heads in one call: the unit DDP wraps, so
        every parameter's gradient is produced inside one forward.

        The heads read the features each step computed of its input state (equal to
        ``heads(u_start, θ, context, rollout)`` without a second encoder pass over the
        T + 1 states); their gradient reaches the encoder through the grad-window states only.
        """
        if steps < 1:
            raise ValueError(f"the heads need a rollout of at least 1 step, got {steps}")
        cond = self.condition(theta, context)
        rollout, pooled = self._rollout(theta, u_start, steps, context, grad_window, checkpoint,
                                        noise, generator, cond, pooled=True,
                                        grad_offset=grad_offset)
        return rollout, self.feature_heads.forward_pooled(pooled[:, 0], pooled[:, 1:],
                                                          cond.vector)

    # -- features and heads -------------------------------------------------------------------

    def get_intermediate_features(self, x: torch.Tensor, cond: Conditioning | torch.Tensor,
                                  extract_from: str = "all",
                                  skip_levels: Sequence[int] | None = None
                                  ) -> dict[str, torch.Tensor]:
        """Encoder + AFNO features of a field x [B, C, H, W] (normalised here).

        ``bottleneck`` [B, c_L, H/2^L, W/2^L]; ``skip_i`` [B, c_i, H/2^i, W/2^i] for the levels
        asked (default all; the paper preset has levels 0, 1, 2 at H, H/2, H/4).
        """
        self._check_field(x)
        c = self._as_conditioning(None, None, cond)
        return self.net.get_intermediate_features(self.normalize(x), c.vector, extract_from,
                                                  skip_levels, c.field)

    def heads(self, u_start: torch.Tensor, theta: torch.Tensor,
              context: torch.Tensor | None = None, rollout: torch.Tensor | None = None, *,
              cond: Conditioning | torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Feature heads → {"initial": [B, 42], "summary": [B, 128], "temporal": [B, 128]}.

        INITIAL reads the start state's bottleneck; SUMMARY the bottleneck and TEMPORAL the
        skips of the predicted states ``rollout[:, 1:]`` (T ≥ 1 of them). ``rollout`` is a
        [B, T + 1, C, H, W] output of ``rollout``; None: a deterministic rollout of ``horizon``
        steps. One batched encoder pass over T + 1 states (subsample time to save compute).
        """
        self._check_field(u_start)
        cond = self._as_conditioning(theta, context, cond)
        if rollout is None:
            if self.horizon is None:
                raise ValueError("heads needs a rollout, or a model built with a horizon")
            rollout = self.rollout(theta, u_start, self.horizon, cond=cond)
        if rollout.ndim != 5 or rollout.shape[1] < 2:
            raise ValueError(f"rollout has shape {tuple(rollout.shape)}, expected "
                             "[B, T + 1, C, H, W] with T ≥ 1")
        steps = rollout.shape[1] - 1
        fields = torch.cat([u_start[:, None], rollout[:, 1:]], dim=1)  # [B, T + 1, C, H, W]
        per_state = Conditioning(*(None if t is None else t.repeat_interleave(steps + 1, dim=0)
                                   for t in cond))
        feats = self.get_intermediate_features(fields.flatten(0, 1), per_state)
        start = {k: v.unflatten(0, (-1, steps + 1))[:, 0] for k, v in feats.items()}
        states = {k: v.unflatten(0, (-1, steps + 1))[:, 1:].flatten(0, 1)
                  for k, v in feats.items()}
        return self.feature_heads(start, states, cond.vector, steps)

    def num_parameters(self, trainable_only: bool = False) -> int:
        """Number of parameters (optionally only those with ``requires_grad``)."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad or not trainable_only)


class StepModule(nn.Module):
    """The ONNX-exported step: (theta, context_embedding, u[, context_field]) → u_next.

    Inputs:
        theta [B, P] float32: the stored unit θ row (constants at 0.5; masked inside).
        context_embedding [B, E] float32: from ``ContextModule`` (the exported encoder); all
            zeros for K = 0 (no context).
        context_field [B, 2C, H, W] float32, only for a model with a context encoder: from
            ``ContextModule``; all zeros for K = 0. Zeros give exactly the context-free step
            (bias-free conv, zero gate product).
        u [B, C, H, W] float32: the current state, in field units.
    Output:
        u_next [B, C, H, W]: one deterministic update (no latent noise).
    """

    def __init__(self, backbone: NOABackbone) -> None:
        super().__init__()
        self.backbone = backbone

    def forward(self, theta: torch.Tensor, context_embedding: torch.Tensor, u: torch.Tensor,
                context_field: torch.Tensor | None = None) -> torch.Tensor:
        b = self.backbone
        vec = b.theta_embedding(theta) + context_embedding
        gate = None if context_field is None else b.extrapolation_gate(theta, vec)
        return b.step(u, cond=Conditioning(vec, context_field, gate, b.setting_gain(theta)))


class ContextModule(nn.Module):
    """The ONNX-exported context encoder: context [B, K + 1, C, H, W] (u_0 … u_K in field
    units, 1 ≤ K ≤ ``context_max``) → (context_embedding [B, E], context_field [B, 2C, H, W])."""

    def __init__(self, backbone: NOABackbone) -> None:
        super().__init__()
        if backbone.context_encoder is None:
            raise ValueError("this model has no context encoder (model.context_max = 0)")
        self.backbone = backbone

    def forward(self, context: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        b = self.backbone
        return b.context_encoder(b.normalize(context), b.increment_std)
