"""`once`: an attribute computed on first read and then stored on the instance, like
functools.cached_property without the lock Python 3.11's takes on every first read (3.12 dropped
it). One invocation is one thread, and a status poll reads three of these."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, TypeVar, overload

T = TypeVar("T")


class once(Generic[T]):
    def __init__(self, build: Callable[[Any], T]):
        self.build = build
        self.name = getattr(build, "__name__", "")

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    @overload
    def __get__(self, instance: None, owner: type | None = None) -> once[T]: ...
    @overload
    def __get__(self, instance: object, owner: type | None = None) -> T: ...

    def __get__(self, instance: object | None, owner: type | None = None) -> T | once[T]:
        if instance is None:
            return self
        value = instance.__dict__[self.name] = self.build(instance)
        return value
