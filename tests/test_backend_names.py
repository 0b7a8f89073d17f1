"""Generated C identifiers: hostile layer names are cleaned into safe, unique identifiers."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from codesign.backend.names import is_identifier, sanitize


@pytest.mark.parametrize("name,ident", [
    ("conv0", "conv0"),
    ("/features/conv.0", "features_conv_0"),
    ("0conv", "l_0conv"),
    ("int", "int_l"),
    ("while", "while_l"),
    ("", "layer"),
    ("___", "layer"),
    ("a;system(\"rm -rf /\");//", "a_system_rm_rf"),
    ("x\n#include </etc/passwd>", "x_include_etc_passwd"),
    ("conv*/ /*", "conv"),
    ("über-layer", "ber_layer"),
])
def test_sanitize_cleans_hostile_names(name, ident):
    assert sanitize(name) == ident
    assert is_identifier(ident)


def test_sanitize_makes_names_unique_and_short():
    taken: set[str] = set()
    assert [sanitize(n, taken) for n in ("fc", "fc", "f c", "fc_1")] == ["fc", "fc_1", "f_c", "fc_1_1"]
    assert len(sanitize("x" * 500)) <= 40


@pytest.mark.parametrize("bad", ["1abc", "a b", "a__b", "int", "_x", "x" * 49, "a-b", "a;"])
def test_is_identifier_rejects_unsafe_text(bad):
    assert not is_identifier(bad)


@given(st.text(max_size=80))
def test_any_text_becomes_a_safe_identifier(text):
    assert is_identifier(sanitize(text, set()))
