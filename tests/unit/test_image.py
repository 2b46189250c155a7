"""The container image's inputs: the Dockerfile's final stage and the wheel that it installs.

No Docker engine runs in the test environment, so the image itself is not built here. These tests
check the Dockerfile's statements, and build the same wheel that its builder stage builds.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from tests.support.cluster import ROOT

PACKAGE = ROOT / "operator" / "apiservice_operator"


def final_stage() -> list[str]:
    """Return the instructions of the Dockerfile's last stage, one logical line each."""
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    lines = [line.strip() for line in text.splitlines()]
    instructions = [line for line in lines if line and not line.startswith("#")]
    starts = [i for i, line in enumerate(instructions) if line.startswith("FROM ")]
    assert len(starts) >= 2, "the Dockerfile needs a builder stage and a final stage"
    return instructions[starts[-1] :]


def test_final_stage_runs_as_numeric_user() -> None:
    users = [line.split()[1] for line in final_stage() if line.startswith("USER ")]
    assert users == ["${UID}:${UID}"]
    args = [line for line in final_stage() if line.startswith("ARG UID=")]
    assert len(args) == 1
    assert args[0].removeprefix("ARG UID=").isdigit()


def test_final_stage_entrypoint_and_ports() -> None:
    stage = final_stage()
    assert 'ENTRYPOINT ["apiservice-operator"]' in stage
    assert "EXPOSE 8080 8081" in stage
    env = " ".join(line for line in stage if line.startswith("ENV "))
    assert "APISERVICE_OPERATOR_BIND_ADDRESS=0.0.0.0" in env
    assert not any(line.startswith("HEALTHCHECK") for line in stage)


def test_final_stage_copies_no_sources() -> None:
    # The wheels come in through a bind mount, so no layer of the final image contains them.
    stage = final_stage()
    assert not any(line.startswith(("COPY ", "ADD ")) for line in stage)
    installs = [line for line in stage if "pip install" in line]
    assert len(installs) == 1
    assert "--mount=type=bind,from=builder" in installs[0]
    assert "--no-index" in installs[0]


def test_base_image_is_slim_python() -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert "ARG PYTHON_IMAGE=python:3.12-slim" in text


def test_wheel_contains_package_data(tmp_path: Path) -> None:
    source = tmp_path / "source"
    source.mkdir()
    shutil.copy(ROOT / "pyproject.toml", source)
    shutil.copy(ROOT / "README.md", source)
    shutil.copytree(
        ROOT / "operator",
        source / "operator",
        ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"),
    )
    result = subprocess.run(
        [
            sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
            "--no-index", "--quiet", "--wheel-dir", str(tmp_path / "wheels"), str(source),
        ],
        capture_output=True,
        text=True,
        check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    (wheel,) = (tmp_path / "wheels").glob("apiservice_operator-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())

    data_files = [
        path.relative_to(PACKAGE.parent).as_posix()
        for path in PACKAGE.rglob("*")
        if path.is_file() and path.suffix not in (".py", ".pyc")
    ]
    assert data_files, "the package has no data files to check"
    missing = [name for name in data_files if name not in names]
    assert missing == [], "package data left out of the wheel: fix package-data in pyproject"
    entry_points = next(name for name in names if name.endswith("entry_points.txt"))
    text = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert "apiservice-operator = apiservice_operator.__main__:main" in text
