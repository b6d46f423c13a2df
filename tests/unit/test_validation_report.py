"""HTML and model card of the validation pack: every section, charts drawn from the pack's data."""

from __future__ import annotations

import copy
import html
import json
import re
from datetime import timedelta
from html.parser import HTMLParser
from typing import Any

import numpy as np
import pytest

from fin_assets.lib.validation.pack import PACK_SECTIONS, ChampionSubject, build_validation_pack
from fin_assets.lib.validation.report.model_card import render_model_card
from fin_assets.lib.validation.report.section_html import render_html
from tests.unit.test_validation_pack import (
    GENERATED,
    PER_DAY,
    TEST_START,
    fraud_subject,
    small_policy,
    synthetic_transactions,
    train_booster,
)

CHARTS = {"roc", "pr", "reliability", "stability", "importance", "fairness", "threshold_sweep"}


def report_pack() -> dict[str, Any]:
    """A fraud pack with every optional part present: champion, protected attribute, SHAP."""
    train = synthetic_transactions(TEST_START - timedelta(days=10), 4, PER_DAY, seed=1)
    test = synthetic_transactions(TEST_START, 3, PER_DAY, seed=2)
    booster = train_booster(train)
    champion = ChampionSubject(
        identity={"model_name": "fraud_detector", "model_version": 1},
        score=lambda f: f["tx_amount"].to_numpy(dtype=np.float64) / 1e4,
    )
    return build_validation_pack(
        fraud_subject(test, booster, reference=train),
        small_policy(bootstrap_samples=20),
        champion=champion,
        generated_at=GENERATED,
    )


class _Svg(HTMLParser):
    """Collects sections and, per chart, its drawn elements and their attributes."""

    def __init__(self) -> None:
        super().__init__()
        self.sections: list[str] = []
        self.charts: dict[str, list[tuple[str, dict[str, str]]]] = {}
        self._chart: str | None = None
        self.scripts = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k: v or "" for k, v in attrs}
        if tag == "section":
            self.sections.append(values["id"])
        if tag == "script":
            self.scripts += 1
        if tag == "svg" and "chart" in values.get("class", "").split():
            self._chart = values["data-chart"]
            self.charts[self._chart] = []
        elif self._chart is not None and tag in ("path", "rect", "circle"):
            self.charts[self._chart].append((tag, values))

    handle_startendtag = handle_starttag

    def handle_endtag(self, tag: str) -> None:
        if tag == "svg":
            self._chart = None


@pytest.fixture(scope="module")
def pack() -> dict[str, Any]:
    return report_pack()


@pytest.fixture(scope="module")
def parsed(pack: dict[str, Any]) -> _Svg:
    parser = _Svg()
    parser.feed(render_html(pack))
    return parser


def _points(d: str) -> int:
    return len(re.findall(r"[ML]-?[\d.]+,-?[\d.]+", d))


def test_html_has_one_section_per_pack_key_in_order(pack: dict[str, Any], parsed: _Svg) -> None:
    assert parsed.sections == ["summary", *PACK_SECTIONS]
    page = render_html(pack)
    assert page.startswith("<!DOCTYPE html>")
    assert parsed.scripts == 0
    assert not re.search(r"(src|href)=\"https?:", page), "the page must not fetch anything"
    assert render_html(pack) == page  # a pure function of the pack


def test_charts_are_drawn_from_the_pack_data(pack: dict[str, Any], parsed: _Svg) -> None:
    assert set(parsed.charts) == CHARTS
    roc_paths = [a["d"] for t, a in parsed.charts["roc"] if t == "path"]
    # The diagonal (2 points) and the curve, one point per stored ROC point.
    assert sorted(_points(d) for d in roc_paths) == [
        2,
        len(pack["discrimination"]["roc_curve"]["fpr"]),
    ]
    pr_paths = [a["d"] for t, a in parsed.charts["pr"] if t == "path"]
    assert [_points(d) for d in pr_paths] == [len(pack["discrimination"]["pr_curve"]["recall"])]
    table = pack["calibration"]["reliability_table"]
    assert sum(1 for t, _ in parsed.charts["reliability"] if t == "circle") == len(table)
    days = len(pack["stability"]["per_day"])
    stability = [a["d"] for t, a in parsed.charts["stability"] if t == "path"]
    assert [_points(d) for d in stability] == [days, days]
    bars = [a for t, a in parsed.charts["importance"] if t == "rect"]
    importance = pack["explanations"]["global_importance"][:15]
    assert len(bars) == len(importance)
    widths = [float(a["width"]) for a in bars]
    assert widths == sorted(widths, reverse=True) and widths[0] > 0
    groups = pack["fairness"]["attributes"]["protected_age_band"]["groups"]
    fairness_rects = [a for t, a in parsed.charts["fairness"] if t == "rect"]
    assert len(fairness_rects) == 2 * len(groups) + 2  # favourable and FPR bars + legend keys
    for chart, elements in parsed.charts.items():
        drawn = [
            a
            for t, a in elements
            if (t == "path" and _points(a["d"]) >= 2)
            or (t in ("rect", "circle") and float(a.get("height", a.get("r", "0"))) > 0)
        ]
        assert drawn, chart


