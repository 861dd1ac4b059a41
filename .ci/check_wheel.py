"""Checks of the wheel users install (run by .ci/run; the checks are unit-tested in
tests/test_packaging.py).

    python .ci/check_wheel.py contents DIST/clvrs-*.whl
        the wheel's file list: every module, the bundled datasets, ``py.typed``, the stubs
        (``_core.pyi``), one abi3 extension module, and the version of Cargo.toml.
    VENV/bin/python .ci/check_wheel.py installed
        run with a fresh virtual environment's interpreter from a directory outside the checkout:
        clvrs is imported from that environment (not the source tree), every module imports with
        only the declared dependencies, the datasets load, BG/NBD fits CDNOW to the published
        figures, and ``clvrs.__version__`` is Cargo.toml's version.
"""

from __future__ import annotations

import re
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "python" / "clvrs"


def cargo_version(cargo_toml: Path = ROOT / "Cargo.toml") -> str:
    """The ``version`` of Cargo.toml's ``[package]`` (maturin gives it to the wheel)."""
    section = ""
    for line in cargo_toml.read_text(encoding="utf-8").splitlines():
        header = re.match(r"\s*\[([^\]]+)\]", line)
        if header:
            section = header.group(1).strip()
            continue
        found = re.match(r'\s*version\s*=\s*"([^"]+)"', line)
        if section == "package" and found:
            return found.group(1)
    raise SystemExit(f"{cargo_toml}: no version in [package]")


def required_files(package: Path = PACKAGE) -> list[str]:
    """Paths (inside a wheel) that must ship: every Python module, every bundled data file,
    ``py.typed`` and the stubs of the extension module, read from the source tree so that a new
    module or data file is checked too."""
    wanted = [
        p.relative_to(package.parent)
        for p in sorted(package.rglob("*"))
        if p.is_file() and "__pycache__" not in p.relative_to(package).parts
    ]
    return [
        p.as_posix()
        for p in wanted
        if p.suffix in {".py", ".pyi"}
        or p.name == "py.typed"
        or p.parts[1:3] == ("datasets", "data")
    ]


def wheel_problems(wheel: Path, version: str, required: list[str]) -> list[str]:
    """What is wrong with a built wheel (an empty list when nothing is)."""
    problems: list[str] = []
    if not wheel.name.startswith(f"clvrs-{version}-"):
        problems.append(
            f"{wheel.name}: the file name does not carry Cargo.toml's version {version}"
        )
    if "-cp39-abi3-" not in wheel.name:
        problems.append(f"{wheel.name}: not an abi3 wheel for CPython >= 3.9 (tag cp39-abi3)")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        metadata_name = f"clvrs-{version}.dist-info/METADATA"
        metadata = archive.read(metadata_name).decode("utf-8") if metadata_name in names else ""
    problems += [f"{wheel.name}: missing {name}" for name in required if name not in names]
    extensions = sorted(
        n for n in names if re.fullmatch(r"clvrs/_core(\.[^/]*)?\.(so|pyd|dylib)", n)
    )
    if len(extensions) != 1:
        problems.append(
            f"{wheel.name}: expected one extension module clvrs/_core.*, found {extensions}"
        )
    elif not re.fullmatch(r"clvrs/_core\.(abi3\.so|pyd)", extensions[0]):
        problems.append(f"{wheel.name}: {extensions[0]} is not an abi3 extension module")
    if not metadata:
        problems.append(f"{wheel.name}: no {metadata_name}")
    else:
        if f"\nVersion: {version}\n" not in metadata:
            problems.append(f"{metadata_name}: Version is not Cargo.toml's {version}")
        for dependency in ("numpy", "pandas"):
            if not re.search(rf"^Requires-Dist: {dependency}\b", metadata, flags=re.MULTILINE):
                problems.append(f"{metadata_name}: no Requires-Dist for {dependency}")
    return problems


def installed_problems(version: str) -> list[str]:
    """What is wrong with clvrs as installed for this interpreter (run outside the checkout)."""
    import importlib
    import importlib.metadata
    import pkgutil

    problems: list[str] = []
    import clvrs

    where = Path(clvrs.__file__).resolve()
    if ROOT in where.parents:
        problems.append(f"clvrs was imported from the checkout ({where}), not the installed wheel")
    if Path(sys.prefix).resolve() not in where.parents:
        problems.append(f"clvrs was imported from {where}, outside this environment {sys.prefix}")
    if clvrs.__version__ != version:
        problems.append(f"clvrs.__version__ is {clvrs.__version__!r}, Cargo.toml says {version!r}")
    if importlib.metadata.version("clvrs") != version:
        problems.append(f"installed metadata says {importlib.metadata.version('clvrs')!r}")
    for name in ("py.typed", "_core.pyi"):
        if not (where.parent / name).is_file():
            problems.append(f"{name} is not installed next to {where}")
    for module in pkgutil.walk_packages(clvrs.__path__, "clvrs."):
        try:
            importlib.import_module(module.name)
        except Exception as error:  # report every module that fails, not just the first
            problems.append(f"import {module.name}: {type(error).__name__}: {error}")
    for loader in ("load_cdnow_summary", "load_cdnow_transactions", "load_donations"):
        frame = getattr(clvrs.datasets, loader)()
        if len(frame) == 0:
            problems.append(f"clvrs.datasets.{loader}() is empty")
    full = clvrs.datasets.load_cdnow_transactions(sample=False)
    if full["customer_id"].nunique() != 23570:
        problems.append("the full CDNOW log (CDNOW_master.txt.gz) does not have 23,570 customers")
    model = clvrs.BetaGeoModel().fit(clvrs.datasets.load_cdnow_summary())
    published = {"r": 0.2426, "alpha": 4.414, "a": 0.793, "b": 2.426}
    fitted = {name: float(model.params_[name]) for name in published}
    if any(abs(fitted[k] - v) > 0.5e-3 * max(1.0, abs(v)) for k, v in published.items()):
        problems.append(f"BG/NBD on CDNOW gave {fitted}, published {published}")
    return problems


def main(argv: list[str]) -> int:
    version = cargo_version()
    if len(argv) == 2 and argv[0] == "contents":
        problems = wheel_problems(Path(argv[1]), version, required_files())
        what = f"{Path(argv[1]).name}: contents"
    elif argv == ["installed"]:
        problems = installed_problems(version)
        what = f"clvrs {version} installed in {sys.prefix}"
    else:
        print(__doc__, file=sys.stderr)
        return 2
    for problem in problems:
        print(f"check_wheel: {problem}", file=sys.stderr)
    print(f"check_wheel: {what}: {'FAILED' if problems else 'ok'}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
