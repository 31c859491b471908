"""The brand's assortment: SKUs with valid GTIN-13 codes, weights, prices, case packs.

The catalog is brand-wide and drawn from its own stream, so every store of a
run sells from the same catalog however many stores there are.
"""

from __future__ import annotations

from dataclasses import dataclass

from shelflink.device.gtin import make_gtin
from shelflink.sim.seeds import catalog_rng

# GS1 prefixes 200-299 are "restricted circulation": never assigned to a real
# product, so a simulated code can never be mistaken for one.
GTIN_PREFIX = "290"


@dataclass(frozen=True, slots=True)
class Category:
    name: str
    cold_chain: bool
    grams: tuple[float, float]
    price_minor: tuple[int, int]
    case_packs: tuple[int, ...]


CATEGORIES: tuple[Category, ...] = (
    Category("snacks", False, (40.0, 250.0), (99, 399), (12, 24)),
    Category("confectionery", False, (20.0, 120.0), (49, 249), (12, 24, 36)),
    Category("beverages", False, (330.0, 1500.0), (79, 349), (6, 12)),
    Category("grocery", False, (250.0, 1000.0), (119, 599), (6, 10, 12)),
    Category("household", False, (200.0, 1200.0), (149, 899), (6, 8)),
    Category("dairy", True, (125.0, 1000.0), (59, 329), (6, 12)),
    Category("chilled-drinks", True, (250.0, 1000.0), (99, 299), (6, 12)),
    Category("ready-meals", True, (250.0, 450.0), (249, 599), (4, 6)),
)


@dataclass(frozen=True, slots=True)
class Sku:
    gtin: str
    name: str
    category: str
    unit_g: float
    price_minor: int
    # The brand's minimum resale price: a promotion never sells below it.
    min_resale_minor: int
    case_pack: int
    cold_chain: bool
    # Relative popularity within the brand; a store scales it to its traffic.
    velocity: float


def build_catalog(seed: int, size: int = 400, cold_fraction: float = 0.25) -> tuple[Sku, ...]:
    if size < 2:
        raise ValueError("a catalog needs at least two SKUs")
    if not 0.0 < cold_fraction < 1.0:
        raise ValueError("cold_fraction must be strictly between 0 and 1")
    rng = catalog_rng(seed)
    n_cold = max(1, min(size - 1, round(size * cold_fraction)))
    cold = [c for c in CATEGORIES if c.cold_chain]
    ambient = [c for c in CATEGORIES if not c.cold_chain]
    skus: list[Sku] = []
    for index in range(size):
        is_cold = index >= size - n_cold
        pool = cold if is_cold else ambient
        category = pool[int(rng.integers(len(pool)))]
        grams = round(float(rng.uniform(*category.grams)), 1)
        low, high = category.price_minor
        # Shelf prices end in 9: a detail that makes the data look like a store's.
        price = int(rng.integers(low // 10, high // 10 + 1)) * 10 + 9
        min_resale = round(price * float(rng.uniform(0.7, 0.9)))
        skus.append(
            Sku(
                gtin=make_gtin(f"{GTIN_PREFIX}{index:09d}"),
                name=f"{category.name} {index:04d}",
                category=category.name,
                unit_g=grams,
                price_minor=price,
                min_resale_minor=min_resale,
                case_pack=int(rng.choice(category.case_packs)),
                cold_chain=is_cold,
                velocity=float(rng.lognormal(0.0, 0.7)),
            )
        )
    return tuple(skus)
