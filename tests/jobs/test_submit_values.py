"""The fast lane's reading of a flat job submission (``job_submit_values``)
against its oracle, the schema's serializer (``JobSubmitSerializer``).

Whenever ``job_submit_values(data)`` returns values, the serializer must
accept the same ``data`` and its ``validated_data`` must be exactly those
values: the fast lane may decline more (numeric strings and integral floats
for integers, text the serializer would trim), never accept more nor read a
value differently. And on input as an ordinary JSON client sends it (JSON
integers for integers, text with nothing to trim) it may not decline what the
serializer accepts.

Checked on generated input (hypothesis, derandomized so CI sees the same
examples every run) mixing valid values, each field's edges and hostile
values; on every edge of every field once; and on tables: ordinary client
input the fast lane must take, valid input it must leave to the serializer,
and input both refuse.

The serializer reads no table, so these tests need no database.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.fields import ID_INT_LIMIT, INT32_MAX, INT32_MIN
from jobs.serializers import MAX_SHOTS, JobSubmitSerializer, job_submit_values

KEYS = ("id", "program_id", "priority", "device_type", "user_id", "instructions", "shots", "min_size")
MINIMAL = {"priority": 5, "device_type": "gate"}


def serializer_values(data: Any) -> dict[str, Any] | None:
    """The oracle: the serializer's validated data, or None when it refuses."""
    serializer = JobSubmitSerializer(data=data)
    return dict(serializer.validated_data) if serializer.is_valid() else None


def with_(**changes: Any) -> dict[str, Any]:
    return {**MINIMAL, **changes}


def without(*names: str, **changes: Any) -> dict[str, Any]:
    data = with_(**changes)
    for name in names:
        del data[name]
    return data


# --- generated input ---------------------------------------------------------

INT_EDGES = [
    0,
    1,
    -1,
    2,
    5,
    INT32_MIN,
    INT32_MIN - 1,
    INT32_MIN + 1,
    INT32_MAX,
    INT32_MAX + 1,
    INT32_MAX - 1,
    MAX_SHOTS,
    MAX_SHOTS + 1,
    MAX_SHOTS - 1,
    ID_INT_LIMIT,
    ID_INT_LIMIT - 1,
    -ID_INT_LIMIT,
    1 - ID_INT_LIMIT,
    2**63,
    -(2**63),
    10**40,
]
FLOATS = [0.0, -0.0, 1.0, 5.0, 1.5, -1.0, float(MAX_SHOTS), float(INT32_MAX), float(INT32_MAX + 1), 1e18, 1e300, 0.1]
NUMERIC_STRINGS = [
    "0",
    "1",
    "5",
    "-1",
    "+5",
    " 5 ",
    "5\n",
    "05",
    "1.0",
    "5.0",
    "1e3",
    "0x10",
    "1_000",
    "\u0665",  # ARABIC-INDIC DIGIT FIVE: int() reads it as 5
    str(INT32_MAX),
    str(INT32_MAX + 1),
    str(MAX_SHOTS),
    str(ID_INT_LIMIT - 1),
]
TEXTS = [
    "",
    " ",
    "   ",
    "\t",
    "\n",
    "a",
    "j1",
    "gate",
    "wrk",
    " gate ",
    "gate ",
    " gate",
    "gate\n",
    "\xa0gate",  # NO-BREAK SPACE: str.strip() trims it
    "gate\u3000",  # IDEOGRAPHIC SPACE
    "a b",
    "a/b",
    "/",
    ".",
    "..",
    "...",
    ".a",
    "a.",
    "a\x00b",
    "\x00",
    "a\x1fb",
    "a\x7fb",
    "a\x85b",
    "a\u200bb",  # ZERO WIDTH SPACE
    "\u200b",
    "a\u202eb",
    "a\ufeffb",
    "\ud800",  # lone surrogates
    "a\udfff",
    "\U0001f600",
    "\u00e9t\u00e9",
    "\u65e5\u672c",
    "x" * 99,
    "x" * 100,
    "x" * 101,
    " " + "x" * 99,
    "x" * 99 + " ",
    "\u00e9" * 100,
    "\u00e9" * 101,
    "null",
    "true",
    "[]",
]

