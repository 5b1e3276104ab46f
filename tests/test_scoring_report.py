"""The quarterly report: the HTML's content checked against figures worked out by hand from the
sample, escaping of directory names, the English locale, the charts' texts, and the PDF rendered
back by poppler (page count, a non-blank page with the charts drawn, Vietnamese text).

Rendering is the slow part (matplotlib, then WeasyPrint), so each document is rendered once per
module and the tests read it.
"""
from __future__ import annotations

import dataclasses
import re
import shutil
import stat
import subprocess
import unicodedata
from pathlib import Path

import numpy as np
import pytest
from matplotlib import image as mpimg

from mailhub.errors import InputError
from mailhub.scoring.charts import chart_units, format_count, format_number, format_percent
from mailhub.scoring.report import period_label, render_html, write_report
from policies.scoring.periods import parse_period
from tests.scoring_sample import UNITS, sample_scores

TITLE_VI = "Báo cáo kết quả sử dụng hệ thống thư điện tử công vụ — Quý III/2026"
# A name from a directory CSV. "$\frac$" is broken mathtext: a chart that parsed names as
# mathtext would fail on it instead of drawing it as text.
HOSTILE = '<script>alert("x")</script> & Co $\\frac$'


@pytest.fixture(scope="module")
def scores():
    return sample_scores()


@pytest.fixture(scope="module")
def html_vi(scores) -> str:
    return render_html(scores)


@pytest.fixture(scope="module")
def html_en(scores) -> str:
    return render_html(scores, locale="en")


@pytest.fixture(scope="module")
def hostile_file(tmp_path_factory) -> Path:
    """The closed sample with a unit and an official renamed to HOSTILE, written as HTML."""
    base = sample_scores(closed=True)
    units = tuple(dataclasses.replace(u, score=dataclasses.replace(u.score, name=HOSTILE))
                  if u.code == "Q3" else u for u in base.units)
    officials = tuple(dataclasses.replace(o, name=HOSTILE, unit_name=HOSTILE) if o.bursts else o
                      for o in base.officials)
    path = tmp_path_factory.mktemp("report") / "bao-cao.html"
    assert write_report(dataclasses.replace(base, units=units, officials=officials), path) == str(path)
    return path


def row(html: str, table: str, marker: str) -> str:
    """The text of the first row containing ``marker`` in the tables ``<table class="{table}">``."""
    bodies = re.findall(rf'<table class="{table}">(.*?)</table>', html, re.DOTALL)
    rows = [r for body in bodies for r in re.findall(r"<tr>(.*?)</tr>", body, re.DOTALL) if marker in r]
    assert rows, f"no row with {marker!r} in table {table}"
    return " ".join(re.sub(r"<[^>]+>", " ", rows[0]).split())


def chart_texts(svg: str) -> list[str]:
    # matplotlib draws text as paths and writes each string beside it as an XML comment.
    return re.findall(r"<!-- (.*?) -->", svg)


def test_title_facts_and_units(html_vi):
    assert f"<title>{TITLE_VI}</title>" in html_vi
    assert f"<h1>{TITLE_VI}</h1>" in html_vi
    assert "từ ngày 01/07/2026 đến ngày 30/09/2026" in html_vi
    facts = re.sub(r"<[^>]+>", " ", re.search(r'<table class="facts">(.*?)</table>', html_vi, re.DOTALL)[1])
    assert "64" in facts and "2026.1" in facts
    assert "02/10/2026 09:29 (GMT+7)" in facts  # data until 02:29:58 UTC, in Vietnam time
    assert "02/10/2026 09:30 (GMT+7)" in facts  # computed at
    assert "Số liệu tạm tính, kỳ chưa chốt" in facts
    for name, _kind, _parent in UNITS.values():
        assert name in html_vi


