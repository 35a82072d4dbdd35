"""``pull_dataset``: verified, schema-checked, all or nothing."""

from __future__ import annotations

from pathlib import Path

import pytest
from component_chain import Chain
from kfp import dsl

from components.pull_dataset import pull_dataset
from noa_core.data.manifest import MANIFEST_NAME, sha256_file
from noa_core.errors import StorageError


def test_pull_places_the_dataset_and_the_tokenizer(pulled: Chain, phase0: tuple[Path, Path]
                                                   ) -> None:
    dataset = Path(pulled.artifacts["dataset"].path)
    tokenizer = Path(pulled.artifacts["tokenizer"].path)
    assert sha256_file(dataset) == sha256_file(phase0[0] / "dataset.h5")
    assert pulled.outputs["pull"].dataset_sha256 == sha256_file(dataset)
    assert pulled.outputs["pull"].tokenizer_sha256 == sha256_file(tokenizer / "weights.pt")
    assert sorted(p.name for p in tokenizer.iterdir()) == sorted(
        p.name for p in (phase0[0] / "tokenizer").iterdir())
    assert pulled.artifacts["dataset"].metadata["sha256"] == sha256_file(dataset)
    # nothing of the staging area is left beside the outputs
    assert not list(dataset.parent.glob(".phase0-*"))


def test_a_corrupt_source_leaves_no_output(tmp_path: Path, phase0: tuple[Path, Path]) -> None:
    import shutil

    src = tmp_path / "src"
    shutil.copytree(phase0[0], src)
    with open(src / "dataset.h5", "r+b") as fh:  # same size, other bytes
        fh.seek(4096)
        fh.write(b"\xff" * 16)
    dataset = dsl.Dataset(name="d", uri=str(tmp_path / "out" / "dataset"), metadata={})
    tokenizer = dsl.Model(name="t", uri=str(tmp_path / "out" / "tokenizer"), metadata={})
    with pytest.raises(StorageError, match=r"dataset\.h5"):
        pull_dataset.python_func(src=str(src), dataset=dataset, tokenizer=tokenizer,
                                 tokenizer_src="")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == []


def test_a_source_without_manifest_is_refused(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    dataset = dsl.Dataset(name="d", uri=str(tmp_path / "out" / "dataset"), metadata={})
    tokenizer = dsl.Model(name="t", uri=str(tmp_path / "out" / "tokenizer"), metadata={})
    with pytest.raises(StorageError, match=MANIFEST_NAME):
        pull_dataset.python_func(src=str(tmp_path / "src"), dataset=dataset,
                                 tokenizer=tokenizer, tokenizer_src="")
    assert not Path(dataset.path).exists() and not Path(tokenizer.path).exists()
