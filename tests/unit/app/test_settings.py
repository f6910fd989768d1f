"""Settings: defaults, and a bad value names its variable."""

from __future__ import annotations

import pytest

from app.settings import SettingsError, load_settings


def test_defaults_select_embedded_sqlite_under_var() -> None:
    s = load_settings({})
    assert s.database_url == "sqlite:///var/branchless.sqlite3"
    assert not s.is_postgres
    assert s.port == 8000


def test_postgres_url_selects_postgres() -> None:
    assert load_settings({"DATABASE_URL": "postgresql://u@127.0.0.1:5432/db"}).is_postgres


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"BRANCHLESS_PORT": "eighty"}, "BRANCHLESS_PORT"),
        ({"BRANCHLESS_PORT": "70000"}, "BRANCHLESS_PORT"),
        ({"BRANCHLESS_CPU_WORKERS": "0"}, "BRANCHLESS_CPU_WORKERS"),
        ({"BRANCHLESS_ENVIRONMENT": "prod"}, "BRANCHLESS_ENVIRONMENT"),
        ({"BRANCHLESS_LOG_JSON": "maybe"}, "BRANCHLESS_LOG_JSON"),
        ({"DATABASE_URL": "mysql://root@localhost/x"}, "DATABASE_URL"),
    ],
)
def test_bad_value_names_the_variable(env: dict[str, str], named: str) -> None:
    with pytest.raises(SettingsError, match=named):
        load_settings(env)


def test_production_refuses_generated_secrets() -> None:
    with pytest.raises(SettingsError, match="BRANCHLESS_SECRET_KEY"):
        load_settings({"BRANCHLESS_ENVIRONMENT": "production"})


def test_booleans_and_numbers_parse_from_text() -> None:
    s = load_settings({"BRANCHLESS_LOG_JSON": "false", "BRANCHLESS_PORT": "9000"})
    assert s.log_json is False
    assert s.port == 9000
