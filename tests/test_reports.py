"""Student and class reports: self-contained HTML, plots drawn from the student's functions,
checked in a real browser (headless Chromium) when one is installed."""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from grader import course as coursemod

ROOT = Path(__file__).resolve().parent.parent
COURSE = coursemod.installed()
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
PROBE = """<script>
window.addEventListener('load', () => {
  const imgs = [...document.images];
  const decoded = imgs.filter(i => i.complete && i.naturalWidth > 0).length;
  const fetched = performance.getEntriesByType('resource').map(e => e.name).filter(n => !n.startsWith('data:'));
  document.body.setAttribute('data-probe', JSON.stringify({images: imgs.length, decoded: decoded, fetched: fetched}));
});
</script>"""


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    base = tmp_path_factory.mktemp("reports")
    subs = base / "class"
    good, bad = subs / "good", subs / "bad"
    for folder in (good, bad):
        folder.mkdir(parents=True)
        for ex in COURSE.names:
            shutil.copy(COURSE.exercise(ex).reference, folder / f"{ex}.py")
    bug = sorted(COURSE.exercise("sigmoid_stack").collection("buggy"))[0]
    shutil.copy(bug, bad / "sigmoid_stack.py")
    (bad / "clipping.py").unlink()          # a missing exercise: why, instead of a plot
    (bad / "lstm_cell.py").write_text("def lstm_cell(:\n")   # a broken file: why, instead of a plot
    out = base / "out"
    run = subprocess.run([sys.executable, "-m", "grader", "batch", str(subs), "--out", str(out), "--jobs", "2",
                          "--device", "cpu", "--report"], capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stderr[-3000:]
    return out


def test_reports_are_self_contained_and_show_why(graded):
    good = (graded / "good" / "report.html").read_text()
    bad = (graded / "bad" / "report.html").read_text()
    for html in (good, bad, (graded / "report.html").read_text()):
        assert "<script" not in html and not re.search(r'(src|href)="(https?:|//|file:)', html)
    with_plots = [ex for ex in COURSE.names if (COURSE.exercise(ex).dir / "feedback.py").is_file()]
    assert good.count('<img src="data:image/png;base64,') == len(with_plots)
    assert "No plot:" in bad and "no clipping.ipynb or clipping.py found" in bad and "syntax error" in bad
    # nothing of the course's hidden side is shown: no test code, no reference solution
    ref = COURSE.exercise("sigmoid_stack").reference.read_text()
    assert "def test_" not in good + bad and "torch.where(x >= 0, 1.0 / (1.0 + e)" not in good + bad
    assert ref.splitlines()[0] not in good


def test_the_class_report(graded):
    html = (graded / "report.html").read_text()
    assert "Class report: 2 students" in html and "Tests failed most" in html and "Failure rate per test" in html
    assert html.count('<img src="data:image/png;base64,') == 1
    # a re-run after a change lists the student whose score changed, with the old and new totals
    klass = graded.parent / "class"
    before = {r.split(",")[0]: r for r in (graded / "totals.csv").read_text().splitlines()[1:]}
    shutil.copy(COURSE.exercise("lstm_cell").reference, klass / "bad" / "lstm_cell.py")
    run = subprocess.run([sys.executable, "-m", "grader", "batch", str(klass), "--out", str(graded), "--jobs", "1",
                          "--device", "cpu"], capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "1 student(s) changed total since the last run" in run.stdout
    section = (graded / "report.html").read_text().split("Scores that changed since the last run")[1].split("<h2>")[0]
    old, new = before["bad"].split(",")[1], int(float(before["bad"].split(",")[1])) + 25
    assert "<td>bad</td>" in section and f">{old}<" in section and f">{new}<" in section
    assert "<td>good</td>" not in section


@pytest.mark.skipif(CHROMIUM is None, reason="no headless Chromium here (Debian: apt-get install chromium)")
@pytest.mark.parametrize("which", ["good/report.html", "bad/report.html", "report.html"])
def test_reports_in_a_real_browser(graded, tmp_path, which):
    page = tmp_path / "page.html"
    page.write_text((graded / which).read_text().replace("</body>", PROBE + "</body>"))
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--host-resolver-rules=MAP * ~NOTFOUND", f"--user-data-dir={tmp_path / 'profile'}"]
    dom = subprocess.run([CHROMIUM, *flags, "--virtual-time-budget=10000", "--dump-dom", page.as_uri()],
                         capture_output=True, text=True, timeout=120)
    probe = re.search(r'data-probe="([^"]*)"', dom.stdout)
    assert probe, dom.stderr[-2000:]
    data = json.loads(probe.group(1).replace("&quot;", '"'))
    assert data["images"] >= 1 and data["decoded"] == data["images"], data
    assert data["fetched"] == [], data
    shot = tmp_path / "shot.png"
    subprocess.run([CHROMIUM, *flags, "--window-size=1100,2000", f"--screenshot={shot}", page.as_uri()],
                   capture_output=True, timeout=120)
    assert shot.is_file() and shot.stat().st_size > 10_000
