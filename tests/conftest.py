"""Options shared by every test tier."""

from __future__ import annotations

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--update-golden",
        action="store_true",
        default=False,
        help="Rewrite the golden files from the current output instead of comparing with them.",
    )
    parser.addoption(
        "--kind",
        action="store_true",
        default=False,
        help="Run the cluster tier on a kind cluster (needs a Docker engine) instead of the "
        "local control plane.",
    )


@pytest.fixture(scope="session")
def update_golden(request: pytest.FixtureRequest) -> bool:
    """Whether golden files are rewritten rather than compared."""
    return bool(request.config.getoption("--update-golden"))
