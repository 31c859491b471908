"""``[edge.cold_chain]``: defaults, classes that inherit, fridges mapped to classes, refusals."""

from __future__ import annotations

import tomllib

import pytest
from pydantic import ValidationError

from shelflink.edge.cold_chain_config import ColdChainConfig, ProductClass

TOML = """
[edge.cold_chain]
door_open_max_min = 10.0
default_class = "chilled"

[edge.cold_chain.classes.chilled]
max_c = 7.0

[edge.cold_chain.classes.dairy]
max_c = 6.0
min_c = 0.0
max_minutes_above = 20.0
cut_in_c = 5.0

[edge.cold_chain.fridges]
"s0001-fridge-01" = "dairy"
"s0001-fridge-02" = "frozen"
"""


def test_the_toml_section_parses_and_defaults_fill_the_rest() -> None:
    raw = tomllib.loads(TOML)["edge"]["cold_chain"]
    config = ColdChainConfig.model_validate(raw)
    assert config.door_open_max_min == 10.0
    # chilled overrides one key and keeps the rest of the default chilled class.
    assert config.classes["chilled"] == ProductClass(
        max_c=7.0, min_c=-1.0, max_minutes_above=30.0, cut_in_c=6.0
    )
    assert config.class_of("s0001-fridge-01").max_c == 6.0
    assert config.class_of("s0001-fridge-02").max_c == -15.0
    assert config.class_of("s0001-fridge-09") == config.classes["chilled"]
    # The defaults not mentioned are still there.
    assert {"chilled", "chilled_strict", "frozen", "dairy"} <= set(config.classes)


def test_defaults_are_the_documented_limits() -> None:
    config = ColdChainConfig()
    assert config.classes["chilled"].max_c == 8.0
    assert config.classes["chilled_strict"].max_c == 5.0
    assert config.classes["frozen"].max_c == -15.0 and config.classes["frozen"].min_c is None
    assert config.default_class == "chilled" and config.fridges == {}


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"fridges": {"s0001-fridge-01": "wine"}}, "unknown classes"),
        ({"default_class": "wine"}, "default_class"),
        ({"door_open_max_min": 0}, "greater than 0"),
        ({"door_opn_max_min": 5}, "Extra inputs"),
        ({"classes": {"new": {"max_c": 5.0}}}, "Field required"),
        ({"classes": {"chilled": {"min_c": 9.0}}}, "must be below max_c"),
        ({"classes": {"chilled": {"cut_in_c": 9.0}}}, "must not be above max_c"),
    ],
)
def test_mistakes_are_refused_at_start(raw: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        ColdChainConfig.model_validate(raw)


def test_config_is_frozen() -> None:
    config = ColdChainConfig()
    with pytest.raises(ValidationError):
        config.door_open_max_min = 1.0
