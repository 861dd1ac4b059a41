"""The release: the workflow's wheels and publishing, the packaging metadata, the version, and the
checks .ci/run makes of the built wheel (.ci/check_wheel.py)."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

import clvrs

if sys.version_info >= (3, 11):
    import tomllib
else:  # pytest depends on tomli before 3.11
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
WORKFLOW_PATH = ROOT / ".github" / "workflows" / "release.yml"
WORKFLOW_TEXT = WORKFLOW_PATH.read_text(encoding="utf-8")
WORKFLOW: dict[str, Any] = yaml.safe_load(WORKFLOW_TEXT)
CARGO = tomllib.loads((ROOT / "Cargo.toml").read_text(encoding="utf-8"))
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
BUILD_JOBS = {"linux", "musllinux", "windows", "macos"}


def _check_wheel() -> ModuleType:
    spec = importlib.util.spec_from_file_location("check_wheel", ROOT / ".ci" / "check_wheel.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


CHECK_WHEEL = _check_wheel()


def _targets(job: str) -> set[str]:
    return {p["target"] for p in WORKFLOW["jobs"][job]["strategy"]["matrix"]["platform"]}


def _steps(job: str, uses: str) -> list[dict[str, Any]]:
    return [s for s in WORKFLOW["jobs"][job]["steps"] if s.get("uses", "").startswith(uses)]


# --- the release workflow ---------------------------------------------------------------------


def test_workflow_builds_the_listed_targets_and_an_sdist() -> None:
    assert _targets("linux") == {"x86_64", "aarch64"}
    assert _targets("musllinux") == {"x86_64", "aarch64"}
    assert _targets("macos") == {"x86_64", "aarch64"}
    assert _targets("windows") == {"x64"}
    (linux,) = _steps("linux", "PyO3/maturin-action")
    assert linux["with"]["manylinux"] == "auto"
    (musl,) = _steps("musllinux", "PyO3/maturin-action")
    assert musl["with"]["manylinux"].startswith("musllinux")
    (sdist,) = _steps("sdist", "PyO3/maturin-action")
    assert sdist["with"]["command"] == "sdist"
    # Every artifact is named wheels-*, which is what the release job publishes.
    for job in BUILD_JOBS | {"sdist"}:
        (upload,) = _steps(job, "actions/upload-artifact")
        assert upload["with"]["name"].startswith("wheels-")


def test_workflow_builds_one_abi3_wheel_per_platform() -> None:
    # abi3-py39: one wheel for every CPython >= 3.9, so no per-interpreter builds.
    for job in BUILD_JOBS:
        (build,) = _steps(job, "PyO3/maturin-action")
        args = build["with"]["args"].split()
        assert "--release" in args
        assert not {"-i", "--interpreter", "--find-interpreter"} & set(args), (job, args)
    assert "abi3-py39" in CARGO["dependencies"]["pyo3"]["features"]
    assert PYPROJECT["project"]["requires-python"] == ">=3.9"


def test_workflow_publishes_by_trusted_publishing_on_a_tag() -> None:
    release = WORKFLOW["jobs"]["release"]
    assert set(release["needs"]) == BUILD_JOBS | {"sdist"}
    assert release["permissions"]["id-token"] == "write"
    assert release["environment"]["name"] == "pypi"
    (publish,) = [s for s in release["steps"] if s.get("name") == "Publish to PyPI"]
    assert "refs/tags/" in publish["if"]
    assert publish["run"].startswith("uv publish --trusted-publishing always ")
    assert "env" not in publish
    # No API token anywhere: no secrets, and only the release job may ask for an OIDC token.
    assert "secrets." not in WORKFLOW_TEXT
    assert "PYPI_API_TOKEN" not in WORKFLOW_TEXT
    assert WORKFLOW["permissions"] == {"contents": "read"}
    others = [j for j, spec in WORKFLOW["jobs"].items() if j != "release" and "permissions" in spec]
    assert others == []
    # PyYAML reads the bare key `on` as True.
    on = WORKFLOW[True]
    assert "tags" in on["push"]


def test_workflow_matches_what_maturin_generates_from_pyproject() -> None:
    # The matrix and the build steps are maturin's, from [tool.maturin.generate-ci.github]; the
    # hand edits (no free-threaded wheels, smoke tests, publishing) are listed in the file.
    generated = subprocess.run(
        [sys.executable, "-m", "maturin", "generate-ci", "github"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    expected = yaml.safe_load(generated)
    for job in BUILD_JOBS:
        assert WORKFLOW["jobs"][job]["strategy"] == expected["jobs"][job]["strategy"], job
        builds = [s for s in expected["jobs"][job]["steps"] if s.get("name") == "Build wheels"]
        assert _steps(job, "PyO3/maturin-action") == builds, job
    assert WORKFLOW["jobs"]["sdist"] == expected["jobs"]["sdist"]


# --- packaging metadata and the version -------------------------------------------------------


def test_maturin_builds_the_package_layout() -> None:
    maturin = PYPROJECT["tool"]["maturin"]
    assert maturin["module-name"] == "clvrs._core"
    assert maturin["python-source"] == "python"
    assert "python" in maturin["features"]
    assert PYPROJECT["project"]["dynamic"] == ["version"]  # from Cargo.toml


def test_version_is_cargo_toml_version() -> None:
    version = CARGO["package"]["version"]
    assert CHECK_WHEEL.cargo_version() == version
    assert clvrs.__version__ == version
    assert importlib.metadata.version("clvrs") == version


def test_ci_builds_and_smoke_tests_the_wheel_after_the_test_command() -> None:
    lines = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    test_command = next(i for i, line in enumerate(lines) if "python3 -m pytest" in line)
    build = lines.index('python3 -m maturin build --release --out "$dist"')
    smoke = lines.index('.ci/smoke_wheel "$dist"')
    assert test_command < build < smoke
    # maturin (for the build) and PyYAML (for these tests) come with the test dependencies.
    test_extra = PYPROJECT["project"]["optional-dependencies"]["test"]
    assert any(requirement.startswith("maturin") for requirement in test_extra)
    assert any(requirement.lower().startswith("pyyaml") for requirement in test_extra)


# --- the checks of the built wheel ------------------------------------------------------------

VERSION = "0.1.0"


def _fake_wheel(
    tmp_path: Path,
    name: str = f"clvrs-{VERSION}-cp39-abi3-manylinux_2_34_x86_64.whl",
    drop: tuple[str, ...] = (),
    extra: tuple[str, ...] = ("clvrs/_core.abi3.so",),
    metadata_version: str = VERSION,
) -> Path:
    path = tmp_path / name
    metadata = (
        f"Metadata-Version: 2.4\nName: clvrs\nVersion: {metadata_version}\n"
        "Requires-Dist: numpy>=1.22\nRequires-Dist: pandas>=1.5\n"
    )
    with zipfile.ZipFile(path, "w") as archive:
        for member in CHECK_WHEEL.required_files():
            if member not in drop:
                archive.writestr(member, "")
        for member in extra:
            archive.writestr(member, "")
        archive.writestr(f"clvrs-{VERSION}.dist-info/METADATA", metadata)
    return path


def test_required_files_are_the_modules_data_types_and_stubs() -> None:
    required = CHECK_WHEEL.required_files()
    data = ROOT / "python" / "clvrs" / "datasets" / "data"
    assert {f"clvrs/datasets/data/{p.name}" for p in data.iterdir()} <= set(required)
    assert {"clvrs/py.typed", "clvrs/_core.pyi", "clvrs/__init__.py"} <= set(required)
    assert "clvrs/lifetimes/fitters/__init__.py" in required


def test_a_complete_wheel_passes(tmp_path: Path) -> None:
    wheel = _fake_wheel(tmp_path)
    assert CHECK_WHEEL.wheel_problems(wheel, VERSION, CHECK_WHEEL.required_files()) == []
    windows = _fake_wheel(
        tmp_path, name=f"clvrs-{VERSION}-cp39-abi3-win_amd64.whl", extra=("clvrs/_core.pyd",)
    )
    assert CHECK_WHEEL.wheel_problems(windows, VERSION, CHECK_WHEEL.required_files()) == []


@pytest.mark.parametrize(
    ("kwargs", "complaint"),
    [
        ({"drop": ("clvrs/py.typed",)}, "missing clvrs/py.typed"),
        ({"drop": ("clvrs/_core.pyi",)}, "missing clvrs/_core.pyi"),
        ({"drop": ("clvrs/datasets/data/donations.csv",)}, "missing clvrs/datasets/data/don"),
        ({"drop": ("clvrs/models/bgnbd.py",)}, "missing clvrs/models/bgnbd.py"),
        ({"extra": ()}, "expected one extension module"),
        ({"extra": ("clvrs/_core.abi3.so", "clvrs/_core.cpython-311-x86_64-linux-gnu.so")}, "one"),
        (
            {
                "name": f"clvrs-{VERSION}-cp311-cp311-manylinux_2_34_x86_64.whl",
                "extra": ("clvrs/_core.cpython-311-x86_64-linux-gnu.so",),
            },
            "not an abi3",
        ),
        ({"name": "clvrs-0.0.9-cp39-abi3-manylinux_2_34_x86_64.whl"}, "Cargo.toml's version"),
        ({"metadata_version": "0.0.9"}, "Version is not Cargo.toml's"),
    ],
)
def test_an_incomplete_wheel_is_named(tmp_path: Path, kwargs: Any, complaint: str) -> None:
    wheel = _fake_wheel(tmp_path, **kwargs)
    problems = CHECK_WHEEL.wheel_problems(wheel, VERSION, CHECK_WHEEL.required_files())
    assert any(complaint in problem for problem in problems), problems


def test_the_installed_check_refuses_the_source_tree(monkeypatch: pytest.MonkeyPatch) -> None:
    # A clvrs imported from the checkout (an editable install, or the source tree on sys.path)
    # must not pass the smoke test; CI's own install is a regular one, so the import location
    # is set here rather than assumed.
    monkeypatch.setattr(clvrs, "__file__", str(ROOT / "python" / "clvrs" / "__init__.py"))
    problems = CHECK_WHEEL.installed_problems(CARGO["package"]["version"])
    assert any("imported from the checkout" in problem for problem in problems), problems


def test_the_sdist_carries_the_sources_data_types_and_stubs(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "maturin", "sdist", "--out", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        check=True,
    )
    version = CARGO["package"]["version"]
    (sdist,) = tmp_path.glob("*.tar.gz")
    assert sdist.name == f"clvrs-{version}.tar.gz"
    with tarfile.open(sdist) as archive:
        names = set(archive.getnames())
    prefix = f"clvrs-{version}/"
    wanted = [f"python/{name}" for name in CHECK_WHEEL.required_files()]
    wanted += ["Cargo.toml", "Cargo.lock", "pyproject.toml", "src/lib.rs", "README.md"]
    assert [name for name in wanted if prefix + name not in names] == []
