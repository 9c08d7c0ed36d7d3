"""Each escaping filter keeps a hostile value as data in the syntax it escapes into: the value
comes back exactly from the real parser of that syntax (or is refused with a reason)."""

from __future__ import annotations

import subprocess

import pytest
import yaml

from mlgen.render.filters import UnsafeValue, json_value, shell, yaml_block, yaml_value
from mlgen.targets.onprem.filters import envfile, systemd_text, systemd_word

pytest.importorskip("hypothesis")
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

HOSTILE = [
    "", "no", "yes", "~", "null", "0x1F", "1e3", ".inf", "-x", "*a", "&a", "!tag", "|", ">", "# c", "a: b",
    "'", '"', "`id`", "$(touch /tmp/pwned)", "${HOME}", "%n %i %%", "{{ 7*7 }}", "{% raw %}", "\\", "a\nb", "a\r\nb",
    "\t", "\u202e rtl", "e\u0301", "\U0001F600", "\u2028\u2029\x85", "\ufeff", "x" * 5000,
]
text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=60)


@pytest.mark.parametrize("value", HOSTILE)
def test_yaml_values_round_trip(value: str) -> None:
    assert yaml.safe_load(f"key: {yaml_value(value)}\n") == {"key": value}
    assert "\n" not in yaml_value(value)


@given(text)
@settings(max_examples=300, deadline=None)
def test_yaml_values_round_trip_for_any_text(value: str) -> None:
    assert yaml.safe_load(f"key: {yaml_value(value)}\n") == {"key": value}


def test_yaml_blocks_nest_under_a_key() -> None:
    data = {"env": {"A": "no", "B": "a\nb"}, "list": ["*x", "- y"]}
    assert yaml.safe_load("root:\n  " + yaml_block(data, 2) + "\n") == {"root": data}


@pytest.mark.parametrize("value", [v for v in HOSTILE if "\x00" not in v])
def test_shell_words_reach_the_program_unchanged(value: str) -> None:
    script = f"printf '%s' {shell(value)}"
    result = subprocess.run(["bash", "-c", script], capture_output=True)
    assert result.returncode == 0
    assert result.stdout.decode("utf-8", "surrogateescape") == value


def test_shell_refuses_nul() -> None:
    with pytest.raises(UnsafeValue):
        shell("a\x00b")


@pytest.mark.parametrize("value", HOSTILE)
def test_json_values_round_trip(value: str) -> None:
    import json

    assert json.loads(json_value(value)) == value


@pytest.mark.parametrize("value", HOSTILE)
def test_systemd_text_stays_on_one_line_with_specifiers_escaped(value: str) -> None:
    escaped = systemd_text(value)
    assert "\n" not in escaped and "\r" not in escaped
    assert escaped.replace("%%", "").count("%") == 0


@pytest.mark.parametrize("value", ["a b", 'say "hi"', "50%", "$HOME", "back\\slash", "tab\there", "new\nline"])
def test_systemd_words_are_single_quoted_words(value: str) -> None:
    word = systemd_word(value)
    assert word.startswith('"') and word.endswith('"') and "\n" not in word
    assert "$$" in word if "$" in value else True
    assert "%%" in word if "%" in value else True


@pytest.mark.parametrize("value", ["plain", 'quote " and \\ and ` and $HOME', "multi\nline", "%h", "  spaced  "])
def test_envfile_values_are_double_quoted_with_systemd_escapes(value: str) -> None:
    quoted = envfile(value)
    assert quoted.startswith('"') and quoted.endswith('"')
    inner = quoted[1:-1]
    unescaped, index = [], 0
    while index < len(inner):  # systemd's env-file reader: \\ \" \` \$ unescape, the rest is kept
        if inner[index] == "\\" and inner[index + 1] in '"\\`$':
            unescaped.append(inner[index + 1])
            index += 2
        else:
            assert inner[index] not in '"`$' or inner[index - 1] == "\\"
            unescaped.append(inner[index])
            index += 1
    assert "".join(unescaped) == value


def test_envfile_refuses_control_characters_systemd_would_reject() -> None:
    with pytest.raises(UnsafeValue):
        envfile("bell\x07")


def test_words_with_an_equals_sign_are_quoted_so_arrays_keep_them_literal() -> None:
    assert shell("6=NULL") == "'6=NULL'"
    result = subprocess.run(["bash", "-c", f"a=({shell('6=NULL')} {shell('k=v')}); printf '%s|' \"${{a[@]}}\""],
                            capture_output=True, text=True)
    assert result.stdout == "6=NULL|k=v|"
