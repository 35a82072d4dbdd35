"""``pull_dataset``: the Phase 0 operator dataset and frozen tokenizer, verified and checked."""

from typing import NamedTuple

from kfp import dsl
from kfp.dsl import Dataset, Model, Output

from components import PROJECT_IMAGE


@dsl.component(base_image=PROJECT_IMAGE, install_kfp_package=False)
def pull_dataset(src: str, dataset: Output[Dataset], tokenizer: Output[Model],
                 tokenizer_src: str = "") -> NamedTuple(
                     "PullOutputs", [("dataset_sha256", str), ("tokenizer_sha256", str)]):
    """Pull ``src`` (``s3://bucket/prefix`` or a path: ``dataset.h5``, ``tokenizer/``,
    ``MANIFEST.json``) with every file verified against the manifest and the dataset
    schema-checked; ``tokenizer_src`` names a separate tokenizer prefix ('' = ``src/tokenizer``).
    S3 settings and credentials come from boto3's environment (Kubernetes Secrets)."""
    from collections import namedtuple

    from noa_core.data.phase0 import pull_phase0

    got = pull_phase0(src, dataset.path, tokenizer.path, tokenizer_src=tokenizer_src or None)
    dataset.metadata.update({"sha256": got["dataset_sha256"], "bytes": got["bytes"]})
    tokenizer.metadata["weights_sha256"] = got["tokenizer_sha256"]
    outputs = namedtuple("PullOutputs", ["dataset_sha256", "tokenizer_sha256"])
    return outputs(got["dataset_sha256"], got["tokenizer_sha256"])
