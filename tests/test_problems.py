"""Pydantic's errors become Problems in one wording, naming the key path, wherever a config or
a request is validated (blocks/errors.py `validation_problems`)."""

from __future__ import annotations

import json

import pytest
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from voicestack.blocks.errors import ConfigError, Problem, validation_problems


class Inner(BaseModel):
    model_config = ConfigDict(extra="forbid")
    rate: int = Field(gt=0)


class Outer(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    items: list[Inner] = []


def error_of(data) -> ValidationError:
    with pytest.raises(ValidationError) as raised:
        Outer.model_validate(data)
    return raised.value


def test_each_error_names_its_key_path_in_the_one_wording():
    error = error_of({"colour": 1, "items": [{"rate": 1}, {"rate": 0, "x": 2}]})
    assert {str(p) for p in validation_problems(error)} == {
        "name: missing required key",
        "colour: unknown key",
        "items[1].rate: Input should be greater than 0",
        "items[1].x: unknown key",
    }


def test_the_path_of_the_validated_node_comes_first():
    problems = validation_problems(error_of({"name": "a", "items": [{}]}), "stack[2]")
    assert problems == [Problem("stack[2].items[0].rate", "missing required key")]


def test_a_request_drops_fastapis_body_and_reads_errors_given_as_a_list():
    errors = [{**e, "loc": ("body", *e["loc"])} for e in error_of({"colour": 1}).errors()]
    assert [str(p) for p in validation_problems(errors, request=True)] == [
        "name: missing required key",
        "colour: unknown key",
    ]


def test_an_addon_a_placement_and_a_stack_node_word_it_the_same(duration_addon, tmp_path):
    from voicestack.addons.loader import read_config
    from voicestack.placement.config import parse_placement

    with pytest.raises(ConfigError) as raised:
        parse_placement({"default": {"colour": 1}})
    assert str(raised.value) == "placement: default.colour: unknown key"

    data = json.loads((duration_addon.root / "addon.json").read_text())
    data["colour"] = 1
    (tmp_path / "addon.json").write_text(json.dumps(data))
    with pytest.raises(ConfigError) as raised:
        read_config(tmp_path)
    assert "colour: unknown key" in str(raised.value)


def test_openais_route_words_it_the_same_and_names_the_param():
    from voicestack.serve_app.openai_api import validation_error

    errors = [{**e, "loc": ("body", *e["loc"])} for e in error_of({"colour": 1}).errors()]
    body = json.loads(validation_error(errors).body)["error"]
    assert body["message"] == "name: missing required key; colour: unknown key"
    assert (body["param"], body["code"]) == ("name", "missing_required_parameter")


def test_a_refusal_keeps_its_status_code_and_retry_after_from_composer_to_ingress():
    """A ServiceError goes down a voice's stream as a message and comes out of it, in another
    process, the same error: status, message, OpenAI's code, Retry-After."""
    import pickle

    from voicestack.blocks.errors import RequestError, ServiceError

    at_capacity = ServiceError(
        503, "voice 'joe' is at capacity", code="voice_at_capacity", headers={"Retry-After": "3"}
    )
    message = at_capacity.as_message()
    assert message == {
        "type": "error",
        "status": 503,
        "message": "voice 'joe' is at capacity",
        "code": "voice_at_capacity",
        "retry_after_s": 3,
    }
    again = ServiceError.from_message(pickle.loads(pickle.dumps(message)))
    assert (again.status, again.message, again.code, again.headers) == (
        503,
        "voice 'joe' is at capacity",
        "voice_at_capacity",
        {"Retry-After": "3"},
    )
    unknown = pickle.loads(pickle.dumps(ServiceError(404, "unknown voice", known=["joe"])))
    assert (unknown.status, unknown.extra) == (404, {"known": ["joe"]})
    # A block's request error is one: a 400 naming the field, across processes too.
    speaker = pickle.loads(pickle.dumps(RequestError("speaker", "the voice has no speaker 'x'")))
    assert isinstance(speaker, ServiceError) and speaker.as_message() == {
        "type": "error",
        "status": 400,
        "message": "speaker: the voice has no speaker 'x'",
    }
