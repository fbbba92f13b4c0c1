"""Every figure caption of the Snakemake report is valid reStructuredText.

Snakemake renders the captions with docutils; a bare |x| is read as a substitution
reference and shows up in the report as an error box instead of the text.
"""

from __future__ import annotations

import io
from pathlib import Path

import docutils.core
import pytest

CAPTIONS = sorted((Path(__file__).resolve().parents[1] / "workflow" / "report").glob("*.rst"))


def test_there_are_captions():
    assert {p.stem for p in CAPTIONS} >= {"workflow", "dynamics_figure", "s4d_figure", "icl_figure", "freqbias_figure"}


@pytest.mark.parametrize("path", CAPTIONS, ids=lambda p: p.stem)
def test_caption_renders_without_docutils_problems(path):
    problems = io.StringIO()
    docutils.core.publish_string(path.read_text(), writer_name="html",
                                 settings_overrides={"warning_stream": problems, "report_level": 2, "halt_level": 5})
    assert problems.getvalue() == "", problems.getvalue()
