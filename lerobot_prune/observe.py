"""Call observers: in-process tools see every pruned inference call without patching LeRobot.

A pruned policy calls `notify_call(self, batch)` at the end of each `predict_action_chunk`, after
`policy.model.last_selection` / `last_view` and `policy.report` describe that call. Tools that run
LeRobot's own loops (`lerobot-prune eval`, `sweep`, `visualize`) register an observer for the duration
of the run; with none registered the hook costs one empty-list check.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from torch import Tensor

CallObserver = Callable[[object, dict[str, Tensor]], None]
_OBSERVERS: list[CallObserver] = []


@contextmanager
def observe_calls(observer: CallObserver) -> Iterator[CallObserver]:
    """Calls `observer(policy, batch)` after every pruned inference call made inside the block.

    `batch` is the preprocessed batch the policy predicted from (images `[B, 3, H, W]` in [0, 1]).
    """
    _OBSERVERS.append(observer)
    try:
        yield observer
    finally:
        _OBSERVERS.remove(observer)


def notify_call(policy, batch: dict[str, Tensor]) -> None:
    for observer in list(_OBSERVERS):
        observer(policy, batch)
