from components.merge_replay.component import merge_replay

__all__ = ["merge_replay"]
