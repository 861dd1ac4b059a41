"""The user guide and the ETL page: every Python block runs, in order, per page; every number
their text states is one their code printed; the guide runs in a Jupyter kernel with its plots.

How a page's numbers are checked (``_unchecked_numbers``). A page is cut into sections at its
headings. Each section's Python blocks run in the page's namespace with their printed output
captured; then every number in the section's text (its prose and the comments of its code) must
be accounted for by one of:

- the section's printed output: a number printed with at least as many decimals that rounds to
  the stated one (``p = 0.018`` for a printed ``0.018``, ``z = 1.50`` for ``1.500``, ``42%`` for
  ``0.421``, ``1,586`` for ``1586.3``; a whole number below 100 only as itself: ``3`` for
  ``3.000``, not ``2.9``), so a changed output makes the test fail;
- a number the section's code sets (a literal: ``target_ratio=3`` accounts for "3:1");
- a hidden check, ``<!-- check: EXPR -->``, a Python expression evaluated in the page's
  namespace after the section's code; it must be true, and the numbers written in it are then
  accounted for. Checks also state the claims without a number ("no coefficient is significant
  on its own");
- a hidden ``<!-- given: ... -->`` comment listing facts that come from outside the code (a
  published cohort size, a benchmark), with their source; or a year after a name (a citation).
"""

from __future__ import annotations

import contextlib
import io
import math
import re
import tokenize
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

DOCS = Path(__file__).resolve().parents[1] / "docs"

# A number in text: 2,357 / 0.018 / 42% / 10th; not the digits of a name (log1p, 7D) or of a
# decimal's tail. Signs are not read: numbers are compared by magnitude.
PROSE_NUMBER = re.compile(
    r"(?<![\w.,])(\d{1,3}(?:,\d{3})+(?!\d)|\d+)(\.\d+)?(%|st|nd|rd|th)?(?![\w])(?!\.\d)"
)
OUTPUT_NUMBER = re.compile(r"\d+(?:\.\d+)?(?:[eE][-+]?\d+)?")
CITATION_YEAR = re.compile(r"[A-Z][\w'\-]+,? \(?((?:19|20)\d\d)\b")
HIDDEN = re.compile(r"<!--\s*(check|given):(.*?)-->", re.DOTALL)
FENCE = re.compile(r"^```(\w*)\s*$")


@dataclass
class Section:
    title: str
    text: list[str] = field(default_factory=list)
    python: list[str] = field(default_factory=list)


@dataclass
class Stated:
    """A number stated in the text: its value, decimals and where it stands."""

    value: float
    decimals: int
    context: str


def sections(page: str) -> list[Section]:
    """The page cut at its headings: each section's text and Python blocks (other fences, such
    as shell commands, are neither)."""
    out = [Section("(top)")]
    fence: str | None = None
    block: list[str] = []
    for line in page.splitlines():
        match = FENCE.match(line)
        if fence is None and match:
            fence, block = match.group(1), []
        elif fence is not None and line.strip() == "```":
            if fence == "python":
                out[-1].python.append("\n".join(block) + "\n")
            fence = None
        elif fence is not None:
            block.append(line)
        elif line.startswith("#"):
            out.append(Section(line.lstrip("# ").strip()))
        else:
            out[-1].text.append(line)
    return out


def _comments_and_code(code: str) -> tuple[list[str], list[float]]:
    """A block's comments (text) and the numbers its code writes (literals, and the digits in
    its strings, such as dates)."""
    comments: list[str] = []
    numbers: list[float] = []
    for token in tokenize.generate_tokens(io.StringIO(code).readline):
        if token.type == tokenize.COMMENT:
            comments.append(token.string)
        elif token.type == tokenize.NUMBER:
            numbers.append(abs(float(eval(token.string))))
        elif token.type == tokenize.STRING:
            numbers.extend(float(n) for n in re.findall(r"\d+(?:\.\d+)?", token.string))
    return comments, numbers


def stated_numbers(text: str) -> list[Stated]:
    """Every number the text states, with its value and decimals (a percentage as a fraction,
    with two more decimals); citation years and link targets are left out."""
    text = re.sub(r"\]\([^)]*\)", "]", text)
    years = {m.start(1) for m in CITATION_YEAR.finditer(text)}
    out = []
    for match in PROSE_NUMBER.finditer(text):
        if match.start() in years:
            continue
        whole, fraction, suffix = match.group(1), match.group(2) or "", match.group(3)
        value = float(whole.replace(",", "") + fraction)
        decimals = max(len(fraction) - 1, 0)
        if suffix == "%":
            value, decimals = value / 100, decimals + 2
        context = text[max(match.start() - 40, 0) : match.end() + 20].replace("\n", " ")
        out.append(Stated(value, decimals, context))
    return out


