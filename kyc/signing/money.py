"""Money on documents: two-decimal ``Decimal`` amounts, shown as figures and in Chinese capitals.

Contracts and claim forms in China state amounts twice, in figures and in financial capitals
(大写金额), so a changed digit is caught by the mismatch. Floats never enter.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from kyc.signing.errors import InvalidInput

_CENT = Decimal("0.01")
_DIGITS = "零壹贰叁肆伍陆柒捌玖"
_SMALL_UNITS = ("", "拾", "佰", "仟")
_BIG_UNITS = ("", "万", "亿", "万亿")
_LIMIT = Decimal(10) ** 16


def check_money(value: Decimal, what: str, *, allow_zero: bool = False) -> Decimal:
    """``value`` if it is a finite, non-negative amount in cents below 10^16 (positive unless ``allow_zero``)."""
    try:
        exact = value.is_finite() and value == value.quantize(_CENT) and value < _LIMIT
    except InvalidOperation:
        exact = False
    if not exact or value < 0 or (value == 0 and not allow_zero):
        raise InvalidInput(f"{what} must be a positive amount with at most two decimals", code=f"{what}_invalid")
    return value


def rmb_upper(amount: Decimal) -> str:
    """Amount in Chinese financial capitals, e.g. ``10005.50`` -> 壹万零伍元伍角整."""
    check_money(amount, "amount", allow_zero=True)
    cents = int(amount * 100)
    whole, frac = divmod(cents, 100)
    jiao, fen = divmod(frac, 10)
    text = _int_upper(whole) + "元" if whole else ""
    if jiao == 0 and fen == 0:
        return (text or "零元") + "整"
    if jiao:
        text += _DIGITS[jiao] + "角"
    elif whole:
        text += "零"
    return text + (_DIGITS[fen] + "分" if fen else "整")


def _group_upper(group: int) -> str:
    out, pending_zero = "", False
    for pos in range(3, -1, -1):
        digit = group // 10**pos % 10
        if digit == 0:
            pending_zero = bool(out)
            continue
        out += ("零" if pending_zero else "") + _DIGITS[digit] + _SMALL_UNITS[pos]
        pending_zero = False
    return out


def _int_upper(value: int) -> str:
    groups = [value // 10 ** (4 * i) % 10**4 for i in range(len(_BIG_UNITS))]
    out, gap = "", False
    for index in range(len(groups) - 1, -1, -1):
        group = groups[index]
        if group == 0:
            gap = bool(out)
            continue
        if out and (gap or group < 1000):
            out += "零"
        out += _group_upper(group) + _BIG_UNITS[index]
        gap = False
    return out


def yuan(value: Decimal) -> str:
    """Figures with thousands separators: ``¥150,000.00``."""
    return f"¥{value:,.2f}"
