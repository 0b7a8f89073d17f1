"""C identifiers from layer names: sanitized, validated by regex, unique, never a C++ keyword."""

from __future__ import annotations

import re

_IDENT_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,47}$")
_CPP_KEYWORDS = frozenset("""
alignas alignof and and_eq asm auto bitand bitor bool break case catch char char16_t char32_t class compl
const constexpr const_cast continue decltype default delete do double dynamic_cast else enum explicit
export extern false float for friend goto if inline int long mutable namespace new noexcept not not_eq
nullptr operator or or_eq private protected public register reinterpret_cast return short signed sizeof
static static_assert static_cast struct switch template this thread_local throw true try typedef typeid
typename union unsigned using virtual void volatile wchar_t while xor xor_eq main std hls ap_int ap_uint
""".split())


def is_identifier(name: str) -> bool:
    """True for a safe generated identifier (letters, digits, single underscores; no keyword)."""
    return bool(_IDENT_RE.fullmatch(name)) and "__" not in name and name not in _CPP_KEYWORDS


def sanitize(name: str, taken: set[str] | None = None) -> str:
    """A safe C identifier built from `name` (anything else replaced by _), unique within `taken`
    (which it updates)."""
    ident = re.sub(r"[^A-Za-z0-9]+", "_", str(name)).strip("_")[:40]
    if not ident or not ident[0].isalpha():
        ident = f"l_{ident}".rstrip("_") if ident else "layer"
    if ident.lower() in _CPP_KEYWORDS or ident in _CPP_KEYWORDS:
        ident = f"{ident}_l"
    base, i = ident, 1
    while taken is not None and ident in taken:
        ident = f"{base}_{i}"
        i += 1
    if not is_identifier(ident):
        raise ValueError(f"could not build an identifier from {name!r}")
    if taken is not None:
        taken.add(ident)
    return ident