ints = st.one_of(st.sampled_from(INT_EDGES), st.integers(-(2**40), 2**40))
floats = st.one_of(st.sampled_from(FLOATS), st.floats(allow_nan=False, allow_infinity=False))
texts = st.one_of(
    st.sampled_from(TEXTS),
    st.text(max_size=8),
    st.text(st.characters(codec="utf-8"), min_size=98, max_size=102),
    st.text(st.characters(categories=["Cc", "Cf", "Zs", "Zl", "Cs"]), max_size=3),
)
json_scalars = st.one_of(st.none(), st.booleans(), ints, floats, texts)
json_values = st.recursive(
    json_scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(texts, children, max_size=4),
    ),
    max_leaves=12,
)
hostile = st.one_of(
    st.none(),
    st.booleans(),
    ints,
    floats,
    st.sampled_from(NUMERIC_STRINGS),
    texts,
    st.lists(json_scalars, max_size=2),
    st.dictionaries(st.text(max_size=3), json_scalars, max_size=2),
)


def weighted(*choices: tuple[int, st.SearchStrategy[Any]]) -> st.SearchStrategy[Any]:
    """One of the strategies, each as often as its weight says. (st.one_of
    flattens nested one_ofs and then weighs every branch alike.)"""
    return st.sampled_from([strategy for weight, strategy in choices for _ in range(weight)]).flatmap(lambda s: s)


ids = st.one_of(
    st.sampled_from(["j1", "p1", "a.b", "...", "x" * 100, "\u00e9t\u00e9", "1", 7, -7, 0, ID_INT_LIMIT - 1]),
    st.from_regex(r"[A-Za-z0-9_.:-]{1,12}", fullmatch=True),
)
VALID = {
    "id": ids,
    "program_id": ids,
    "priority": st.one_of(st.sampled_from([INT32_MIN, -1, 0, 1, 5, INT32_MAX]), st.integers(-100, 100)),
    "device_type": st.one_of(st.sampled_from(["gate", "wrk", "analog", "\u00e9t\u00e9"]), st.text(max_size=6)),
    "user_id": st.one_of(st.sampled_from(["", "u1", " u1 ", 42, -42, "x" * 100]), st.text(max_size=6)),
    "instructions": json_values,
    "shots": st.one_of(st.sampled_from([1, 2, MAX_SHOTS - 1, MAX_SHOTS]), st.integers(1, 1000)),
    "min_size": st.one_of(st.sampled_from([None, 1, 2, INT32_MAX]), st.integers(1, 1000)),
}
# Each field's own edges: the last valid values and the first invalid ones
# on every side, and the types the serializer reads loosely.
ID_EDGES = [
    "",
    ".",
    "..",
    "...",
    ".x",
    "a/b",
    "a b",
    " a",
    "a\t",
    "a\x00",
    "a\x7f",
    "a\u200bb",
    "\ufeff",
    "\ud800",
    "x" * 100,
    "x" * 101,
    "\u00e9" * 100,
    "\u00e9" * 101,
    0,
    ID_INT_LIMIT - 1,
    ID_INT_LIMIT,
    1 - ID_INT_LIMIT,
    -ID_INT_LIMIT,
    True,
    False,
    None,
    1.0,
    "1",
]
EDGES: dict[str, list[Any]] = {
    "id": ID_EDGES,
    "program_id": ID_EDGES,
    "priority": [INT32_MIN - 1, INT32_MIN, INT32_MAX, INT32_MAX + 1, 0, True, False, None, "5", " 5 ", 5.0, 5.5, [5]],
    "device_type": [
        "",
        " ",
        "\u3000",
        "g",
        "d" * 100,
        "d" * 101,
        "\u00e9" * 100,
        "\u00e9" * 101,
        " " + "d" * 100,
        " gate",
        "gate\n",
        "\xa0gate",
        "ga te",
        "ga\x00te",
        "\ud800",
        "gate\udfff",
        "gate\u200b",
        7,
        7.0,
        True,
        None,
        ["gate"],
    ],
    "user_id": [
        "",
        " ",
        "u" * 100,
        "u" * 101,
        " " + "u" * 99,
        "u\x00",
        "\ud800",
        "a/b",
        ".",
        0,
        ID_INT_LIMIT - 1,
        ID_INT_LIMIT,
        -ID_INT_LIMIT,
        True,
        None,
        1.5,
        ["u1"],
    ],
    "instructions": [
        None,
        [],
        {},
        "",
        0,
        False,
        "\x00",
        ["a\x00"],
        {"\x00": 1},
        {"k": {"k2": ["x", "\x00y"]}},
        ["\\u0000"],  # a backslash then "u0000": no NUL
        ["\\\x00"],
        ["\ud800"],
        [[[[[[[[[[[]]]]]]]]]]],
    ],
    "shots": [0, 1, MAX_SHOTS, MAX_SHOTS + 1, -1, None, True, "3", 3.0, 3.5],
    "min_size": [0, 1, INT32_MAX, INT32_MAX + 1, -1, None, True, False, "2", 2.0],
}
REQUIRED = ("priority", "device_type")


