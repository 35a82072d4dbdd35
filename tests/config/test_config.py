"""Typed configuration: presets, `extends`, and errors that name the file, the key and the need."""

from __future__ import annotations

from pathlib import Path

import pytest

from noa_core.config import PRESETS, dump_config, load_config
from noa_core.dynamics.parameters import ThetaSpace
from noa_core.errors import ConfigError

# Sizes and θ ranges of ARCHITECTURE.md, per preset.
SIZES = {
    "tiny": dict(grid=16, channels=2, H=16, K=2, M=2, N=48, split=(32, 8, 8),
                 L=(2, 3), c=(4, 8), k=[3]),
    "small": dict(grid=32, channels=3, H=64, K=4, M=3, N=512, split=(384, 64, 64),
                  L=(2, 3), c=(8, 16), k=[3, 5]),
    "paper": dict(grid=64, channels=3, H=64, K=8, M=2, N=4096, split=None,
                  L=(2, 5), c=(16, 64), k=[3, 5, 7]),
}


@pytest.mark.parametrize("name", PRESETS)
def test_presets_have_the_documented_sizes(name: str) -> None:
    cfg, want = load_config(name), SIZES[name]
    d = cfg.dynamics
    assert (d.grid, d.channels, d.feature_horizon, d.context_max, d.realizations) == (
        want["grid"], want["channels"], want["H"], want["K"], want["M"])
    assert d.steps == want["K"] + want["H"]
    assert cfg.dataset.num_samples == want["N"]
    if want["split"]:
        block = cfg.dataset.split.block
        parts = (cfg.dataset.split.train, cfg.dataset.split.val, cfg.dataset.split.test)
        assert tuple(p * want["N"] // block for p in parts) == want["split"]
    space = ThetaSpace(cfg.parameter_space, d)
    assert space.dim == 12
    lo, hi = space.values([0.0] * 12), space.values([1.0] * 12)
    assert (lo["num_layers"], hi["num_layers"]) == want["L"]
    assert (lo["base_channels"], hi["base_channels"]) == want["c"]
    ks = sorted({space.values([u] * 12)["kernel_size"] for u in (0.0, 0.4, 0.6, 1.0)})
    assert ks == want["k"]


def test_extends_overrides_one_key_and_keeps_the_rest(tmp_path: Path) -> None:
    f = tmp_path / "mine.yaml"
    f.write_text("extends: small\ndataset: {num_samples: 64}\n")
    cfg = load_config(f)
    assert cfg.dataset.num_samples == 64 and cfg.dynamics.grid == 32
    assert load_config(f) == cfg  # and dump → load round-trips
    g = tmp_path / "dumped.yaml"
    g.write_text(dump_config(cfg))
    assert load_config(g) == cfg


def _write(tmp_path: Path, text: str) -> Path:
    f = tmp_path / "bad.yaml"
    f.write_text(text)
    return f


def _error(tmp_path: Path, text: str) -> str:
    f = _write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(f)
    msg = str(info.value)
    assert str(f) in msg
    return msg


def test_unknown_key_is_named(tmp_path: Path) -> None:
    msg = _error(tmp_path, "extends: tiny\ndynamics: {gird: 16}\n")
    assert "dynamics.gird" in msg and "Extra inputs are not permitted" in msg


def test_wrong_type_is_named(tmp_path: Path) -> None:
    msg = _error(tmp_path, "extends: tiny\ndataset: {num_samples: many}\n")
    assert "dataset.num_samples" in msg and "'many'" in msg and "integer" in msg


def test_inverted_bounds_are_named(tmp_path: Path) -> None:
    msg = _error(tmp_path, "extends: tiny\nparameter_space:\n  architecture:\n"
                           "    base_channels: {type: integer, bounds: [8, 4]}\n")
    assert "parameter_space.architecture.base_channels" in msg
    assert "lower bound 8 is above upper bound 4" in msg


def test_inert_slot_cannot_be_sampled(tmp_path: Path) -> None:
    msg = _error(tmp_path, "extends: tiny\nparameter_space:\n  architecture:\n"
                           "    dropout_rate: {type: continuous, bounds: [0.0, 0.3]}\n")
    assert "dropout_rate" in msg and "eval mode" in msg


def test_single_value_slot_must_be_constant(tmp_path: Path) -> None:
    msg = _error(tmp_path, "extends: tiny\nparameter_space:\n  architecture:\n"
                           "    kernel_size: {type: choice, choices: [3]}\n")
    assert "declare the slot `constant`" in msg


def test_weights_must_sum_to_one(tmp_path: Path) -> None:
    msg = _error(tmp_path, "extends: tiny\ninitial_conditions:\n  weights: {grf: 0.5}\n")
    assert "initial_conditions" in msg and "sum to 1" in msg


def test_levels_must_divide_the_grid(tmp_path: Path) -> None:
    # tiny: grid 16; 4 levels halve it to 1, 5 would need a grid divisible by 32
    load_config(_write(tmp_path, "extends: tiny\nmodel: {levels: 4}\n"))
    msg = _error(tmp_path, "extends: tiny\nmodel: {levels: 5}\n")
    assert "model.levels 5" in msg and "divisible by 32, got 16" in msg


def test_invalid_yaml_names_the_line(tmp_path: Path) -> None:
    msg = _error(tmp_path, "dynamics:\n  grid: [16\n")
    assert "line" in msg and "invalid YAML" in msg


def test_missing_file_and_loops_are_clear(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such config file"):
        load_config(tmp_path / "nope.yaml")
    (tmp_path / "a.yaml").write_text("extends: b.yaml\n")
    (tmp_path / "b.yaml").write_text("extends: a.yaml\n")
    with pytest.raises(ConfigError, match="loops"):
        load_config(tmp_path / "a.yaml")


def test_every_shipped_config_file_loads() -> None:
    files = sorted((Path(__file__).parents[2] / "configs").glob("*.yaml"))
    assert files, "configs/ ships example files"
    for f in files:
        cfg = load_config(f)
        assert cfg.name == f.stem
