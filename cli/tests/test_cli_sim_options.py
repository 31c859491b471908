"""``shelflink sim dataset --profile-mix``: held-out profiles are chosen on the command line."""

from __future__ import annotations

import argparse

import pytest

from shelflink.cli.sim_commands import _profile_mix


def test_profile_mix_parses_names_and_weights() -> None:
    assert _profile_mix("kiosk=1,convenience=2.5") == {"kiosk": 1.0, "convenience": 2.5}
    assert _profile_mix("supermarket") == {"supermarket": 1.0}


@pytest.mark.parametrize(
    ("text", "says"),
    [("bogus=1", "unknown profile 'bogus'"), ("kiosk=lots", "not a number")],
)
def test_profile_mix_says_what_is_wrong(text: str, says: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match=says):
        _profile_mix(text)
