import math

import pytest

from gan_lib.pipeline.params import (
    GIVEN_NAME, ParameterError, boolean, given, integer, list_of, one_of, optional, real, validate, with_profile,
)


def test_valid_values_pass_through() -> None:
    ns = {"profile": "cpu", "steps": 10, "lr": 1e-3, "flag": True, "alphas": [0.5, 2.0], "n": None}
    out = validate(ns, profile=one_of("smoke", "cpu"), steps=integer(1, 10), lr=real(0, 1, open_lo=True),
                   flag=boolean(), alphas=list_of(real(exclude=(0.0, 1.0))), n=optional(integer(1)))
    assert dict(out) == ns


@pytest.mark.parametrize(
    ("name", "value", "check", "allowed"),
    [
        ("profile", "fast", one_of("smoke", "cpu"), "one of 'smoke', 'cpu'"),
        ("steps", 0, integer(1, 10), r"an integer in \[1, 10\]"),
        ("steps", 2.0, integer(1, 10), r"an integer in \[1, 10\]"),
        ("steps", True, integer(0, 10), r"an integer in \[0, 10\]"),
        ("lr", 0.0, real(0, 1, open_lo=True), r"a finite number in \(0, 1\]"),
        ("lr", math.nan, real(0, 1), "a finite number"),
        ("alpha", 1.0, real(exclude=(0.0, 1.0)), r"a finite number in \(-inf, inf\) other than 0.0, 1.0"),
        ("alphas", [], list_of(real()), "a list of at least 1"),
        ("n", -1, optional(integer(1)), "None \\(use the profile's value\\) or an integer"),
    ],
)
def test_bad_values_name_the_value_and_what_is_allowed(name, value, check, allowed) -> None:
    with pytest.raises(ParameterError, match=rf"parameter {name}={value!r} is not allowed: expected {allowed}".replace("[]", r"\[\]")):
        validate({name: value}, **{name: check})


def test_missing_parameter_is_named() -> None:
    with pytest.raises(ParameterError, match="'steps' is missing"):
        validate({}, steps=integer())


def test_profile_fills_only_none() -> None:
    table = {"smoke": {"steps": 5, "n": 10}, "cpu": {"steps": 500, "n": 1000}}
    assert with_profile({"profile": "smoke", "steps": None, "n": 3}, table) == {"profile": "smoke", "steps": 5, "n": 3}
    with pytest.raises(ParameterError, match="profile='gpu'"):
        with_profile({"profile": "gpu", "steps": None}, table)


def test_a_string_given_for_a_list_is_told_how_to_write_one() -> None:
    names = list_of(one_of("mog", "banana"))
    with pytest.raises(ParameterError) as info:
        names("datasets", "[mog,banana]")  # what the shell hands over for -p datasets [mog,banana]
    assert """a Python list in shell quotes, with quoted names, e.g. -p datasets '["mog", "banana"]'""" in str(info.value)
    with pytest.raises(ParameterError, match="shell quotes"):
        optional(names)("datasets", "[mog]")  # the advice survives optional()
    with pytest.raises(ParameterError) as info:
        names("datasets", ["wrong"])  # a list with a bad item needs no advice on the syntax
    assert "shell quotes" not in str(info.value)


def test_given_reads_the_names_the_pipeline_sets(monkeypatch) -> None:
    monkeypatch.delenv(GIVEN_NAME, raising=False)
    assert given() == ()   # a notebook not run by the pipeline: its own settings
    monkeypatch.setenv(GIVEN_NAME, '["lr", "steps"]')
    assert given() == ("lr", "steps")
    for bad in ("lr", "[1]", '[""]', "{}", "not json"):
        monkeypatch.setenv(GIVEN_NAME, bad)
        with pytest.raises(ParameterError, match=f"{GIVEN_NAME}=.* must be a JSON list of parameter names"):
            given()
