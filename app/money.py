"""Money helpers: amounts are integer fen in the database, Decimal strings on the wire."""

from __future__ import annotations

from decimal import Decimal

_CENT = Decimal("0.01")


def fen_to_yuan(fen: int) -> str:
    """``123456`` fen -> ``"1234.56"`` (exact, never through float)."""
    return str((Decimal(fen) / 100).quantize(_CENT))
