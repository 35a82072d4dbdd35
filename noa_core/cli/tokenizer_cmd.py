"""``noa tokenizer train`` and ``noa bootstrap``."""

from __future__ import annotations

import argparse
from pathlib import Path

from noa_core.cli.args import add_progress, non_negative, positive


def _cmd_train(a: argparse.Namespace) -> int:
    from noa_core.tokenizer.train import train_tokenizer

    m = train_tokenizer(a.dataset, a.out, config=a.config, progress=a.progress)
    print(f"wrote {a.out}: {m['num_codebooks']} codebooks over "
          f"{m['preprocessing']['num_categories']} categories; val recon MSE "
          f"{m['recon_mse']:.4f}, utilization {m['utilization']:.3f}, perplexity "
          f"{m['perplexity']:.2f}, {m['seconds']:.0f} s")
    return 0


def _cmd_bootstrap(a: argparse.Namespace) -> int:
    from noa_core.tokenizer.bootstrap import bootstrap

    s = bootstrap(a.preset, a.out, num_samples=a.n, seed=a.seed, progress=a.progress)
    m = s["tokenizer"]
    print(f"wrote {a.out}: dataset.h5 ({s['num_samples']} operators), tokenizer/ (val recon "
          f"MSE {m['recon_mse']:.4f}, utilization {m['utilization']:.3f}), MANIFEST.json "
          f"({s['manifest_files']} files), {s['seconds']:.0f} s")
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    tok = sub.add_parser("tokenizer", help="train the Phase 0 tokenizer (VQ-VAE + family encoders)")
    tsub = tok.add_subparsers(dest="action", required=True, metavar="ACTION")
    t = tsub.add_parser(
        "train", help="fit preprocessing on train, train VQ-VAE and family encoders",
        description="Extract the behavioural features of the window [K_max, K_max + H] of every "
                    "stored trajectory, fit cleaning, categories and normalisation on the train "
                    "split only, train the categorical hierarchical VQ-VAE and the three family "
                    "encoders with early stopping on the val split, and write DIR (config.yaml, "
                    "weights.pt, metrics.json, history.json).")
    t.add_argument("--dataset", required=True, type=Path, metavar="FILE")
    t.add_argument("--out", required=True, type=Path, metavar="DIR")
    t.add_argument("--config", default=None, metavar="CFG",
                   help="configuration (default: the one stored in the dataset)")
    add_progress(t)
    t.set_defaults(func=_cmd_train)

    b = sub.add_parser(
        "bootstrap", help="Phase 0 stand-ins: dataset.h5 + tokenizer/ + MANIFEST.json",
        description="Generate the operator dataset of a preset with its features, train its "
                    "tokenizer, and write MANIFEST.json (sha256 and size of every file): what "
                    "the pipeline pulls from object storage.")
    b.add_argument("--preset", required=True, metavar="PRESET",
                   help="tiny, small, paper, or a YAML config")
    b.add_argument("--out", required=True, type=Path, metavar="DIR")
    b.add_argument("--n", type=positive, default=None, help="operators (default: the preset's)")
    b.add_argument("--seed", type=non_negative, default=None, help="dataset seed")
    add_progress(b)
    b.set_defaults(func=_cmd_bootstrap)
