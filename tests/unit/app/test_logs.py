"""Personal data never reaches the logs."""

from __future__ import annotations

import json
import logging

import pytest

from app.logs import configure_logging, get_logger, mask_text, redact


def test_numbers_are_masked_in_free_text() -> None:
    text = mask_text("id 11010519491231002X phone +8613800138000 card 6222020200112233445 amount 1200")
    assert "11010519491231002X" not in text
    assert "13800138000" not in text
    assert "6222020200112233445" not in text
    assert text.endswith("amount 1200")
    assert "002X" in text


def test_sensitive_keys_are_replaced_at_any_depth() -> None:
    event = redact(None, "info", {"event": "x", "password": "p", "nested": {"id_number": "1", "ok": "fine"}})
    assert event["password"] == "[redacted]"
    assert event["nested"] == {"id_number": "[redacted]", "ok": "fine"}


def test_log_lines_are_json_without_personal_data(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("info", json=True)
    get_logger("t").info("customer signed up with 13800138000", phone="13800138000", customer_id=7)
    logging.getLogger("plain.stdlib").warning("card 6222020200112233445 declined")
    lines = [json.loads(line) for line in capsys.readouterr().err.strip().splitlines()]
    assert lines[0]["phone"] == "[redacted]"
    assert lines[0]["customer_id"] == 7
    assert "13800138000" not in json.dumps(lines)
    assert "6222020200112233445" not in json.dumps(lines)
