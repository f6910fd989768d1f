"""``branchless serve --workers N``: several processes only on PostgreSQL."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from app.cli import main
from app.settings import get_settings


def test_several_workers_need_postgresql() -> None:
    if get_settings().is_postgres:
        pytest.skip("the embedded mode's refusal: runs on the SQLite pass")
    result = CliRunner().invoke(main, ["serve", "--workers", "2", "--port", "1"])
    assert result.exit_code != 0
    assert "need PostgreSQL" in result.output


def test_workers_must_be_positive() -> None:
    result = CliRunner().invoke(main, ["serve", "--workers", "0"])
    assert result.exit_code == 2
    assert "--workers" in result.output