def job_dicts(fields: dict[str, st.SearchStrategy[Any]]) -> st.SearchStrategy[dict[str, Any]]:
    """Dicts with priority and device_type, and each other key present or not."""
    return st.fixed_dictionaries(
        {name: fields[name] for name in REQUIRED},
        optional={name: fields[name] for name in KEYS if name not in REQUIRED},
    )


def one_odd_value(data: dict[str, Any], name_and_value: tuple[str, Any]) -> dict[str, Any]:
    name, value = name_and_value
    return {**data, name: value}


# Valid-looking values most of the time, so that many examples are accepted
# and the values compared, not only refusals.
edges = {name: st.sampled_from(values) for name, values in EDGES.items()}
mixed_fields = {name: weighted((6, valid), (3, edges[name]), (1, hostile)) for name, valid in VALID.items()}
odd_value = st.sampled_from(KEYS).flatmap(
    lambda name: st.tuples(st.just(name), weighted((2, edges[name]), (1, hostile)))
)
payloads = weighted(
    # every field valid-looking, at an edge or hostile; each key present or not
    (3, job_dicts(mixed_fields)),
    # a valid-looking job with one value at an edge or hostile
    (3, st.builds(one_odd_value, job_dicts(VALID), odd_value)),
    # even the required keys may be absent
    (1, st.fixed_dictionaries({}, optional=mixed_fields)),
    # unknown keys besides
    (
        1,
        st.builds(
            lambda data, extra: {**extra, **data},
            job_dicts(mixed_fields),
            st.dictionaries(st.text(max_size=6), json_scalars, max_size=3),
        ),
    ),
)
top_level = weighted(
    (6, payloads),
    (1, st.one_of(st.lists(json_scalars, max_size=3), texts, ints, st.none(), st.booleans(), floats)),
)


def plain(data: Any) -> bool:
    """Input as an ordinary JSON client sends it: integers as JSON integers
    and text the serializer would not trim. On such input the fast lane must
    agree with the serializer both ways."""
    if type(data) is not dict:
        return False
    for name in ("priority", "shots", "min_size"):
        value = data.get(name)
        if name in data and not (type(value) is int or (name == "min_size" and value is None)):
            return False
    device_type = data.get("device_type")
    return not isinstance(device_type, str) or device_type.strip() == device_type


def check_agreement(data: Any) -> bool:
    """The property, for one input; True when the fast lane accepted it."""
    fast = job_submit_values(data)
    if fast is not None:
        serializer = JobSubmitSerializer(data=data)
        assert serializer.is_valid(), (data, fast, serializer.errors)
        assert fast == dict(serializer.validated_data), (data, fast, dict(serializer.validated_data))
    elif plain(data):
        # Declining is only for what the serializer would read differently.
        assert serializer_values(data) is None, (data, serializer_values(data))
    return fast is not None


