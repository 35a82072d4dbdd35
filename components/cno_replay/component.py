"""``cno_replay``: one shard of the ground truth (``noa replay --shard I/N --tokenizer DIR``), and
``plan_replay_shards``, the list ``dsl.ParallelFor`` fans out over."""


from kfp import dsl
from kfp.dsl import Dataset, Input, Model, Output

from components import PROJECT_IMAGE


@dsl.component(base_image=PROJECT_IMAGE, install_kfp_package=False)
def plan_replay_shards(num_shards: int) -> list[str]:
    """``["0/N", "1/N", ..., "N-1/N"]``: the shards ``cno_replay`` runs in parallel."""
    if num_shards < 1:
        raise ValueError(f"replay_shards = {num_shards}: expected at least 1")
    return [f"{i}/{num_shards}" for i in range(num_shards)]


@dsl.component(base_image=PROJECT_IMAGE, install_kfp_package=False)
def cno_replay(dataset: Input[Dataset], tokenizer: Input[Model], shard: str,
               replay: Output[Dataset], split: str = "all", gpus: int = 0) -> int:
    """Replay shard ``I/N`` of ``split``: K_max + H steps, M realizations, bit-identical to
    generation, with ground-truth features and tokens from the frozen ``tokenizer``. Returns the
    number of operators replayed. ``gpus`` > 0 replays on CUDA (the task was granted a GPU);
    0 uses the configuration's device."""
    from noa_core.cli.args import shard as parse_shard
    from noa_core.tokenizer.ground_truth import replay_with_ground_truth

    summary = replay_with_ground_truth(dataset.path, replay.path, tokenizer.path, split=split,
                                       shard=parse_shard(shard),
                                       device="cuda" if gpus > 0 else None,
                                       progress=False)
    replay.metadata.update({"shard": shard, "split": split,
                            "operators": int(summary["num_samples"])})
    return int(summary["num_samples"])
