"""Model registry: a plain dict from ``model.name`` to a builder, and ``build_model``."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from noa_core.config import ModelConfig, NOAConfig
from noa_core.errors import ConfigError
from noa_core.models.backbone import NOABackbone

Builder = Callable[..., NOABackbone]

MODELS: dict[str, Builder] = {
    "u_afno": NOABackbone,
}


def model_inputs(cfg: NOAConfig) -> tuple[int, tuple[int, int, int]]:
    """(θ slots P, state shape [C, H, W]) of the model ``build_model(cfg)`` builds."""
    from noa_core.dynamics.parameters import ThetaSpace

    d = cfg.dynamics
    return ThetaSpace(cfg.parameter_space, d).dim, (d.channels, d.grid, d.grid)


def build_model(cfg: NOAConfig | ModelConfig, channels: int | None = None,
                theta_dim: int | None = None, theta_mask: Sequence[bool] | None = None,
                horizon: int | None = None) -> NOABackbone:
    """Build the NOA from a whole config (sizes and θ mask taken from it) or a model section.

    With an ``NOAConfig``: C = ``dynamics.channels``, P and the mask from the θ declaration,
    the horizon = ``dynamics.feature_horizon``, the discrete slots' edges from the θ
    declaration; explicit arguments override them.
    """
    theta_edges: list[list[float]] | None = None
    rule_slot: int | None = None
    if isinstance(cfg, NOAConfig):
        from noa_core.dynamics.parameters import ThetaSpace

        space = ThetaSpace(cfg.parameter_space, cfg.dynamics)
        sampled = set(space.sampled)
        channels = cfg.dynamics.channels if channels is None else channels
        theta_dim = space.dim if theta_dim is None else theta_dim
        if theta_mask is None and theta_dim == space.dim:
            theta_mask = [i in sampled for i in range(space.dim)]
        if theta_dim == space.dim:
            theta_edges = space.edges()
            rule_slot = _rule_slot(cfg.model.rule_slot, space)
        horizon = cfg.dynamics.feature_horizon if horizon is None else horizon
        cfg = cfg.model
    if channels is None or theta_dim is None:
        raise ConfigError("build_model from a model section needs channels and theta_dim")
    if cfg.name not in MODELS:
        raise ConfigError(f"model.name {cfg.name!r} is unknown; known: {', '.join(MODELS)}")
    return MODELS[cfg.name](cfg, channels, theta_dim, theta_mask, horizon, theta_edges,
                            rule_slot)


def _rule_slot(name: str | None, space: Any) -> int | None:
    """Index of ``model.rule_slot`` in θ; it must be a sampled discrete slot."""
    if name is None:
        return None
    if name not in space.names:
        raise ConfigError(f"model.rule_slot {name!r} is not a θ slot; slots: "
                          f"{', '.join(space.names)}")
    i = space.names.index(name)
    if i not in space.sampled or not space.edges()[i]:
        raise ConfigError(f"model.rule_slot {name!r} must be a sampled discrete slot (integer, "
                          "choice or boolean with more than one setting)")
    return i