def test_text_from_the_pack_is_escaped(pack: dict[str, Any]) -> None:
    hostile = copy.deepcopy(pack)
    hostile["identity"]["model_name"] = "<script>alert('x')</script>"
    hostile["limitations"].append({"topic": "a & b", "text": "<b>bold</b>"})
    page = render_html(hostile)
    assert "<script>" not in page
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in page
    assert "&lt;b&gt;bold&lt;/b&gt;" in page and "a &amp; b" in page


def test_status_banner_and_gate_colouring(pack: dict[str, Any]) -> None:
    page = render_html(pack)
    assert f'<div class="banner {pack["status"]}">Status: {pack["status"].upper()}' in page
    for gate in pack["gates"]:
        assert f'<tr class="{gate["result"]}"><td>{gate["name"]}</td>' in page
    failed = copy.deepcopy(pack)
    failed["gates"][0].update(result="fail", blocking=True)
    failed["status"] = "failed"
    page = render_html(failed)
    name = failed["gates"][0]["name"]
    assert f'<div class="banner failed">Status: FAILED — blocking gate(s) failed: {name}' in page
    assert "tr.fail td.result{background:#fbd5d5" in page


def test_model_card_is_filled_from_the_pack(pack: dict[str, Any]) -> None:
    card = render_model_card(pack)
    assert card.startswith("# Model card: fraud_detector v7\n")
    for heading in (
        "## Intended use",
        "## Model details",
        "## Data",
        "## Metrics",
        "## Fairness",
        "## Limitations",
        "## Gates",
    ):
        assert f"\n{heading}\n" in card
    for gate in pack["gates"]:
        # Verdict gates (fairness) carry the verdict string as their value, numeric gates a number;
        # a gate without a value (the one-attribute pack has no intersectional pair) shows a dash.
        value = gate["value"]
        value = "—" if value is None else value if isinstance(value, str) else f"{value:.4f}"
        row = f"| {gate['name']} | {gate['metric']} | {value} | "
        assert row in card
        assert f"| {gate['result']} |" in card
    auc = pack["discrimination"]["auc_roc"]
    ci = pack["discrimination"]["auc_roc_ci"]
    assert f"| AUC ROC | {auc:.4f} | {ci['low']:.4f} to {ci['high']:.4f} |" in card
    assert f"**Validation status: {pack['status']}**" in card
    assert pack["champion_comparison"]["recommendation"] in card
    assert "| protected_age_band |" in card
    for item in pack["limitations"]:
        assert f"- **{item['topic']}**: {item['text']}" in card
    assert "the 100 highest scores of each day" in card


def test_a_pack_without_optional_parts_renders_without_their_charts(
    pack: dict[str, Any],
) -> None:
    bare = copy.deepcopy(pack)
    bare["stability"] = {"per_day": [], "not_applicable_reasons": {"per_day": "no time column"}}
    bare["explanations"] = {"available": False, "reason": "no booster | none"}
    bare["fairness"] = {
        "attributes": {},
        "protected_assessed": [],
        "not_applicable_reasons": {"min_air": "no protected attribute was given"},
    }
    bare["champion_comparison"] = {"available": False, "reason": "there is no champion"}
    bare["alternatives_considered"] = {"available": False, "reason": "no training rows"}
    parser = _Svg()
    parser.feed(render_html(bare))
    assert parser.sections == ["summary", *PACK_SECTIONS]
    assert set(parser.charts) == {"roc", "pr", "reliability"}
    card = render_model_card(bare)
    assert "no booster \\| none" not in card  # reasons are prose, not table cells
    assert "no booster | none" in card
    assert "Not assessed: no protected attribute was given." in card


