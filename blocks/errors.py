"""Errors raised while building or checking a stack. Each names the node by its path."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    """One problem found in a config: the key it concerns and what is wrong with it."""

    key: str
    message: str

    def __str__(self) -> str:
        return f"{self.key}: {self.message}" if self.key else self.message


class ConfigError(ValueError):
    """A config (stack, addon, placement) is invalid. Carries every problem found."""

    def __init__(self, problems: list[Problem]):
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


class StackError(ConfigError):
    """The `stack` (or `frontend`) tree cannot be built."""


class RequestError(ValueError):
    """A request asks for what the voice cannot do (a speaker it lacks, a speed it cannot
    change). Names the request field; `status` is the HTTP status the service answers with."""

    status = 400

    def __init__(self, field: str, message: str):
        self.field = field
        super().__init__(f"{field}: {message}")

    def __reduce__(self):  # survives pickling across Ray processes
        return (type(self), (self.field, str(self).split(": ", 1)[1]))
