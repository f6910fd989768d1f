"""Decision tables: hit policies, limits, JSON and validation errors at the cell."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import msgspec
import pytest

from credit.engine.errors import RulesetInvalid
from credit.engine.features import Features
from credit.engine.rules import decide, decide_frame, load_ruleset, ruleset_from_json, ruleset_to_json
from credit.engine.ruleset import Condition, Defaults, Row, Ruleset, ruleset_issues

from .strategies import frame_of, good_features, replace

RULESETS = Path(__file__).resolve().parents[3] / "credit" / "rulesets"


def table(policy: str = "first", **changes: Any) -> Ruleset:
    knock_outs = [
        Row(outcome="decline", conditions=[Condition("status", "==", "abnormal")], reasons=["STATUS_ABNORMAL"]),
        Row(outcome="decline", conditions=[Condition("grade", "in", ["C", "D"])], reasons=["GRADE_C_OR_D"]),
        Row(outcome="refer", conditions=[Condition("years_registered", "<", 2)], reasons=["YOUNG"]),
        Row(
            outcome="refer",
            conditions=[Condition("sales_yoy_change", "<", -0.3)],
            limit="min(2 * tax_paid_12m_fen, cap_fen)",
            reasons=["SALES_DOWN"],
        ),
        Row(
            outcome="approve",
            conditions=[Condition("grade", "==", "A")],
            price_tier="T1",
            limit="10 * tax_paid_12m_fen",
        ),
    ]
    ruleset = Ruleset(
        product="tax_loan",
        version="t1",
        hit_policy=policy,
        max_limit_fen=300_000_000,
        limit_step_fen=100_000,
        constants={"k": 8, "cap_fen": 300_000_000},
        rows=knock_outs,
        defaults=Defaults(outcome="approve", limit="min(k * tax_paid_12m_fen, cap_fen)", price_tier="T2"),
    )
    return replace(ruleset, **changes)


def test_first_hit_wins() -> None:
    d = decide(table(), good_features(status="abnormal", grade="D"))
    assert (d.outcome, d.reasons, d.rows_hit, d.limit_fen, d.price_tier) == (
        "decline",
        ["STATUS_ABNORMAL"],
        [0],
        0,
        None,
    )


def test_no_hit_takes_the_defaults_with_the_limit_rounded_down_to_the_step() -> None:
    d = decide(table(), good_features(tax_paid_12m_fen=1_234_567))
    assert (d.outcome, d.rows_hit, d.price_tier, d.reasons) == ("approve", [], "T2", [])
    assert d.limit_fen == 9_800_000  # 8 x 1,234,567 = 9,876,536 fen, down to a multiple of 1,000 yuan
    assert (d.product, d.ruleset_version) == ("tax_loan", "t1")


def test_limit_never_exceeds_the_product_ceiling() -> None:
    rs = table(defaults=Defaults(outcome="approve", limit="500 * tax_paid_12m_fen"))
    assert decide(rs, good_features(tax_paid_12m_fen=10**9)).limit_fen == 300_000_000


def test_row_formula_overrides_the_default_one() -> None:
    d = decide(table(), good_features(grade="A", tax_paid_12m_fen=1_000_000))
    assert (d.outcome, d.limit_fen, d.price_tier) == ("approve", 10_000_000, "T1")


def test_collect_reports_every_knock_out_and_keeps_the_worst_outcome() -> None:
    applicant = good_features(grade="C", years_registered=1.0, sales_yoy_change=-0.5)
    d = decide(table("collect"), applicant)
    assert d.outcome == "decline"
    assert d.reasons == ["GRADE_C_OR_D", "YOUNG", "SALES_DOWN"]
    assert d.rows_hit == [1, 2, 3]
    assert d.limit_fen == 0


def test_collect_refer_takes_the_smallest_limit_of_the_rows_that_hit() -> None:
    d = decide(table("collect"), good_features(sales_yoy_change=-0.5, tax_paid_12m_fen=1_000_000))
    assert (d.outcome, d.reasons, d.limit_fen, d.price_tier) == ("refer", ["SALES_DOWN"], 2_000_000, "T2")


def test_collect_without_hits_takes_the_defaults() -> None:
    rs = table("collect", defaults=Defaults(outcome="refer", limit="k * tax_paid_12m_fen", reasons=["MANUAL"]))
    d = decide(rs, good_features())
    assert (d.outcome, d.reasons, d.rows_hit) == ("refer", ["MANUAL"], [])


@pytest.mark.parametrize("policy", ["first", "collect"])
def test_frame_gives_the_same_decisions_as_one_by_one(policy: str) -> None:
    applicants = [
        good_features(),
        good_features(grade="A"),
        good_features(status="abnormal"),
        good_features(grade="D", years_registered=0.5),
        good_features(sales_yoy_change=-0.3),
        good_features(sales_yoy_change=-0.31, years_registered=1.99),
    ]
    frame = decide_frame(table(policy), frame_of(applicants))
    for applicant, row in zip(applicants, frame.iter_rows(named=True), strict=True):
        d = decide(table(policy), applicant)
        assert (d.outcome, d.limit_fen, d.price_tier, d.reasons) == (
            row["outcome"],
            row["limit_fen"],
            row["price_tier"],
            row["reasons"],
        )


def test_json_round_trip_keeps_the_table() -> None:
    rs = table("collect")
    again = ruleset_from_json(ruleset_to_json(rs))
    assert again == rs
    assert '"hitPolicy": "collect"' in ruleset_to_json(rs).decode()


@pytest.mark.parametrize("name", ["ruleset_tax_loan_v1.json", "ruleset_tax_loan_v2_challenger.json"])
def test_shipped_rulesets_are_valid_and_in_canonical_form(name: str) -> None:
    path = RULESETS / name
    ruleset = load_ruleset(path)
    assert ruleset.product == "tax_loan"
    assert ruleset_to_json(ruleset) == path.read_bytes()


def test_published_ruleset_decides_the_product_as_described() -> None:
    v1 = load_ruleset(RULESETS / "ruleset_tax_loan_v1.json")
    a = decide(v1, good_features(grade="A", tax_paid_12m_fen=5_000_000, sales_12m_fen=10**9))
    assert (a.outcome, a.price_tier, a.limit_fen) == ("approve", "T1", 50_000_000)  # 10 x tax paid
    assert decide(v1, good_features(grade="A", tax_paid_12m_fen=10**8)).limit_fen == 150_000_000  # 30% of sales
    assert decide(v1, good_features(grade="M")).reasons == ["GRADE_M"]
    assert decide(v1, good_features(arrears_fen=1)).reasons == ["TAX_ARREARS"]
    assert decide(v1, good_features(sales_yoy_change=-0.31)).outcome == "refer"
    assert decide(v1, good_features(years_registered=1.5)).reasons == ["REGISTERED_UNDER_2Y"]


def _paths(data: dict[str, Any]) -> dict[str, str]:
    with pytest.raises(RulesetInvalid) as caught:
        ruleset_from_json(json.dumps(data))
    return {f.path: f.message for f in caught.value.fields}


def _valid() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(ruleset_to_json(table()))
    return data


def test_every_problem_is_reported_at_its_cell() -> None:
    data = _valid()
    data["version"] = "no spaces allowed"
    data["hitPolicy"] = "best"
    data["constants"]["grade"] = 1
    data["rows"][0]["conditions"][0]["feature"] = "credit_score"
    data["rows"][1]["conditions"][0]["value"] = ["C", "E"]
    data["rows"][2]["conditions"][0]["op"] = "~"
    data["rows"][2]["outcome"] = "maybe"
    data["rows"][3]["conditions"].append({"feature": "grade", "op": "<", "value": "B"})
    data["rows"][3]["limit"] = "open('/etc/passwd')"
    data["rows"][3]["reasons"] = ["lower case"]
    data["rows"][4]["priceTier"] = "tier one!"
    data["defaults"]["outcome"] = "decline"
    paths = _paths(data)
    assert set(paths) == {
        "version",
        "hitPolicy",
        "constants.grade",
        "rows[0].conditions[0].feature",
        "rows[1].conditions[0].value",
        "rows[2].conditions[0].op",
        "rows[2].outcome",
        "rows[3].conditions[1].op",
        "rows[3].limit",
        "rows[3].reasons[0]",
        "rows[4].priceTier",
        "defaults.reasons",
    }
    assert "'E' is not a grade" in paths["rows[1].conditions[0].value"]


@pytest.mark.parametrize(
    ("condition", "message"),
    [
        ({"feature": "years_registered", "op": "between", "value": [3, 1]}, "low must not exceed high"),
        ({"feature": "years_registered", "op": "between", "value": [1]}, "two numbers"),
        ({"feature": "years_registered", "op": "in", "value": [1, 2]}, "measurement"),
        ({"feature": "zero_months_24m", "op": "in", "value": [1.5]}, "whole numbers"),
        ({"feature": "zero_months_24m", "op": "in", "value": []}, "whole numbers"),
        ({"feature": "arrears_fen", "op": ">", "value": "0"}, "a number"),
        ({"feature": "arrears_fen", "op": ">", "value": 1e16}, "magnitude"),
        ({"feature": "status", "op": "==", "value": "closed"}, "one of normal, abnormal"),
        ({"feature": "industry", "op": "in", "value": []}, "non-empty"),
    ],
)
def test_bad_condition_values_point_at_the_value_or_op(condition: dict[str, Any], message: str) -> None:
    data = _valid()
    data["rows"][2]["conditions"] = [condition]
    paths = _paths(data)
    (path, text), *_ = paths.items()
    assert path in ("rows[2].conditions[0].value", "rows[2].conditions[0].op")
    assert message in text


def test_structural_errors_name_their_path() -> None:
    data = _valid()
    data["rows"][3]["conditions"][0]["value"] = {"not": "a value"}
    assert list(_paths(data)) == ["rows[3].conditions[0].value"]
    data = _valid()
    data["rows"][1]["colour"] = "red"
    assert list(_paths(data)) == ["rows[1]"]
    assert list(_paths({"product": "x"})) == [""]


def test_rows_after_a_catch_all_are_unreachable_under_first() -> None:
    rs = table(rows=[Row(outcome="approve"), Row(outcome="decline", reasons=["X_Y"])])
    assert [i.path for i in ruleset_issues(rs)] == ["rows[1]"]
    assert ruleset_issues(replace(rs, hit_policy="collect")) == []


def test_limits_and_sizes_are_bounded() -> None:
    rs = table(max_limit_fen=0, limit_step_fen=0, rows=[Row(outcome="approve")] * 201)
    paths = {i.path for i in ruleset_issues(replace(rs, hit_policy="collect"))}
    assert {"maxLimitFen", "limitStepFen", "rows"} <= paths


def test_a_stored_decision_replays_to_the_same_result() -> None:
    """What the service stores (ruleset JSON, feature snapshot, decision) is enough to replay."""
    v1 = load_ruleset(RULESETS / "ruleset_tax_loan_v1.json")
    for applicant in (
        good_features(grade="A", tax_paid_12m_fen=1_234_567),
        good_features(grade="M", years_registered=1.1),
    ):
        stored = (ruleset_to_json(v1), msgspec.json.encode(applicant), msgspec.json.encode(decide(v1, applicant)))
        ruleset, snapshot, decision = stored
        replayed = decide(ruleset_from_json(ruleset), msgspec.json.decode(snapshot, type=Features))
        assert msgspec.json.encode(replayed) == decision
