"""The message contract: every message round-trips, keys are unique and routed, names follow
the rules, and the services stay independent (import-linter)."""

from __future__ import annotations

import re
import subprocess
import sys
import typing
from datetime import datetime
from pathlib import Path
from uuid import uuid4

import pytest
from pydantic import BaseModel

import proto.messages as m
from proto.topology import COMMANDS, EVENTS, LOGS, WORK_QUEUES, topic_matches

ROOT = Path(__file__).resolve().parents[2]


def sample(model: type[BaseModel]) -> BaseModel:
    """A valid instance with every required field filled from its annotation."""
    values: dict[str, object] = {}
    for name, field in model.model_fields.items():
        if field.is_required():
            values[name] = _value(field.annotation)
    return model.model_validate(values)


def _value(kind: object) -> object:
    origin = typing.get_origin(kind)
    args = typing.get_args(kind)
    if origin in (typing.Union, __import__("types").UnionType):
        return _value(next(a for a in args if a is not type(None)))
    if origin is typing.Literal:
        return args[0]
    if origin is tuple:
        return ()
    if origin is dict:
        return {}
    if isinstance(kind, type) and issubclass(kind, BaseModel):
        return sample(kind).model_dump(mode="json")
    if isinstance(kind, type) and issubclass(kind, str) and hasattr(kind, "__members__"):
        return next(iter(kind.__members__.values())).value  # type: ignore[attr-defined]
    if kind is datetime:
        return "2026-11-26T12:00:00Z"
    return {str: "x", int: 1, float: 1.5, bool: True}.get(kind, str(uuid4()))  # type: ignore[call-overload]


@pytest.mark.parametrize("key", sorted(m.REGISTRY))
def test_every_message_round_trips_through_json(key: str) -> None:
    model = m.REGISTRY[key]
    message = sample(model)
    again = model.model_validate_json(message.model_dump_json())
    assert again == message
    extra = model.model_validate({**message.model_dump(mode="json"), "added_later": 1})
    assert extra == message, "consumers ignore unknown fields"


def test_routing_keys_follow_the_naming_rules() -> None:
    for key, model in m.REGISTRY.items():
        assert re.fullmatch(r"[a-z]+\.[a-z_]+", key), key
        if model.exchange == COMMANDS:
            assert not key.split(".")[1].endswith("ed"), f"command {key} must be imperative"
        elif model.exchange == EVENTS:
            verb = key.split(".")[1]
            assert verb.endswith(("ed", "en", "sent", "found", "lost")), f"event {key}: past tense"
        else:
            assert model.exchange == LOGS


def test_every_message_reaches_a_durable_queue() -> None:
    """Nothing a service publishes can be unroutable in a fully declared topology."""
    for key, model in m.REGISTRY.items():
        routed = [
            q.name
            for q in WORK_QUEUES
            for exchange, pattern in q.bindings
            if exchange == model.exchange and topic_matches(pattern, sample(model).key())  # type: ignore[attr-defined]
        ]
        assert routed, f"{key} reaches no queue"


def test_every_binding_matches_some_message() -> None:
    for q in WORK_QUEUES:
        for exchange, pattern in q.bindings:
            keys = [
                sample(model).key()  # type: ignore[attr-defined]
                for model in m.REGISTRY.values()
                if model.exchange == exchange
            ]
            assert any(topic_matches(pattern, k) for k in keys), f"{q.name} binds {pattern} in vain"


@pytest.mark.parametrize(
    ("pattern", "key", "hit"),
    [
        ("run.*", "run.start", True),
        ("run.*", "run.start.now", False),
        ("#", "a.b.c", True),
        ("a.#.c", "a.c", True),
        ("a.#.c", "a.x.y.c", True),
        ("*.error", "processing.error", True),
        ("*.error", "error", False),
    ],
)
def test_topic_matching(pattern: str, key: str, hit: bool) -> None:
    assert topic_matches(pattern, key) is hit


def test_services_import_proto_never_each_other() -> None:
    result = subprocess.run(
        [str(Path(sys.executable).parent / "lint-imports")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 kept, 0 broken" in result.stdout
