"""Render the CDNOW customer-value report and look at it as a person would, in headless Chromium.

Writes the report (``clvrs.report``) for the bundled CDNOW sample -- BG/NBD and Gamma-Gamma fitted
on the calibration period to 1997-09-30 (weeks), a holdout to 1998-06-30, three made-up
acquisition channels with costs, and monitoring over the whole log -- then, with Chromium:

- measures the page and checks that no table overflows its box and the page does not scroll
  sideways, at a laptop width (1280 px) and a narrow one (800 px);
- checks that the page logs nothing to the console (no errors);
- saves a full-page PNG (kept in ``docs/images/report_cdnow.png``) and a PDF (printed as from the
  browser), and checks that the PNG is not blank.

Usage (Debian: ``apt-get install chromium``; not needed by the test suite)::

    python docs/render_report.py [--out-dir docs/images] [--pdf report.pdf] [--chromium PATH]

Exits with status 1 and says why when a check fails.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

import clvrs

#: Appended to a copy of the report (never to the report itself, which has no scripts): records
#: the page height and any overflow in the DOM, for --dump-dom to print.
PROBE = """
<script>
window.addEventListener("load", () => {
  const wide = [...document.querySelectorAll(".table-wrap")]
    .filter(w => w.scrollWidth > w.clientWidth + 1)
    .map(w => w.querySelector("table").dataset.table);
  const result = {
    height: Math.ceil(document.documentElement.scrollHeight),
    pageOverflow: document.documentElement.scrollWidth > window.innerWidth + 1,
    overflowingTables: wide,
    images: document.images.length,
    brokenImages: [...document.images].filter(i => !i.complete || i.naturalWidth === 0).length,
  };
  const out = document.createElement("pre");
  out.id = "probe";
  out.textContent = JSON.stringify(result);
  document.body.appendChild(out);
});
</script>
"""


def cdnow_report(path: Path) -> str:
    """The CDNOW report with a holdout, channel costs and monitoring."""
    log = clvrs.datasets.load_cdnow_transactions()
    split = clvrs.calibration_and_holdout(
        log, "customer_id", "date", "1997-09-30", "1998-06-30", freq="W",
        monetary_value_col="amount",
    )  # fmt: skip
    names = {"frequency_cal": "frequency", "recency_cal": "recency", "T_cal": "T"}
    names["monetary_value_cal"] = "monetary_value"
    summary = split.rename(columns=names)[list(names.values())]
    model = clvrs.BetaGeoModel().fit(summary)
    spend = clvrs.GammaGammaModel().fit(summary)
    channel = pd.Series(
        np.array(["search", "social", "email"])[summary.index.to_numpy() % 3],
        index=summary.index,
        name="channel",
    )
    return clvrs.report(
        model,
        spend,
        summary,
        path,
        title="CDNOW customer value report",
        holdout=split,
        channel=channel,
        acquisition_cost={"search": 8.0, "social": 12.0, "email": 3.0},
        transactions=log,
        monetary_value_col="amount",
        calibration_period_end="1997-09-30",
    )


def chromium(binary: str, *args: str) -> subprocess.CompletedProcess:
    command = [binary, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
               "--enable-logging=stderr", "--v=0", *args]  # fmt: skip
    return subprocess.run(command, capture_output=True, text=True, timeout=120)


def console_errors(stderr: str) -> list[str]:
    """The page's console messages (Chromium logs them as CONSOLE lines, console.error and
    uncaught exceptions alike at INFO level). The report has no scripts and the probe logs
    nothing, so any message is a problem."""
    return [line for line in stderr.splitlines() if ":CONSOLE" in line]


def probe(binary: str, page: str, width: int, workdir: Path) -> dict:
    probed = workdir / f"probe_{width}.html"
    probed.write_text(page.replace("</body>", PROBE + "</body>"), encoding="utf-8")
    done = chromium(binary, f"--window-size={width},900", "--dump-dom", probed.as_uri())
    match = re.search(r'<pre id="probe">(.*?)</pre>', done.stdout)
    if match is None:
        raise SystemExit(f"Chromium printed no measurement at {width} px:\n{done.stderr[-2000:]}")
    result = json.loads(match.group(1))
    result["console_errors"] = console_errors(done.stderr)
    return result


def not_blank(png: Path) -> float:
    """The share of pixels that are not white (0 for a blank page)."""
    import matplotlib.image as mpimg

    pixels = mpimg.imread(png)[..., :3]
    return float((pixels.min(axis=-1) < 0.95).mean())


def shrink(png: Path) -> None:
    """Keep the PNG small for the docs: 256 colours (text and flat charts lose nothing)."""
    from PIL import Image  # installed with matplotlib

    with Image.open(png) as image:
        small = image.convert("RGB").quantize(256)
    small.save(png, optimize=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out-dir", default=str(Path(__file__).parent / "images"))
    parser.add_argument("--pdf", help="where to write the PDF (default: a temporary folder)")
    parser.add_argument("--html", help="where to keep the HTML (default: a temporary folder)")
    parser.add_argument("--chromium", default=shutil.which("chromium") or "chromium")
    args = parser.parse_args()
    if shutil.which(args.chromium) is None and not Path(args.chromium).exists():
        print(f"no Chromium at {args.chromium!r}: apt-get install chromium", file=sys.stderr)
        return 1
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    problems = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        html_path = Path(args.html) if args.html else work / "report_cdnow.html"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # CDNOW's later transactions left out, by design
            page = cdnow_report(html_path)
        print(f"report: {html_path} ({len(page.encode()) / 1024:.0f} KiB)")
        height = 0
        for width in (1280, 800):
            result = probe(args.chromium, page, width, work)
            print(f"{width} px: {result}")
            height = max(height, result["height"]) if width == 1280 else height
            if result["pageOverflow"] or result["overflowingTables"]:
                problems.append(f"overflow at {width} px: {result}")
            if result["console_errors"]:
                problems.append(f"console errors at {width} px: {result['console_errors']}")
            if result["brokenImages"]:
                problems.append(f"{result['brokenImages']} images did not load at {width} px")
        png = out_dir / "report_cdnow.png"
        shot = chromium(args.chromium, f"--window-size=1280,{height}",
                        f"--screenshot={png}", html_path.as_uri())  # fmt: skip
        if not png.exists():
            problems.append(f"no screenshot: {shot.stderr[-1000:]}")
        else:
            shrink(png)
            inked = not_blank(png)
            print(f"png: {png} ({png.stat().st_size / 1024:.0f} KiB, {inked:.1%} of pixels inked)")
            if inked < 0.02:
                problems.append(f"the screenshot looks blank ({inked:.2%} of pixels inked)")
        pdf = Path(args.pdf) if args.pdf else work / "report_cdnow.pdf"
        printed = chromium(args.chromium, "--no-pdf-header-footer", f"--print-to-pdf={pdf}",
                           html_path.as_uri())  # fmt: skip
        if not pdf.exists() or pdf.stat().st_size < 10_000:
            problems.append(f"no PDF: {printed.stderr[-1000:]}")
        else:
            pages = pdf.read_bytes().count(b"/Type /Page") - pdf.read_bytes().count(b"/Type /Pages")
            print(f"pdf: {pdf} ({pdf.stat().st_size / 1024:.0f} KiB, {pages} pages)")
    for problem in problems:
        print(f"FAIL: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
