"""The brand catalog, store layouts and profile assignment."""

from __future__ import annotations

from collections import Counter

from hypothesis import given, settings
from hypothesis import strategies as st

from shelflink.device.gtin import is_valid_gtin
from shelflink.device.topics import is_valid_id
from shelflink.sim import PROFILES, build_catalog, build_layout, profile_for

seeds = st.integers(min_value=0, max_value=2**32 - 1)


@settings(max_examples=20, deadline=None)
@given(seed=seeds)
def test_every_sku_has_a_valid_unique_gtin_and_sane_economics(seed: int) -> None:
    catalog = build_catalog(seed, size=120)
    assert len({s.gtin for s in catalog}) == len(catalog)
    for sku in catalog:
        assert len(sku.gtin) == 13 and is_valid_gtin(sku.gtin)
        assert 0 < sku.min_resale_minor <= sku.price_minor
        assert sku.case_pack >= 1 and sku.unit_g > 0
    assert any(s.cold_chain for s in catalog) and not all(s.cold_chain for s in catalog)


@settings(max_examples=10, deadline=None)
@given(seed=seeds, index=st.integers(0, 500), profile=st.sampled_from(sorted(PROFILES)))
def test_layouts_put_cold_skus_in_fridges_and_name_devices_validly(
    seed: int, index: int, profile: str
) -> None:
    layout = build_layout(seed, index, PROFILES[profile], build_catalog(seed))
    assert layout.lanes == PROFILES[profile].lanes
    for lane in range(layout.lanes):
        sku = layout.skus[int(layout.lane_sku[lane])]
        assert sku.cold_chain == (layout.lane_fridge[lane] >= 0)
    assert all(is_valid_id(d) for d in layout.device_ids())
    assert len(set(layout.device_ids())) == len(layout.device_ids())
    assert all(1 <= s.lanes <= 64 for s in layout.shelves)
    assert (layout.capacity >= 4).all() and (layout.popularity > 0).all()


def test_a_store_keeps_its_profile_and_layout_when_stores_are_added() -> None:
    catalog = build_catalog(11)
    few = [profile_for(11, i) for i in range(3)]
    many = [profile_for(11, i) for i in range(30)]
    assert many[:3] == few
    a = build_layout(11, 2, PROFILES[few[2]], catalog)
    b = build_layout(11, 2, PROFILES[many[2]], catalog)
    assert (a.capacity == b.capacity).all() and a.skus == b.skus


def test_profiles_are_spread_in_proportion_to_the_mix() -> None:
    counts = Counter(profile_for(3, i, {"kiosk": 1, "supermarket": 3}) for i in range(40))
    # A golden-ratio sequence stays within a store or two of the exact shares.
    assert set(counts) == {"kiosk", "supermarket"}
    assert abs(counts["kiosk"] - 10) <= 2
    # Even a handful of stores sees every profile of an even mix.
    assert set(profile_for(5, i) for i in range(4)) == set(PROFILES)
