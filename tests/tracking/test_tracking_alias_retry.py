"""An alias write that collides with a concurrent writer of the same alias (the store's
uniqueness constraint) is retried; any other error is not. The collision itself is timing-bound,
so a stand-in client replays the store's answers here; the racing-promotions test runs the real
server."""

from __future__ import annotations

import pytest
from mlflow.exceptions import MlflowException

from noa_core.tracking.registry import ALIAS_ATTEMPTS, set_alias

COLLISION = ("(sqlite3.IntegrityError) UNIQUE constraint failed: registered_model_aliases.name, "
             "registered_model_aliases.alias")


class Store:
    """Answers each alias write with the next of ``answers`` (None: accepted)."""

    def __init__(self, answers: list[str | None]) -> None:
        self.answers, self.writes = list(answers), 0

    def set_registered_model_alias(self, name: str, alias: str, version: str) -> None:
        self.writes += 1
        answer = self.answers.pop(0)
        if answer is not None:
            raise MlflowException(answer)


def test_a_collision_is_retried_until_the_write_lands() -> None:
    store = Store([COLLISION, COLLISION, None])
    set_alias(store, "m", "champion", "2")
    assert store.writes == 3


def test_other_errors_and_endless_collisions_are_raised() -> None:
    store = Store(["RESOURCE_DOES_NOT_EXIST: no such version"])
    with pytest.raises(MlflowException, match="no such version"):
        set_alias(store, "m", "champion", "9")
    assert store.writes == 1
    store = Store([COLLISION] * ALIAS_ATTEMPTS)
    with pytest.raises(MlflowException, match="UNIQUE constraint"):
        set_alias(store, "m", "champion", "2")
    assert store.writes == ALIAS_ATTEMPTS
