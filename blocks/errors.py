"""The errors every layer raises and reports: problems in a config, each naming its key or
node path (`Problem`, `ConfigError`), and a request the service will not serve, carrying the
HTTP status it is answered with (`ServiceError`)."""

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


class ServiceError(Exception):
    """A request the service will not or cannot serve: the HTTP status it is answered with, a
    message naming the problem, OpenAI's error `code` where there is one, and headers
    (`Retry-After`). Raised where the problem is found, in any layer. A voice's composer sends
    it down its stream as an error message (`as_message`); the ingress raises it again from
    that message (`from_message`) and answers it in each route's shape, so the status travels
    from where the error is found to the client unchanged. `extra`: more keys for the JSON
    body (the `known` voices)."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        code: str | None = None,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.code = status, message, code
        self.headers, self.extra = headers, extra

    def as_message(self) -> dict[str, Any]:
        """The error as a stream's message: {"type": "error", "status", "message"}, and
        `code` and `retry_after_s` (from `Retry-After`) where they are set."""
        message: dict[str, Any] = {"type": "error", "status": self.status, "message": self.message}
        if self.code is not None:
            message["code"] = self.code
        if self.headers and "Retry-After" in self.headers:
            message["retry_after_s"] = int(self.headers["Retry-After"])
        return message

    @classmethod
    def from_message(cls, message: dict[str, Any]) -> ServiceError:
        """The error a stream's error message says (the inverse of `as_message`)."""
        retry = message.get("retry_after_s")
        return cls(
            message["status"],
            message["message"],
            code=message.get("code"),
            headers=None if retry is None else {"Retry-After": str(retry)},
        )

    def __reduce__(self):  # survives pickling across Ray processes, keywords and all
        return (_service_error, (self.status, self.message, self.code, self.headers, self.extra))


def _service_error(
    status: int,
    message: str,
    code: str | None,
    headers: dict[str, str] | None,
    extra: dict[str, Any],
) -> ServiceError:
    return ServiceError(status, message, code=code, headers=headers, **extra)


class RequestError(ServiceError, ValueError):
    """A request asks for what the voice cannot do (a speaker it lacks, a speed it cannot
    change): a 400 that names the request field."""

    def __init__(self, field: str, message: str):
        self.field = field
        super().__init__(400, f"{field}: {message}")

    def __reduce__(self):  # survives pickling across Ray processes
        return (type(self), (self.field, self.message.split(": ", 1)[1]))
