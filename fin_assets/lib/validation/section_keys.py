"""The sections of the validation pack, in reading order, with their headings.

Why a module of its own: the pack engine orders the pack by these keys and the report renders one
``<section>`` per key under its heading. Both import them from here, so the keys are written
once and neither the engine nor the report imports the other's module to learn them.
"""

from __future__ import annotations

from typing import Final

#: Section headings, in the order of PACK_SECTIONS.
SECTION_TITLES: Final[dict[str, str]] = {
    "identity": "Identity",
    "data": "Data",
    "discrimination": "Discrimination (out-of-time)",
    "calibration": "Calibration",
    "operating_point": "Operating point",
    "stability": "Stability over time",
    "segments": "Segments",
    "stress": "Stress scenarios",
    "sensitivity": "Sensitivity and monotonicity",
    "fairness": "Fairness",
    "explanations": "Explanations and reason codes",
    "champion_comparison": "Champion comparison",
    "alternatives_considered": "Alternatives considered",
    "limitations": "Limitations",
    "assumptions": "Assumptions",
    "monitoring_plan": "Monitoring plan",
    "gates": "Policy gates",
    "status": "Status",
}

#: Sections of the pack, in reading order; the HTML has one ``<section id=...>`` per key.
PACK_SECTIONS: Final[tuple[str, ...]] = tuple(SECTION_TITLES)