def _printed(output: str) -> list[tuple[float, float]]:
    """Printed numbers as (value, half a unit of their last decimal)."""
    out = []
    for token in OUTPUT_NUMBER.findall(output):
        value = float(token)
        if "e" in token.lower():
            half = 0.0
        else:
            half = 0.5 * 10.0 ** -(len(token.split(".")[1]) if "." in token else 0)
        out.append((value, half))
    return out


def _accounted(number: Stated, printed: list[tuple[float, float]], exact: list[float]) -> bool:
    unit = 10.0**-number.decimals
    # A small whole number is easily a rounding of something else: it must be printed as such.
    slack = 0.0 if number.decimals == 0 and number.value < 100 else 0.5 * unit * (1 + 1e-9)
    for value, half in printed:
        # printed to at least the stated decimals, and rounding to the stated number
        if half <= 0.5 * unit + 1e-15 and abs(value - number.value) <= slack:
            return True
    return any(math.isclose(value, number.value, rel_tol=1e-12, abs_tol=1e-12) for value in exact)


def _unchecked_numbers(page: str, namespace: dict[str, Any]) -> list[str]:
    """Runs the page's Python blocks in ``namespace``; returns each problem found: a number the
    text states that nothing accounts for, or a hidden check that is false."""
    problems = []
    for section in sections(page):
        buffer = io.StringIO()
        comments: list[str] = []
        exact: list[float] = []
        for index, block in enumerate(section.python):
            with contextlib.redirect_stdout(buffer):
                exec(compile(block, f"{section.title} [python {index}]", "exec"), namespace)
            block_comments, literals = _comments_and_code(block)
            comments += block_comments
            exact += literals
        text = "\n".join(section.text)
        for kind, body in HIDDEN.findall(text):
            if kind == "given":
                exact += [n.value for n in stated_numbers(body)]
                continue
            expression = " ".join(body.split())
            if not eval(expression, namespace):
                problems.append(f"{section.title}: the check `{expression}` is false")
            exact += [n.value for n in stated_numbers(expression)]
        prose = HIDDEN.sub(" ", text) + "\n" + "\n".join(comments)
        printed = _printed(buffer.getvalue())
        for number in stated_numbers(prose):
            if not _accounted(number, printed, exact):
                problems.append(
                    f"{section.title}: {number.value:g} in '...{number.context}...' is not a "
                    "number the section's code printed or set, nor one a check confirms"
                )
    return problems


@pytest.fixture(autouse=True)
def _no_windows() -> Any:
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")  # the pages themselves leave the backend alone (see the kernel test)
    yield
    import matplotlib.pyplot as plt

    plt.close("all")


# The guide's regularity section reads the grocery log (test data, not in the wheel) from here.
GROCERY_LOG = DOCS.parent / "tests" / "data" / "grocery_elog.csv"


