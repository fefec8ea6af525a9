from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from server.directory.credit_code import (
    ALPHABET,
    check_character,
    credit_code_problems,
    is_valid_credit_code,
    make_credit_code,
)

REAL_CODES = ["91350100M000100Y43", "91110000600037341L"]


def test_real_codes_are_valid() -> None:
    for code in REAL_CODES:
        assert is_valid_credit_code(code), code


def test_each_problem_is_named() -> None:
    assert "18位" in credit_code_problems("9135010")[0]
    assert "不允许的字符" in credit_code_problems("91350100M000100YO3")[0]
    assert "行政区划" in credit_code_problems("9135A100M000100Y43")[0]
    assert "校验位" in credit_code_problems("91350100M000100Y44")[0]
    assert credit_code_problems("91350100m000100y43")  # lower case is not the standard form


prefix = st.tuples(st.sampled_from("159Y"), st.sampled_from("123"), st.text("0123456789", min_size=6, max_size=6),
                   st.text(ALPHABET, min_size=8, max_size=8))


@settings(max_examples=200, database=None, derandomize=True)
@given(prefix, st.integers(0, 17), st.sampled_from(ALPHABET))
def test_built_codes_validate_and_any_single_change_is_caught(parts, position: int, replacement: str) -> None:  # type: ignore[no-untyped-def]
    code = make_credit_code(*parts)
    assert is_valid_credit_code(code)
    if code[position] == replacement or (2 <= position < 8 and not replacement.isdigit()):
        return
    changed = code[:position] + replacement + code[position + 1:]
    # The weights are all coprime to 31, so one changed character always changes the check.
    assert not is_valid_credit_code(changed)


def test_check_character_rejects_foreign_alphabet() -> None:
    import pytest
    with pytest.raises(ValueError):
        check_character("I" * 17)
