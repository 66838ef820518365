from __future__ import annotations

from pathlib import Path

from engine.imaging.survey import BEGIN, END, markdown, pydicom_test_files, survey, syntax_tables

DOC = Path(__file__).resolve().parents[3] / "docs" / "imaging.md"


def _section(text: str, begin: str, end: str) -> str:
    start = text.index(begin)
    return text[start: text.index(end, start) + len(end)] + "\n"


def test_outcome_table_in_the_docs_matches_the_pipeline():
    files = pydicom_test_files()
    assert len(files) > 140 and any(src == "pydicom-data" for src, _ in files)
    outcomes = survey(files)
    by_name = {o.name: o for o in outcomes}
    # the real radiographs embed
    for name in ("RG3_UNCI.dcm", "MR2_UNCI.dcm", "RG1_UNCI.dcm", "CT_small.dcm", "US1_UNCI.dcm"):
        assert by_name[name].status == "embeds", by_name[name]
    # every refusal has a specific code and reason
    assert all(o.code and o.detail for o in outcomes if o.status == "refused")
    doc = DOC.read_text()
    assert _section(doc, BEGIN, END) == markdown(outcomes), "docs/imaging.md is stale: python -m engine.imaging.survey"


def test_transfer_syntax_table_in_the_docs_is_current():
    assert syntax_tables() in DOC.read_text(), "docs/imaging.md is stale: python -m engine.imaging.survey --syntaxes"
