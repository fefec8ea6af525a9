"""Unified social credit code (统一社会信用代码), GB 32100-2015.

18 characters: registration authority (1), organisation type (1), administrative
division code (6 digits), organisation code (9), check character (1). The
alphabet leaves out I, O, S, V and Z so the code is read aloud without mistakes.
"""
from __future__ import annotations

ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)
_VALUE = {ch: i for i, ch in enumerate(ALPHABET)}

# GB 11714 organisation-code check (positions 9-17 of the credit code).
_ORG_WEIGHTS = (3, 7, 9, 10, 5, 8, 4, 2)


def check_character(first17: str) -> str:
    """The GB 32100 check character for the first 17 characters."""
    if len(first17) != 17 or any(ch not in _VALUE for ch in first17):
        raise ValueError("need 17 characters from the GB 32100 alphabet")
    total = sum(_VALUE[ch] * w for ch, w in zip(first17, WEIGHTS, strict=True))
    return ALPHABET[(31 - total % 31) % 31]


def organisation_check_character(first8: str) -> str:
    """The GB 11714 check character for an 8-character organisation code body."""
    total = sum(_VALUE[ch] * w for ch, w in zip(first8, _ORG_WEIGHTS, strict=True))
    value = 11 - total % 11
    return "X" if value == 10 else "0" if value == 11 else str(value)


def credit_code_problems(code: str) -> list[str]:
    """Why ``code`` is not a valid credit code; empty when it is valid."""
    if len(code) != 18:
        return [f"统一社会信用代码应为18位，实际为{len(code)}位"]
    bad = sorted({ch for ch in code if ch not in _VALUE})
    if bad:
        return [f"统一社会信用代码含有不允许的字符：{''.join(bad)}（不使用 I、O、S、V、Z 和小写字母）"]
    if not code[2:8].isdigit():
        return ["统一社会信用代码第3至8位应为行政区划代码（数字）"]
    expected = check_character(code[:17])
    if code[17] != expected:
        return [f"统一社会信用代码校验位错误：应为 {expected}，实为 {code[17]}"]
    return []


def is_valid_credit_code(code: str) -> bool:
    return not credit_code_problems(code)


def make_credit_code(authority: str, kind: str, division: str, org_body: str) -> str:
    """Build a valid code from its parts (the organisation code gets its own check)."""
    org = org_body + organisation_check_character(org_body)
    first17 = authority + kind + division + org
    return first17 + check_character(first17)
