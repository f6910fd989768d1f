"""The CJK font used for documents, the audit trail and signature appearances.

reportlab embeds only TrueType-outline fonts (not CFF-flavoured OpenType such as Noto Sans CJK
``.ttc``), so the candidates are TrueType collections known to carry Simplified Chinese. The font
is subset into every PDF, which is what makes Chinese names render in any viewer and lets text be
extracted again.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

from kyc.signing.errors import FontUnavailable

FONT_NAME = "BranchlessCJK"
"""The name the font is registered under in reportlab."""

ENV_FONT = "BRANCHLESS_CJK_FONT"
_CANDIDATES: tuple[Path, ...] = (
    Path("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc"),
    Path("/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc"),
    Path("/usr/share/fonts/truetype/droid/DroidSansFallbackFull.ttf"),
    Path("/usr/share/fonts/truetype/arphic/uming.ttc"),
)
_lock = threading.Lock()
_registered: dict[str, Path] = {}
"""Font name -> file it was registered from (empty until first use)."""


def font_candidates() -> list[Path]:
    """Where the font is looked for, in order: ``$BRANCHLESS_CJK_FONT`` first, then Debian paths."""
    override = os.environ.get(ENV_FONT)
    return ([Path(override)] if override else []) + list(_CANDIDATES)


def cjk_font() -> str:
    """Register the CJK font with reportlab (once per process) and return its name.

    Parsing the collection costs ~0.3 s, so it happens once; later calls are a dictionary lookup.
    Raises :class:`FontUnavailable` naming every path tried, so the operator knows what to install.
    """
    if FONT_NAME in _registered:
        return FONT_NAME
    with _lock:
        if FONT_NAME in _registered:
            return FONT_NAME
        from reportlab.pdfbase import pdfmetrics
        from reportlab.pdfbase.ttfonts import TTFont

        tried = font_candidates()
        for path in tried:
            if not path.is_file():
                continue
            try:
                pdfmetrics.registerFont(TTFont(FONT_NAME, str(path), subfontIndex=0))
            except Exception:  # noqa: S112  # a broken or CFF font: fall through to the next candidate
                continue
            _registered[FONT_NAME] = path
            return FONT_NAME
        raise FontUnavailable(
            "no TrueType CJK font found (tried: "
            + ", ".join(str(p) for p in tried)
            + "); install Debian's fonts-wqy-microhei or set "
            + ENV_FONT
        )