def test_an_inconclusive_card_says_in_plain_words_that_promotion_needs_a_waiver(
    pack: dict[str, Any],
) -> None:
    passed = render_model_card(pack)
    assert "Fairness and waivers" not in passed
    unsure = copy.deepcopy(pack)
    unsure["status"] = "inconclusive"
    for gate in unsure["gates"]:
        if gate["name"] == "adverse_impact_ratio":
            gate.update(result="inconclusive", reason="a protected group has 40 rows (< 500)")
    card = render_model_card(unsure)
    paragraph = card[card.index("### Fairness and waivers") : card.index("## Explanations")]
    assert "the blocking gate(s) `adverse_impact_ratio` could not be judged" in paragraph
    assert "promotion needs a waiver recorded through the approval flow" in paragraph
    assert "--waive GATE --waiver-rationale TEXT" in paragraph
    assert "`governance.waiver_roles`" in paragraph
    # Added under the fairness section, nothing else moved.
    assert card.index("## Fairness\n") < card.index("### Fairness and waivers")
    assert card.replace(paragraph, "").count("\n## ") == passed.count("\n## ")


def _summary(page: str) -> str:
    return page[page.index('<section id="summary"') : page.index("</section>") + len("</section>")]


def _worst_air(pack: dict[str, Any]) -> dict[str, Any]:
    groups = pack["fairness"]["attributes"]["protected_age_band"]["measures"][
        "adverse_impact_ratio"
    ]["groups"]
    return min((g for g in groups if g["role"] == "compared"), key=lambda g: g["value"])


def test_summary_opens_the_page_with_every_gate_and_the_air_interval(
    pack: dict[str, Any],
) -> None:
    tagged = copy.deepcopy(pack)
    tagged["identity"]["mlflow_run_id"] = "run-0123456789abcdef"
    page = render_html(tagged)
    start = page.index('<section id="summary"')
    assert start < page.index("<nav>") < page.index('<section id="identity"')
    summary = _summary(page)
    assert "fraud_detector v7" in summary and "Intended use: Scores card transactions" in summary
    assert 'class="verdict passed">PASSED: all ' in summary
    for gate in pack["gates"]:
        assert f'<tr class="{gate["result"]}"><td>{gate["name"]}</td>' in summary
        row = summary[summary.index(f"<td>{gate['name']}</td>") :]
        assert row.index(f'<td class="result">{gate["result"]}</td>') < row.index("</tr>")
    ci = pack["discrimination"]["auc_roc_ci"]
    assert f"{ci['low']:.3f}–{ci['high']:.3f}" in summary
    worst = _worst_air(pack)
    air = f"AIR {worst['value']:.2f} ({worst['ci_low']:.2f}–{worst['ci_high']:.2f})"
    assert f"{air}, protected_age_band={worst['group']}" in summary
    for sentence in pack["fairness"]["summaries"].values():
        assert html.escape(sentence) in summary
    for words in (
        "Adverse impact ratio (four-fifths rule): PASS",
        "Standardised mean difference of scores: PASS",
        "False-positive-rate parity: PASS",
        "True-positive-rate parity: PASS",
        "Intersectional adverse impact ratio: not assessed",
    ):
        assert words in summary
    first = pack["limitations"][0]
    assert html.escape(first["text"]) in summary
    assert html.escape(pack["limitations"][-1]["text"]) not in summary  # only the first few
    # Identifiers stay in the detail sections.
    for identifier in ("run-0123456789abcdef", pack["identity"]["policy_sha256"]):
        assert identifier not in summary and identifier in page


def test_summary_names_the_gates_behind_a_failed_or_inconclusive_verdict(
    pack: dict[str, Any],
) -> None:
    unsure = copy.deepcopy(pack)
    unsure["status"] = "inconclusive"
    for gate in unsure["gates"]:
        if gate["name"] == "adverse_impact_ratio":
            gate.update(result="inconclusive")
    summary = _summary(render_html(unsure))
    assert (
        'class="verdict inconclusive">INCONCLUSIVE: the blocking gate(s) adverse_impact_ratio'
        in (summary)
    )
    assert "needs a waiver recorded through the approval flow by an authorised approver" in summary
    failed = copy.deepcopy(pack)
    failed["status"] = "failed"
    failed["gates"][0].update(result="fail")
    summary = _summary(render_html(failed))
    assert f"FAILED: the blocking gate(s) {failed['gates'][0]['name']} failed" in summary


