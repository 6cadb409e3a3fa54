"""`.env.example` documents every variable the settings class reads, and nothing that no one reads."""
from __future__ import annotations

import re

import pytest
from pydantic import AliasChoices

from core.config import Settings
from tests.deploy.support import ROOT

EXAMPLE = (ROOT / ".env.example").read_text(encoding="utf-8")
LINE = re.compile(r"^(#\s*)?([A-Z][A-Z0-9_]*)=(.*)$", re.M)
DOCUMENTED = {m.group(2) for m in LINE.finditer(EXAMPLE)}


def settings_variables() -> set[str]:
    """The environment variables Settings reads: each field's name (or its aliases), upper-cased."""
    names = set()
    for name, field in Settings.model_fields.items():
        alias = field.validation_alias or field.alias
        choices = alias.choices if isinstance(alias, AliasChoices) else [alias or name]
        names |= {str(c).upper() for c in choices}
    return names


def variables_read_by(*paths: str) -> set[str]:
    """${NAME…} and env.get('NAME') in the files the stack runs."""
    text = "\n".join((ROOT / p).read_text(encoding="utf-8") for p in paths)
    return set(re.findall(r"\$\{([A-Z][A-Z0-9_]*)", text)) | set(re.findall(r"get\(['\"]([A-Z][A-Z0-9_]*)['\"]", text))


def streamlit_variables() -> set[str]:
    """The environment variables `streamlit run` maps onto its options (STREAMLIT_SERVER_BASE_URL_PATH, …)."""
    from streamlit import config

    return {option.env_var for option in config.get_config_options().values()}


def test_every_setting_is_documented() -> None:
    missing = sorted(settings_variables() - DOCUMENTED)
    assert not missing, ("core.config.Settings reads these, but .env.example does not document them; add a line "
                         "`NAME=value` (or `# NAME=default` when the default suits staging) for each: "
                         + ", ".join(missing))


def test_every_documented_variable_is_read_by_something() -> None:
    known = settings_variables() | variables_read_by("compose.yaml", "scripts/docker-entrypoint.sh",
                                                     "scripts/healthcheck.py")
    unknown = sorted(DOCUMENTED - known - streamlit_variables())
    assert not unknown, f".env.example documents variables nothing reads (typo, or a removed setting?): {unknown}"


def test_compose_variables_are_documented() -> None:
    missing = sorted(variables_read_by("compose.yaml") - DOCUMENTED)
    assert not missing, f"compose.yaml interpolates these; document them in .env.example: {missing}"


def test_the_example_values_are_valid_once_the_operator_fills_in_the_secrets() -> None:
    active = {m.group(2).lower(): m.group(3) for m in LINE.finditer(EXAMPLE) if not m.group(1)}
    values = {k: v for k, v in active.items() if k.upper() in settings_variables()}
    # As shipped, the stack must refuse to start: the example cookie key and the empty audit key are not secrets.
    with pytest.raises(ValueError, match="COOKIE_KEY: the example key is refused outside development"):
        Settings(_env_file=None, **{**values, "audit_key": "a" * 40})
    with pytest.raises(ValueError, match="audit_key[^\n]*\n[^\n]*at least 32 characters"):
        Settings(_env_file=None, **{**values, "cookie_key": "a-real-secret-from-the-operator"})
    settings = Settings(_env_file=None, **{**values, "cookie_key": "a-real-secret-from-the-operator",
                                           "audit_key": "another-real-secret-of-forty-characters-x"})
    assert settings.environment == "staging"
