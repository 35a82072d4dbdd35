"""The trained tokenizer: contract metrics, train-only fitting, repeatability, safe loading."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from noa_core.errors import TokenizerError
from noa_core.features.extract import FeatureExtractor, feature_window, tokenizer_input
from noa_core.features.schema import feature_schema
from noa_core.tokenizer.tokenizer import Tokenizer
from noa_core.tokenizer.train import train_tokenizer


def _features(dataset: Path, horizon: int = 16):
    with h5py.File(dataset, "r") as f:
        traj = torch.from_numpy(f["outputs/fields"][:6])
    window = feature_window(traj, 0, horizon)
    return FeatureExtractor(feature_schema(horizon))(window), window


def test_checkpoint_has_the_contract_files_and_metrics(trained_tokenizer: Path) -> None:
    names = sorted(p.name for p in trained_tokenizer.iterdir())
    assert names == ["config.yaml", "history.json", "metrics.json", "weights.pt"]
    m = json.loads((trained_tokenizer / "metrics.json").read_text())
    assert m["recon_mse"] >= 0 and 0 < m["utilization"] <= 1 and m["perplexity"] >= 1
    assert len(m["per_codebook"]) == m["num_codebooks"] == 3 * m["preprocessing"][
        "num_categories"]


def test_test_split_never_reaches_the_fit(tok_dataset: Path, trained_tokenizer: Path,
                                          tmp_path: Path) -> None:
    """Corrupting every test-split trajectory leaves the trained tokenizer bit-identical.

    This also shows that training repeats exactly with the same seed (a fresh run here).
    """
    corrupt = tmp_path / "corrupt.h5"
    shutil.copy(tok_dataset, corrupt)
    with h5py.File(corrupt, "r+") as f:
        split = f["metadata/split"].asstr()[()]
        test_rows = np.flatnonzero(split == "test")
        assert test_rows.size > 0
        out = f["outputs/fields"]
        for i in test_rows:
            out[i] = out[i] * 1000.0 + 7.0
    again = tmp_path / "tok"
    train_tokenizer(corrupt, again, progress=False)
    a = torch.load(trained_tokenizer / "weights.pt", weights_only=True)
    b = torch.load(again / "weights.pt", weights_only=True)
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    ma = json.loads((trained_tokenizer / "metrics.json").read_text())
    mb = json.loads((again / "metrics.json").read_text())
    for key in ("recon_mse", "utilization", "perplexity"):
        assert ma[key] == mb[key]


def test_tokens_are_identical_after_loading_in_a_new_process(tok_dataset: Path,
                                                             trained_tokenizer: Path,
                                                             tmp_path: Path) -> None:
    feats, _ = _features(tok_dataset)
    tokens = Tokenizer.from_checkpoint(trained_tokenizer).tokens(feats)
    torch.save({"initial": feats.initial, "temporal": feats.temporal,
                "per": feats.summary_per_realization, "summary": feats.summary},
               tmp_path / "f.pt")
    code = textwrap.dedent(f"""
        import torch
        from noa_core.features.extract import Features
        from noa_core.tokenizer.tokenizer import Tokenizer
        d = torch.load({str(tmp_path / "f.pt")!r}, weights_only=True)
        f = Features(d["initial"], d["temporal"], d["per"], d["summary"])
        tok = Tokenizer.from_checkpoint({str(trained_tokenizer)!r})
        print(tok.tokens(f).tolist())
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=120).stdout
    assert json.loads(out) == tokens.tolist()


def test_frozen_tokenizer_passes_gradients_to_its_input(tok_dataset: Path,
                                                        trained_tokenizer: Path) -> None:
    tok = Tokenizer.from_checkpoint(trained_tokenizer)
    assert not any(p.requires_grad for p in tok.parameters()) and not tok.training
    _, window = _features(tok_dataset)
    window = window.clone().requires_grad_(True)
    feats = FeatureExtractor(feature_schema(16))(window)
    z = torch.cat(tok.latents(feats), 1)
    emb = tok.family_embeddings(feats, window[:, :, 0].mean(1))
    assert {k: v.shape[1] for k, v in emb.items()} == {"initial": 42, "summary": 128,
                                                       "temporal": 128}
    (z.pow(2).sum() + sum(v.sum() for v in emb.values())).backward()
    assert torch.isfinite(window.grad).all() and float(window.grad.abs().sum()) > 0