def test_city_rates_worked_out_by_hand(scores, html_vi):
    # I1 = Σ sent / Σ (sent + refused outside) over the six officials:
    # (400 + 250 + 300 + 90 + 120 + 40) / (1200 + 20 + 0 + 5 + 30 + 0 + 0) = 1200 / 1255 = 95.62%
    totals = scores.totals()
    assert (totals.sent, totals.sent + totals.refused_outside) == (1200, 1255)
    i1 = row(html_vi, "city", "<strong>I1</strong>")
    assert "1.200 / 1.255" in i1 and "95,6%" in i1 and "100%" in i1 and "Chưa đạt" in i1
    # I3: Bình's 8 meetings, all invited electronically; I4: (9 + 2) / (10 + 4) = 78.57%
    assert "8 / 8" in (i3 := row(html_vi, "city", "<strong>I3</strong>")) and "100,0%" in i3
    assert "Đạt" in i3 and "Chưa" not in i3
    i4 = row(html_vi, "city", "<strong>I4</strong>")
    assert "11 / 14" in i4 and "78,6%" in i4
    # U1 from the two registers: (150 + 60) / (200 + 120) = 65.63%, against the 60% target
    u1 = row(html_vi, "city", "<strong>U1</strong>")
    assert "210 / 320" in u1 and "65,6%" in u1 and "60%" in u1 and "Đạt" in u1
    assert "Chưa" not in u1


def test_unit_tables(html_vi):
    # Quận 3, no register: Cường (34 days there) 57.38 + 41.67 = 99.04 (I3, I4 do not apply:
    # I1 and I2 share 100 points), "=cmd" (64 days) 58.33 + 36.62 = 94.95;
    # (99.04 × 34 + 94.95 × 64) / 98 = 96.37.
    q3 = row(html_vi, "units", "UBND Quận 3")
    assert q3.split()[0] == "1" and q3.count("96,4") == 2 and "chưa có sổ" in q3
    q1 = row(html_vi, "units", "UBND Quận 1")
    assert q1.split()[0] == "2" and "74,9" in q1 and "50,0%" in q1  # U1 60 / 120
    ward = row(html_vi, "units", "UBND Phường Bến Nghé")
    assert ward.startswith("— ") and "0 / 1" in ward and "Không đủ dữ liệu" in ward
    unscored = row(html_vi, "unscored", "UBND Phường Bến Nghé")
    assert "không cán bộ nào trong số 1 cán bộ" in unscored
    flagged = row(html_vi, "flagged", "Phạm Thị Dung")
    assert "24/09–30/09/2026" in flagged and "gấp 8,0 lần" in flagged
    assert "Sở, ban, ngành" in html_vi and "Phường, xã, thị trấn" in html_vi
    # officials are not listed, only flagged ones
    assert "Nguyễn Văn An" not in html_vi and "Võ Văn Em" not in html_vi
    assert "dưới 20 ngày làm việc" in html_vi  # the methods note states the model's minimum


def test_names_are_escaped_and_closed_period(hostile_file):
    assert stat.S_IMODE(hostile_file.stat().st_mode) == 0o600  # it names officials
    html = hostile_file.read_text(encoding="utf-8")
    assert "<script" not in html.lower()
    escaped = "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; &amp; Co $\\frac$"
    assert row(html, "units", escaped)  # the unit's row
    assert row(html, "flagged", escaped)  # the official and their unit
    assert "Đã chốt số liệu lúc 05/10/2026 10:00 (GMT+7), người chốt: hr@hcm.gov.vn" in html
    assert "tạm tính" not in html.lower()


def test_english_locale(html_en):
    assert "<h1>Report on the use of the official email system — Q3 2026</h1>" in html_en
    assert '<html lang="en">' in html_en and '"Page " counter(page)' in html_en
    assert "Báo cáo" not in html_en and "Chưa đạt" not in html_en
    i1 = row(html_en, "city", "<strong>I1</strong>")
    assert "1,200 / 1,255" in i1 and "95.6%" in i1 and "Not met" in i1 and "City-system share" in i1
    assert "UBND Quận 3" in html_en  # names are data, not translated
    assert "60 mails against 7.5 expected" in html_en


@pytest.mark.parametrize(("fmt", "value", "locale", "expected"), [
    (format_percent, 1200 / 1255, "vi", "95,6%"),
    (format_percent, 1200 / 1255, "en", "95.6%"),
    (format_percent, 1.0, "vi", "100,0%"),  # rates keep their one decimal
    (format_number, 33.25, "vi", "33,3"),  # half up, as a person rounds
    (format_number, np.float64(35.0), "vi", "35"),  # matplotlib's tick values are numpy scalars
    (format_count, 1234567, "vi", "1.234.567"),
    (format_count, 1234567, "en", "1,234,567"),
])
def test_number_formats(fmt, value, locale, expected):
    assert fmt(value, locale) == expected


