"""GS1 GTIN check digits: a scanner that mis-reads a barcode is caught at the edge."""

from __future__ import annotations

GTIN_LENGTHS = (8, 12, 13, 14)


def gtin_check_digit(body: str) -> int:
    """The check digit for the digits of a GTIN without its last digit (GS1 mod-10)."""
    total = 0
    # Weights alternate 3,1,3,... starting from the digit next to the check digit.
    for position, char in enumerate(reversed(body)):
        total += int(char) * (3 if position % 2 == 0 else 1)
    return (10 - total % 10) % 10


def is_valid_gtin(value: str) -> bool:
    if len(value) not in GTIN_LENGTHS or not value.isascii() or not value.isdigit():
        return False
    return gtin_check_digit(value[:-1]) == int(value[-1])


def make_gtin(body: str) -> str:
    """Append the check digit to 7, 11, 12 or 13 digits."""
    if len(body) + 1 not in GTIN_LENGTHS or not body.isdigit():
        raise ValueError(f"a GTIN body has 7, 11, 12 or 13 digits, got {body!r}")
    return body + str(gtin_check_digit(body))
