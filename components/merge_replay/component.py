"""``merge_replay``: the replay shards fanned out by ``dsl.ParallelFor``, merged into one file."""


from kfp import dsl
from kfp.dsl import Dataset, Input, Output

from components import PROJECT_IMAGE


@dsl.component(base_image=PROJECT_IMAGE, install_kfp_package=False)
def merge_replay(parts: Input[list[Dataset]], replay: Output[Dataset]) -> int:
    """``noa replay merge PART... --out FILE``: ordered by sample id; refuses shards of another
    source or settings, overlaps and missing shards. Returns the number of operators."""
    from noa_core.data.replay_stage import merge_replays

    summary = merge_replays([p.path for p in parts], replay.path)
    replay.metadata.update({"operators": int(summary["num_samples"]),
                            "shards": int(summary["num_parts"])})
    return int(summary["num_samples"])
