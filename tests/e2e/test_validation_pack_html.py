"""The validation pack's HTML in headless Chromium: every section visible, every chart drawn."""

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
    paths = write_pack(report_pack(), tmp_path / "pack")
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
    screenshot = artifact_path("validation_pack.png")
    page.screenshot(path=str(screenshot), full_page=True)
    assert screenshot.stat().st_size > 10_000
