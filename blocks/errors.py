"""Errors raised while building or checking a stack. Each names the node by its path."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Problem:
    """One problem found in a config: the key it concerns and what is wrong with it."""

    key: str
    message: str

    def __str__(self) -> str:
        return f"{self.key}: {self.message}" if self.key else self.message


#: Pydantic's wordings that a config's or request's author would not recognise, in plainer words.
_WORDING = {"extra_forbidden": "unknown key", "missing": "missing required key"}


def key_path(loc: Iterable[str | int]) -> str:
    """A pydantic error location as a key path: `stack[0].context_frames`, the form the
    registry names its nodes in."""
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else str(part)
    return path


def validation_problems(error: Any, under: str = "", *, request: bool = False) -> list[Problem]:
    """Every error of a pydantic validation as a Problem naming its key path: the one wording
    for configs (addons, placements, stack nodes, Piper's JSON) and requests alike.

    `error` is a pydantic ValidationError (or FastAPI's RequestValidationError), or the list
    its `errors()` gives. `under` is the path of the node that was validated (`stack[1]`); with
    `request`, the first part of each location (FastAPI's `body`, `query`) is dropped."""
    errors: Iterable[Mapping[str, Any]] = error.errors() if hasattr(error, "errors") else error
    problems = []
    for err in errors:
        loc = list(err.get("loc", ()))[1 if request else 0 :]
        path = key_path(loc)
        key = f"{under}.{path}" if under and path and not path.startswith("[") else under + path
        kind = err.get("type", "")
        if request and not key and kind == "missing":  # the request's whole body
            problems.append(Problem("", "the request has no body: send a JSON object"))
            continue
        problems.append(Problem(key, _WORDING.get(kind, err["msg"])))
    return problems


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