def test_user_guide_runs_and_its_numbers_are_the_printed_ones(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CLVRS_GROCERY_LOG", str(GROCERY_LOG))
    text = (DOCS / "user_guide.md").read_text(encoding="utf-8")
    assert _unchecked_numbers(text, {}) == []


def test_etl_page_runs() -> None:
    """Its numbers are the command line's and the benchmarks' (tests/test_cli.py, BENCHMARKS.md),
    not its code's: the page only has to run."""
    pytest.importorskip("dask.dataframe")
    text = (DOCS / "etl.md").read_text(encoding="utf-8")
    namespace: dict[str, Any] = {}
    for section in sections(text):
        for index, block in enumerate(section.python):
            exec(compile(block, f"etl.md {section.title} [python {index}]", "exec"), namespace)


def test_readme_figures_are_what_clvrs_computes() -> None:
    """The README's opening states fits to the bundled CDNOW summary: they are these fits."""
    import clvrs

    readme = (DOCS.parent / "README.md").read_text(encoding="utf-8")
    opening = " ".join(readme.split("Models available now")[0].split())
    data = clvrs.datasets.load_cdnow_summary()
    bg = clvrs.BetaGeoModel().fit(data)
    pnbd = clvrs.ParetoNBDModel().fit(data)
    mbg = clvrs.ModifiedBetaGeoModel().fit(data)
    r, alpha, a, b = bg.params_
    stated = [
        f"(r = {r:.4f}, alpha = {alpha:.3f}, a = {a:.3f}, b = {b:.3f}, "
        f"log-likelihood {bg.log_likelihood_:.2f})",
        "Pareto/NBD gives (" + ", ".join(f"{v:.3f}" for v in pnbd.params_) + ";",
        f"log-likelihood {pnbd.log_likelihood_:.2f}",
        "standard errors (" + ", ".join(f"{v:.3g}" for v in pnbd.standard_errors_) + ")",
        "MBG/NBD (" + ", ".join(f"{v:.3f}" for v in mbg.params_) + ")",
    ]
    for text in stated:
        assert text in opening, text
    assert "later release" not in opening  # spend, value and subscriptions exist


# -- the checker itself -----------------------------------------------------------------------

PAGE = """# Title

## 1. A test

```python
import math

p = 0.01834
print(round(p, 3), 1.5)  # p and z
print(0.4213)
```

{text}
"""


@pytest.mark.parametrize(
    "text",
    [
        "The test has p = 0.018 and z = 1.50; 42% of the value.",
        "Printed: 1.5, and 0.42 (rounded).",
        "p is small <!-- check: p < 0.05 -->.",
        "A cohort of 23,570 customers <!-- given: 23,570 customers, as published -->.",
        "A model of Bachmann, Meierer & Näf 2021, and of Fader (2005).",
    ],
)
def test_checker_accepts_printed_set_checked_and_given_numbers(text: str) -> None:
    assert _unchecked_numbers(PAGE.format(text=text), {}) == []


@pytest.mark.parametrize(
    "text, culprit",
    [
        ("The test has p = 0.46.", "0.46"),  # the guide's old claim
        ("The test has p = 0.0183.", "0.0183"),  # more decimals than printed
        ("The test has p = 0.03.", "0.03"),  # 0.018 rounds to 0.02 (accepted), not 0.03
        ("It has 2 parts.", " 2 in"),  # 1.5 rounds to 2, but a small whole number must be printed
        ("Half the value: 50%.", "0.5"),
        ("A cohort of 23,570 customers.", "23570"),
        ("p is large <!-- check: p > 0.05 -->.", "is false"),
    ],
)
def test_checker_refuses_numbers_the_code_did_not_print(text: str, culprit: str) -> None:
    problems = _unchecked_numbers(PAGE.format(text=text), {})
    assert len(problems) == 1 and culprit in problems[0], problems


def test_checker_reads_comments_of_the_code() -> None:
    page = PAGE.format(text="").replace("# p and z", "# p and 7 others")
    problems = _unchecked_numbers(page, {})
    assert len(problems) == 1 and " 7 in" in problems[0], problems


# -- the guide in Jupyter ---------------------------------------------------------------------


def _notebook(page: str) -> Any:
    """The page as a notebook: a markdown cell for each stretch of text, a code cell for each
    Python block (what jupytext makes of it)."""
    nbformat = pytest.importorskip("nbformat")
    cells = []
    position = 0
    for match in re.finditer(r"^```python\n(.*?)^```$", page, flags=re.DOTALL | re.MULTILINE):
        if page[position : match.start()].strip():
            cells.append(nbformat.v4.new_markdown_cell(page[position : match.start()].strip()))
        cells.append(nbformat.v4.new_code_cell(match.group(1).rstrip()))
        position = match.end()
    return nbformat.v4.new_notebook(cells=cells)


def test_guide_in_a_jupyter_kernel_shows_its_plots(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    pytest.importorskip("dask.dataframe")
    monkeypatch.delenv("MPLBACKEND", raising=False)  # the kernel's own (inline) backend
    monkeypatch.setenv("CLVRS_GROCERY_LOG", str(GROCERY_LOG))  # the kernel runs in tmp_path
    notebook = _notebook((DOCS / "user_guide.md").read_text(encoding="utf-8"))
    nbclient.NotebookClient(
        notebook,
        timeout=300,
        kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path)}},
    ).execute()  # raises on a cell's error
    plot_cells = 0
    for cell in notebook.cells:
        if cell.cell_type != "code":
            continue
        kinds = [output.output_type for output in cell.outputs]
        assert "error" not in kinds
        stderr = [o.text for o in cell.outputs if o.output_type == "stream" and o.name == "stderr"]
        assert stderr == [], f"the cell\n{cell.source}\nwrote to stderr: {stderr}"
        images = [o for o in cell.outputs if "image/png" in o.get("data", {})]
        plots = len(re.findall(r"plotting\.plot_\w+\(", cell.source))
        assert len(images) == plots, f"{plots} plots, {len(images)} images in\n{cell.source}"
        plot_cells += plots > 0
    assert plot_cells >= 1