def test_threshold_sweep_chart_plots_every_series_the_reference_and_the_operating_point(
    pack: dict[str, Any], parsed: _Svg
) -> None:
    sweep = pack["fairness"]["threshold_sweep"]
    elements = parsed.charts["threshold_sweep"]
    series = {a["data-series"]: _points(a["d"]) for t, a in elements if "data-series" in a}
    attributes = pack["fairness"]["protected_assessed"]
    assert set(series) == {"approval rate", *(f"min AIR {a}" for a in attributes)}
    assert series["approval rate"] == len(sweep["points"])
    for attribute in attributes:
        drawn = [p["min_air"][attribute] for p in sweep["points"] if p["min_air"][attribute]]
        assert series[f"min AIR {attribute}"] == len(drawn)
    page = render_html(pack)
    svg = page[page.index('<svg class="chart" id="threshold-sweep"') :]
    svg = svg[: svg.index("</svg>")]
    reference = re.search(r'<line class="reference" data-value="0.8" [^>]*>', svg)
    assert reference is not None
    y = re.findall(r'y[12]="([\d.]+)"', reference.group(0))
    assert len(y) == 2 and y[0] == y[1]
    marks = [a for t, a in elements if t == "circle" and a.get("class") == "operating-point"]
    assert len(marks) == 1 + len(attributes)


def test_fairness_detail_highlights_failing_groups_and_flagged_proxies(
    pack: dict[str, Any],
) -> None:
    page = render_html(pack)
    section = page[page.index('<section id="fairness"') :]
    section = section[: section.index("</section>")]
    worst = _worst_air(pack)
    interval = f"{worst['value']:.2f} ({worst['ci_low']:.2f}–{worst['ci_high']:.2f})"
    assert f"<td>{worst['group']}</td><td>compared</td><td>{interval}</td>" in section
    assert "v-fail" not in section
    changed = copy.deepcopy(pack)
    air = changed["fairness"]["attributes"]["protected_age_band"]["measures"]
    air["adverse_impact_ratio"]["groups"][0]["verdict"] = "fail"
    air["smd"]["groups"][0]["verdict"] = "inconclusive"
    changed["fairness"]["proxy_screening"]["pairs"][0]["flagged"] = True
    page = render_html(changed)
    section = page[page.index('<section id="fairness"') :]
    section = section[: section.index("</section>")]
    feature = changed["fairness"]["proxy_screening"]["pairs"][0]["feature"]
    assert f'<tr class="v-fail"><td>{feature}</td>' in section
    assert section.count('<tr class="v-fail">') == 2
    assert section.count('<tr class="v-inconclusive">') == 1


def test_a_pack_without_protected_attributes_says_fairness_was_not_assessed(
    pack: dict[str, Any],
) -> None:
    bare = copy.deepcopy(pack)
    bare["fairness"] = {
        "attributes": {},
        "protected_assessed": [],
        "verdicts": dict.fromkeys(("adverse_impact_ratio", "smd", "intersectional")),
        "summaries": {},
        "threshold_sweep": None,
        "proxy_screening": None,
        "not_applicable_reasons": {"min_air": "no protected attribute was given"},
    }
    page = render_html(bare)
    assert "threshold-sweep" not in page and 'data-chart="threshold_sweep"' not in page
    expected = "Fairness was not assessed: no protected attribute was given."
    assert expected in _summary(page)
    assert expected in page[page.index('<section id="fairness"') :]


def test_rendering_leaves_the_pack_unchanged(pack: dict[str, Any]) -> None:
    before = json.dumps(pack, sort_keys=True)
    render_html(pack)
    render_model_card(pack)
    assert json.dumps(pack, sort_keys=True) == before


def test_model_card_states_the_fairness_verdicts_in_words(pack: dict[str, Any]) -> None:
    card = render_model_card(pack)
    fairness = card[card.index("## Fairness\n") : card.index("## Explanations")]
    assert "- Adverse impact ratio (four-fifths rule): PASS — worst group" in fairness
    assert "- Intersectional adverse impact ratio: not assessed" in fairness
    unsure = copy.deepcopy(pack)
    unsure["status"] = "inconclusive"
    for gate in unsure["gates"]:
        if gate["name"] == "adverse_impact_ratio":
            gate.update(result="inconclusive")
    card = render_model_card(unsure)
    assert card.count("### Fairness and waivers") == 1
    assert card.count("- Adverse impact ratio (four-fifths rule):") == 1


def test_alternatives_and_both_test_sets_are_tables_of_the_page(pack: dict[str, Any]) -> None:
    page = render_html(pack)
    alternatives = page.split('<section id="alternatives_considered">')[1].split("</section>")[0]
    assert "logistic regression on standardised features" in alternatives
    # The benchmark facts, then all matured rows and the Handbook's test set.
    assert alternatives.count("<table>") == 3
    for row in pack["alternatives_considered"]["test_set"]:
        assert f"<td>{row['metric']}</td>" in alternatives
    discrimination = page.split('<section id="discrimination">')[1].split("</section>")[0]
    assert "Handbook: known-compromised cards removed" in discrimination
