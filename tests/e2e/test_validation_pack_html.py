"""The validation pack's HTML in headless Chromium: the summary on top, every section and chart."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fin_assets.lib.validation.pack import PACK_SECTIONS, write_pack
from tests.browser import artifact_path, browser_page  # noqa: F401
from tests.unit.test_validation_report import CHARTS, report_pack

#: Per chart: the svg's own box and the drawn elements whose box has an area.
_CHART_BOXES = """
() => Array.from(document.querySelectorAll('svg.chart')).map(svg => {
  const box = svg.getBoundingClientRect();
  const drawn = Array.from(svg.querySelectorAll('path, rect, circle')).filter(el => {
    const b = el.getBoundingClientRect();
    return b.width > 0 && b.height > 0;
  });
  return {chart: svg.dataset.chart, width: box.width, height: box.height, drawn: drawn.length};
})
"""


def test_pack_html_renders_every_section_and_chart(
    browser_page: Any,  # noqa: F811
    tmp_path: Path,
) -> None:
    pack = report_pack()
    paths = write_pack(pack, tmp_path / "pack")
    page = browser_page
    page.goto(paths["html"].as_uri())
    assert page.title().startswith("Validation pack — fraud_detector v7")
    for key in PACK_SECTIONS:
        section = page.locator(f"section#{key}")
        assert section.count() == 1, key
        assert section.is_visible(), key
        assert section.locator("h2").is_visible(), key
    charts = page.evaluate(_CHART_BOXES)
    assert {c["chart"] for c in charts} == CHARTS
    for chart in charts:
        assert chart["width"] > 0 and chart["height"] > 0, chart
        assert chart["drawn"] > 0, chart
    banner = page.locator("div.banner")
    assert banner.is_visible()
    assert banner.inner_text().startswith("Status: ")
    # The one-page summary opens the page: visible above the fold, before the first detail.
    summary = page.locator("section#summary")
    assert summary.is_visible()
    box = summary.bounding_box()
    viewport = page.viewport_size
    assert box is not None and viewport is not None
    assert 0 <= box["y"] < viewport["height"] / 4
    verdict = summary.locator("p.verdict").bounding_box()
    assert verdict is not None and verdict["y"] + verdict["height"] <= viewport["height"]
    identity = page.locator("section#identity").bounding_box()
    assert identity is not None and box["y"] + box["height"] <= identity["y"]
    assert summary.locator("tbody tr").count() == len(pack["gates"])
    sweep = page.locator("svg#threshold-sweep")
    sweep.scroll_into_view_if_needed()
    assert sweep.is_visible()
    series = sweep.locator("path[data-series]")
    assert series.count() == 1 + len(pack["fairness"]["protected_assessed"])
    for i in range(series.count()):
        line = series.nth(i).bounding_box()
        assert line is not None and line["width"] > 0 and line["height"] > 0
    assert sweep.locator("line.reference").count() == 1
    summary.screenshot(path=str(artifact_path("validation_pack_summary.png")))
    sweep.screenshot(path=str(artifact_path("validation_pack_threshold_sweep.png")))
    screenshot = artifact_path("validation_pack.png")
    page.screenshot(path=str(screenshot), full_page=True)
    assert screenshot.stat().st_size > 10_000
    # Printed on A4 (794 x 1123 CSS px), header, banner and summary fit the first page.
    page.set_viewport_size({"width": 794, "height": 1123})
    page.emulate_media(media="print")
    printed = page.locator("section#summary").bounding_box()
    assert printed is not None and printed["y"] + printed["height"] <= 1123