def test_loaded_fit_statistics_are_the_ones_applied(tok_dataset: Path,
                                                    trained_tokenizer: Path) -> None:
    """A loaded tokenizer's ``fit_info`` carries the statistics its preprocessing applies
    (they live in the weights file, not the YAML): clipping to its bounds and z-scoring with
    its mean and std reproduces ``normalise`` on real features."""
    tok = Tokenizer.from_checkpoint(trained_tokenizer)
    feats, _ = _features(tok_dataset)
    fit = tok.fit_info
    x = tokenizer_input(feats).double().numpy()[:, fit.kept]
    x = np.where(np.isfinite(x), x, fit.median)
    expected = (np.clip(x, fit.clip_low, fit.clip_high) - fit.mean) / fit.std
    assert np.all(fit.clip_high >= fit.clip_low) and np.any(fit.clip_high > fit.clip_low)
    np.testing.assert_allclose(tok.normalise(feats).double().numpy(), expected,
                               rtol=1e-5, atol=1e-5)


def test_a_different_feature_schema_is_refused_naming_both(trained_tokenizer: Path) -> None:
    tok = Tokenizer.from_checkpoint(trained_tokenizer)
    other = feature_schema(8)
    with pytest.raises(TokenizerError) as info:
        tok.check_schema(other)
    msg = str(info.value)
    assert other.describe() in msg and tok.schema.describe() in msg


def test_unsafe_or_incomplete_checkpoints_are_refused(trained_tokenizer: Path,
                                                      tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(trained_tokenizer, broken)
    (broken / "history.json").unlink()
    with pytest.raises(TokenizerError, match=r"missing file.*history\.json"):
        Tokenizer.from_checkpoint(broken)

    class Payload:  # any object a pickle could run code through
        def __reduce__(self):
            return (print, ("this must never run",))

    evil = tmp_path / "evil"
    shutil.copytree(trained_tokenizer, evil)
    torch.save({"x": Payload()}, evil / "weights.pt")
    with pytest.raises(TokenizerError, match="refused"):
        Tokenizer.from_checkpoint(evil)


def test_replay_with_tokenizer_stores_features_and_tokens_and_merges(
        tok_dataset: Path, trained_tokenizer: Path, tmp_path: Path) -> None:
    from noa_core.cli import main
    from noa_core.features.io import read_features
    from noa_core.tokenizer.ground_truth import TOKENS

    parts = []
    for i in range(2):
        parts.append(tmp_path / f"p{i}.h5")
        assert main(["replay", "--dataset", str(tok_dataset), "--out", str(parts[-1]),
                     "--split", "train", "--shard", f"{i}/2", "--tokenizer",
                     str(trained_tokenizer), "--no-progress"]) == 0
    merged = tmp_path / "merged.h5"
    assert main(["replay", "merge", *map(str, parts), "--out", str(merged)]) == 0
    whole = tmp_path / "whole.h5"
    assert main(["replay", "--dataset", str(tok_dataset), "--out", str(whole), "--split",
                 "train", "--tokenizer", str(trained_tokenizer), "--no-progress"]) == 0
    with h5py.File(merged, "r") as a, h5py.File(whole, "r") as b:
        assert np.array_equal(a[TOKENS][()], b[TOKENS][()])
        assert a[TOKENS].shape[1] == len(Tokenizer.from_checkpoint(
            trained_tokenizer).codebook_sizes)
    feats, _ = read_features(merged)
    tok = Tokenizer.from_checkpoint(trained_tokenizer)
    with h5py.File(merged, "r") as f:
        assert torch.equal(tok.tokens(feats), torch.from_numpy(f[TOKENS][()]))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["merged.h5", "p0.h5", "p1.h5",
                                                          "whole.h5"]
