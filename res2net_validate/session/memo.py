"""Per-object memoisation keyed by every argument, so a call with other arguments is never served
an answer computed for different ones."""

from __future__ import annotations

import functools
from collections.abc import Hashable


def _key(arg):
    # Scored image sets and artifacts are mutable dataclasses (unhashable): they are keyed by identity,
    # and the memo entry keeps them alive so that an id is never reused while its answer is stored.
    return arg if isinstance(arg, Hashable) else ("object", id(arg))


def memoised(method):
    """Cache ``method``'s result per instance and per argument tuple; exceptions are not cached."""
    name = method.__name__

    @functools.wraps(method)
    def wrapper(self, *args):
        memo = self.__dict__.setdefault("_memo", {})
        key = (name, *map(_key, args))
        if key not in memo:
            memo[key] = (args, method(self, *args))
        return memo[key][1]

    return wrapper


def was_computed(instance, method_name: str) -> bool:
    """Whether ``instance.method_name`` has already answered (for notes that exist only once it ran)."""
    return any(key[0] == method_name for key in instance.__dict__.get("_memo", {}))