def test_the_fast_values_are_the_serializers_on_generated_input():
    seen = {True: 0, False: 0}

    @settings(
        max_examples=400,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(top_level)
    def check(data: Any) -> None:
        seen[check_agreement(data)] += 1

    check()
    # The generator must keep reaching both outcomes to be worth anything.
    assert seen[True] >= 40 and seen[False] >= 40, seen


EVERYTHING = {
    "id": "job-1",
    "program_id": "prog-1",
    "priority": -3,
    "device_type": "gate",
    "user_id": "u1",
    "instructions": [1, 2, 3],
    "shots": 1000,
    "min_size": 4,
}


@pytest.mark.parametrize("name", KEYS)
def test_each_edge_of_each_field(name):
    # Every edge value, alone in an otherwise minimal and in a full job: rare
    # to draw at random, so all of them once here.
    for value in EDGES[name]:
        check_agreement({**MINIMAL, name: value})
        check_agreement({**EVERYTHING, name: value})
    check_agreement({key: value for key, value in EVERYTHING.items() if key != name})


# --- ordinary input: must be accepted ------------------------------------------

ACCEPTED = {
    "minimal": MINIMAL,
    "the brief's example": {"id": "j1", "priority": 5, "user_id": "u1", "program_id": "p1", "device_type": "wrk"},
    "int ids": with_(id=123, program_id=-4, user_id=77),
    "largest int id": with_(id=ID_INT_LIMIT - 1, program_id=1 - ID_INT_LIMIT, user_id=ID_INT_LIMIT - 1),
    "int id 0": with_(id=0, user_id=0),
    "instructions list": with_(instructions=[{"gate": "h", "qubits": [0]}, 1.5, None, True]),
    "instructions dict": with_(instructions={"ops": ["x", "y"], "depth": 3}),
    "instructions null": with_(instructions=None),
    "instructions string": with_(instructions="OPENQASM 2.0;"),
    "instructions with a surrogate pair": with_(instructions=["\U0001f600"]),
    "shots 1": with_(shots=1),
    "shots MAX_SHOTS": with_(shots=MAX_SHOTS),
    "min_size null": with_(min_size=None),
    "min_size 1": with_(min_size=1),
    "min_size INT32_MAX": with_(min_size=INT32_MAX),
    "priority INT32_MIN": with_(priority=INT32_MIN),
    "priority INT32_MAX": with_(priority=INT32_MAX),
    "priority 0": with_(priority=0),
    "user_id empty": with_(user_id=""),
    "user_id with spaces": with_(user_id=" my user "),
    "unicode device_type": with_(device_type="\u00e9t\u00e9-\u65e5\u672c"),
    "device_type with an inner space": with_(device_type="gate model"),
    "device_type of 100 characters": with_(device_type="d" * 100),
    "ids of 100 characters": with_(id="i" * 100, program_id="p" * 100, user_id="u" * 100),
    "three dots id": with_(id="..."),
    "unknown keys": with_(callback_url="https://example.com", extra={"a": 1}),
    "everything": EVERYTHING,
}


@pytest.mark.parametrize("data", ACCEPTED.values(), ids=ACCEPTED.keys())
def test_ordinary_input_is_accepted_with_the_serializers_values(data):
    expected = serializer_values(data)
    assert expected is not None, JobSubmitSerializer(data=data).errors
    assert job_submit_values(data) == expected


def test_the_defaults_are_filled_in_as_the_serializer_does():
    assert job_submit_values(MINIMAL) == {
        "priority": 5,
        "device_type": "gate",
        "user_id": "",
        "instructions": [],
        "shots": 1,
        "min_size": None,
    }
    values = job_submit_values(with_(id=123, user_id=77, instructions=None))
    assert values is not None
    assert values["id"] == "123" and values["user_id"] == "77" and values["instructions"] == []


# --- valid, but left to the serializer (narrowing) -----------------------------

NARROWED = {
    "priority as a numeric string": with_(priority="5"),
    "priority as an integral float": with_(priority=5.0),
    "device_type with surrounding spaces": with_(device_type=" gate "),
    "device_type with a trailing newline": with_(device_type="gate\n"),
    "shots as a numeric string": with_(shots="3"),
    "shots as an integral float": with_(shots=3.0),
    "min_size as a numeric string": with_(min_size="2"),
}


@pytest.mark.parametrize("data", NARROWED.values(), ids=NARROWED.keys())
def test_input_the_serializer_would_read_loosely_is_left_to_it(data):
    assert serializer_values(data) is not None, JobSubmitSerializer(data=data).errors
    assert job_submit_values(data) is None


# --- invalid: both refuse --------------------------------------------------------

REFUSED = {
    "priority missing": (without("priority"), "priority"),
    "device_type missing": (without("device_type"), "device_type"),
    "priority true": (with_(priority=True), "priority"),
    "priority 2**31": (with_(priority=2**31), "priority"),
    "priority below INT32_MIN": (with_(priority=INT32_MIN - 1), "priority"),
    "priority null": (with_(priority=None), "priority"),
    "priority 1.5": (with_(priority=1.5), "priority"),
    "device_type empty": (with_(device_type=""), "device_type"),
    "device_type blank": (with_(device_type="   "), "device_type"),
    "device_type a number": (with_(device_type=7), "device_type"),
    "device_type of 101 characters": (with_(device_type="d" * 101), "device_type"),
    "device_type with NUL": (with_(device_type="ga\x00te"), "device_type"),
    "device_type with a lone surrogate": (with_(device_type="gate\ud800"), "device_type"),
    "id empty": (with_(id=""), "id"),
    "id with a slash": (with_(id="a/b"), "id"),
    "id dot": (with_(id="."), "id"),
    "id dot dot": (with_(id=".."), "id"),
    "id null": (with_(id=None), "id"),
    "id 10**18": (with_(id=ID_INT_LIMIT), "id"),
    "id -(10**18)": (with_(id=-ID_INT_LIMIT), "id"),
    "id true": (with_(id=True), "id"),
    "id a float": (with_(id=1.0), "id"),
    "id with a space": (with_(id="a b"), "id"),
    "id with a zero-width space": (with_(id="a\u200bb"), "id"),
    "id of 101 characters": (with_(id="i" * 101), "id"),
    "program_id with a slash": (with_(program_id="a/b"), "program_id"),
    "program_id null": (with_(program_id=None), "program_id"),
    "shots 0": (with_(shots=0), "shots"),
    "shots MAX_SHOTS + 1": (with_(shots=MAX_SHOTS + 1), "shots"),
    "shots null": (with_(shots=None), "shots"),
    "shots true": (with_(shots=True), "shots"),
    "min_size 0": (with_(min_size=0), "min_size"),
    "min_size above INT32_MAX": (with_(min_size=INT32_MAX + 1), "min_size"),
    "user_id null": (with_(user_id=None), "user_id"),
    "user_id of 101 characters": (with_(user_id="u" * 101), "user_id"),
    "user_id true": (with_(user_id=True), "user_id"),
    "user_id 10**18": (with_(user_id=ID_INT_LIMIT), "user_id"),
    "user_id with NUL": (with_(user_id="u\x00"), "user_id"),
    "user_id a list": (with_(user_id=["u1"]), "user_id"),
    "instructions with NUL in a nested string": (with_(instructions=[{"a": ["ok", "b\x00d"]}]), "instructions"),
    "instructions with NUL in a key": (with_(instructions={"ops": {"k\x00": 1}}), "instructions"),
    "instructions a NUL string": (with_(instructions="\x00"), "instructions"),
    "top-level list": ([MINIMAL], "non_field_errors"),
    "top-level string": ("priority=5", "non_field_errors"),
    "top-level number": (5, "non_field_errors"),
}


@pytest.mark.parametrize(("data", "name"), REFUSED.values(), ids=REFUSED.keys())
def test_invalid_input_is_refused_by_both(data, name):
    serializer = JobSubmitSerializer(data=data)
    assert not serializer.is_valid()
    assert name in serializer.errors, serializer.errors
    assert job_submit_values(data) is None


def test_top_level_null_is_refused_by_both():
    assert job_submit_values(None) is None
    assert not JobSubmitSerializer(data=None).is_valid()