@pytest.mark.parametrize(("text", "vi", "en"), [
    ("2026-Q3", "Quý III/2026", "Q3 2026"),
    ("2026-H1", "6 tháng đầu năm 2026", "First half of 2026"),
    ("2026-03", "Tháng 3/2026", "March 2026"),
    ("2026", "Năm 2026", "Year 2026"),
    ("2026-01-15..2026-03-31", "Từ 15/01/2026 đến 31/03/2026", "15/01/2026 to 31/03/2026"),
])
def test_period_labels(text, vi, en):
    period = parse_period(text)
    assert (period_label(period), period_label(period, "en")) == (vi, en)


def test_charts_inline(html_vi, html_en):
    svgs = re.findall(r"<svg.*?</svg>", html_vi, re.DOTALL)
    assert len(svgs) == 4  # the indicators, the two groups with a scored unit, the spread
    texts = chart_texts(svgs[0])
    assert {"95,6%", "65,6%", "Mục tiêu", "0%", "100%"} <= set(texts)
    assert {"1. UBND Quận 3", "96,4", "2. UBND Quận 1", "77,4"} <= set(chart_texts(svgs[2]))
    spread = " ".join(chart_texts(re.findall(r"<svg.*?</svg>", html_en, re.DOTALL)[-1]))
    assert "5 officials scored, median 95 points" in spread and "1 with insufficient data" in spread
    # Each chart names its glyphs and clip paths apart: one document, no id twice.
    ids = re.findall(r'\bid="([^"]+)"', html_vi)
    assert len(ids) > 100 and len(ids) == len(set(ids))


def test_unit_chart_is_capped(scores):
    capped = chart_texts(chart_units(scores, "district", limit=1))
    assert "1. UBND Quận 3" in capped and "2. UBND Quận 1" not in capped
    assert any(t.startswith("1 đơn vị điểm cao nhất trong 2 đơn vị có điểm") for t in capped)


def test_bad_locale_and_suffix(scores, tmp_path):
    with pytest.raises(ValueError, match="locale"):
        render_html(scores, locale="fr")
    target = tmp_path / "bao-cao.docx"
    with pytest.raises(InputError) as caught:
        write_report(scores, target)
    assert str(target) in str(caught.value) and ".html or .pdf" in str(caught.value)
    assert not target.exists()
    with pytest.raises(InputError, match="none"):
        write_report(scores, tmp_path / "bao-cao")


@pytest.fixture(scope="module")
def pdf(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("pdf") / "bao-cao.pdf"
    write_report(sample_scores(), path)
    return path


# WeasyPrint ≥ 67 warns once, on import, when the system lacks libharfbuzz-subset0 (it then
# subsets fonts with fontTools, more slowly); the PDF is the same.
@pytest.mark.filterwarnings("ignore:HarfBuzz-Subset will be required:DeprecationWarning")
@pytest.mark.slow  # WeasyPrint lays out and draws the charts' paths: a few seconds
def test_pdf_pages_text_and_pixels(pdf, tmp_path):
    assert pdf.read_bytes().startswith(b"%PDF-")
    if shutil.which("pdftoppm") is None or shutil.which("pdftotext") is None:
        pytest.skip("poppler-utils (pdftoppm, pdftotext) not installed; see `make test-tools`")
    text = unicodedata.normalize("NFC", subprocess.run(
        ["pdftotext", "-enc", "UTF-8", str(pdf), "-"], check=True, capture_output=True, text=True).stdout)
    text = " ".join(text.split())  # table cells wrap names over lines
    # The font has the glyphs: the words come back with their diacritics.
    for words in ("Quý III/2026", "Sở Thông tin và Truyền thông", "UBND Phường Bến Nghé",
                  "Phạm Thị Dung", "Phương pháp tính điểm"):
        assert words in text
    pages = int(re.search(r"Trang 1/(\d+)", text)[1])
    assert pages >= 2
    subprocess.run(["pdftoppm", "-r", "50", "-png", str(pdf), str(tmp_path / "page")], check=True)
    pngs = sorted(tmp_path.glob("page-*.png"))
    assert len(pngs) == pages  # every page the footer counts was rendered
    first = mpimg.imread(pngs[0])[..., :3]
    assert first.shape[0] > first.shape[1]  # portrait A4
    assert (first.min(axis=2) < 0.5).mean() > 0.005  # dark text on white (about 1.5%): not blank
    # The charts were drawn: the bars' blue (#2f6f9f) covers a visible share of some page.
    blue = np.array([0x2F, 0x6F, 0x9F]) / 255
    covered = max((np.abs(mpimg.imread(p)[..., :3] - blue).max(axis=2) < 0.08).mean() for p in pngs)
    assert covered > 0.02
