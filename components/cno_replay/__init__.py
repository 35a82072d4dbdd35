from components.cno_replay.component import cno_replay, plan_replay_shards

__all__ = ["cno_replay", "plan_replay_shards"]
