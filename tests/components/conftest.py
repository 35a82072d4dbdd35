"""Each component's body, called in-process (its ``python_func``) on real artifacts: a 18-operator
Phase 0 made by ``noa bootstrap``, then the chain pull → replay ×2 → merge → train → evaluate →
export → register, against a local MLflow store (sqlite). The same bodies run in pods and in
``kfp.local`` (tests/pipelines); here each one is checked on its own.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from component_chain import JOB, MODEL, NUM_OPERATORS, Chain, run_register, run_train
from fast_artifacts import FAST_CRITERIA
from fast_artifacts import FAST_TRAINING as FAST
from kfp import dsl

from noa_core.dynamics.rollout import fixed_num_threads


@pytest.fixture(scope="session", autouse=True)
def _one_thread() -> Iterator[None]:
    """One intra-op torch thread: on 2 shared cores, two threads mostly wait on each other."""
    with fixed_num_threads(1):
        yield


@pytest.fixture(scope="session")
def phase0(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(Phase 0 directory, fast config): dataset.h5, tokenizer/, MANIFEST.json."""
    from noa_core.tokenizer.bootstrap import bootstrap

    root = tmp_path_factory.mktemp("phase0")
    config = root / "fast.yaml"
    config.write_text(FAST)
    bootstrap(config, root / "phase0", num_samples=NUM_OPERATORS, progress=False)
    return root / "phase0", config


@pytest.fixture(scope="session")
def chain(phase0: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> Chain:
    root = tmp_path_factory.mktemp("chain")
    (root / "artifacts").mkdir()
    criteria = root / "criteria.yaml"
    criteria.write_text(FAST_CRITERIA)
    return Chain(root=root, config=phase0[1], criteria=criteria,
                 tracking_uri=f"sqlite:///{root / 'mlflow.db'}", outputs={}, artifacts={})


@pytest.fixture(scope="session")
def pulled(chain: Chain, phase0: tuple[Path, Path]) -> Chain:
    from components.pull_dataset import pull_dataset

    dataset, tokenizer = chain.new(dsl.Dataset, "dataset"), chain.new(dsl.Model, "tokenizer")
    chain.outputs["pull"] = pull_dataset.python_func(src=str(phase0[0]), dataset=dataset,
                                                     tokenizer=tokenizer, tokenizer_src="")
    chain.artifacts.update(dataset=dataset, tokenizer=tokenizer)
    return chain


@pytest.fixture(scope="session")
def replayed(pulled: Chain) -> Chain:
    from components.cno_replay import cno_replay, plan_replay_shards

    shards = plan_replay_shards.python_func(num_shards=2)
    parts, counts = [], []
    for i, shard in enumerate(shards):
        part = pulled.new(dsl.Dataset, f"replay-{i}")
        counts.append(cno_replay.python_func(dataset=pulled.artifacts["dataset"],
                                             tokenizer=pulled.artifacts["tokenizer"],
                                             shard=shard, replay=part))
        parts.append(part)
    pulled.outputs["replay"] = counts
    pulled.artifacts["parts"] = parts  # type: ignore[assignment]
    return pulled


@pytest.fixture(scope="session")
def merged(replayed: Chain) -> Chain:
    from components.merge_replay import merge_replay

    replay = replayed.new(dsl.Dataset, "replay")
    replayed.outputs["merge"] = merge_replay.python_func(parts=replayed.artifacts["parts"],
                                                         replay=replay)
    replayed.artifacts["replay"] = replay
    return replayed


@pytest.fixture(scope="session")
def trained(merged: Chain) -> Chain:
    out, checkpoint, metrics, curves = run_train(merged, JOB, "checkpoint")
    merged.outputs["train"] = out
    merged.artifacts.update(checkpoint=checkpoint, train_metrics=metrics, train_curves=curves)
    return merged


@pytest.fixture(scope="session")
def scored(trained: Chain) -> Chain:
    from components.evaluate import evaluate

    arts = {k: trained.new(kind, k) for k, kind in (
        ("eval_metrics", dsl.Metrics), ("report", dsl.Markdown), ("report_html", dsl.HTML),
        ("gate", dsl.Artifact))}
    trained.outputs["evaluate"] = evaluate.python_func(
        checkpoint=trained.artifacts["checkpoint"], replay=trained.artifacts["replay"],
        tokenizer=trained.artifacts["tokenizer"], tracking_uri=trained.tracking_uri,
        run_id=trained.outputs["train"].mlflow_run_id, metrics=arts["eval_metrics"],
        report=arts["report"], report_html=arts["report_html"], gate=arts["gate"],
        criteria=str(trained.criteria), champion_model=MODEL)
    trained.artifacts.update(arts)
    return trained


@pytest.fixture(scope="session")
def exported(scored: Chain) -> Chain:
    from components.export_onnx import export_onnx

    onnx = scored.new(dsl.Model, "onnx")
    scored.outputs["export"] = export_onnx.python_func(
        checkpoint=scored.artifacts["checkpoint"], replay=scored.artifacts["replay"],
        tracking_uri=scored.tracking_uri, run_id=scored.outputs["train"].mlflow_run_id,
        onnx=onnx)
    scored.artifacts["onnx"] = onnx
    return scored


@pytest.fixture(scope="session")
def registered(exported: Chain) -> Chain:
    exported.outputs["register"] = run_register(exported)
    return exported


@pytest.fixture(scope="session")
def promoted(registered: Chain) -> Chain:
    from components.promote import promote

    registered.outputs["promote"] = promote.python_func(
        model_name=MODEL, version=registered.outputs["register"],
        tracking_uri=registered.tracking_uri, pipeline_run_id=JOB)
    return registered
