"""Golden-file tests of the render layer: the whole output for each example spec.

Each example `golden/<name>.spec.yaml` renders to `golden/<name>.children.yaml`, every child as
one YAML document, and `golden/<name>.nginx.conf` when the edge proxy is on. The comparison is
on text, so any change of a value, key order or list order fails. After an intended change,
run `pytest tests/unit --update-golden` and review the diff of the golden files.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any

import pytest
import yaml

from apiservice_operator.model import ApiServiceSpec
from apiservice_operator.render import (
    Credentials,
    Owner,
    checksum,
    credentials_values,
    render_children,
    render_nginx_conf,
    render_settings_configmap,
)

GOLDEN_DIR = Path(__file__).parent / "golden"
EXAMPLES = ("minimal", "full", "external")
OWNER = Owner(name="shop", namespace="shop-prod", uid="0d9c7a4e-5b1f-4c1e-9d0a-7f1e2b3c4d5e")
# Passwords with characters that URLs must escape, so the goldens show the escaping.
CREDENTIALS = Credentials(
    postgres_password="p@ss:w/rd%",
    redis_password="r3d!s#pass",
    jwt_secret="jwt-secret-0123456789",
)


class GoldenDumper(yaml.SafeDumper):
    """YAML dumper that writes multi-line strings, such as nginx.conf, as literal blocks."""


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


GoldenDumper.add_representer(str, _represent_str)


def load_example(name: str) -> ApiServiceSpec:
    """Parse the example spec `golden/<name>.spec.yaml`."""
    text = (GOLDEN_DIR / f"{name}.spec.yaml").read_text(encoding="utf-8")
    return ApiServiceSpec.model_validate(yaml.safe_load(text))


def render_example(spec: ApiServiceSpec) -> list[dict[str, Any]]:
    """Render `spec` with the inputs checksum that reconcile would compute."""
    inputs = checksum(
        render_settings_configmap(OWNER, spec)["data"],
        credentials_values(OWNER, spec, CREDENTIALS),
    )
    return render_children(OWNER, spec, CREDENTIALS, inputs)


def dump_children(children: list[dict[str, Any]]) -> str:
    """Write `children` as YAML documents in their own key order."""
    return yaml.dump_all(
        children, Dumper=GoldenDumper, sort_keys=False, width=1000, allow_unicode=True
    )


def compare_golden(path: Path, actual: str, *, update: bool) -> None:
    """Fail with a unified diff when `actual` differs from `path`; rewrite it when `update`."""
    if update:
        path.write_text(actual, encoding="utf-8")
        return
    if not path.exists():
        pytest.fail(f"golden file {path.name} is missing: run pytest with --update-golden")
    expected = path.read_text(encoding="utf-8")
    if actual == expected:
        return
    diff = difflib.unified_diff(
        expected.splitlines(keepends=True),
        actual.splitlines(keepends=True),
        fromfile=f"golden/{path.name}",
        tofile="rendered",
    )
    pytest.fail(
        f"rendered output differs from golden/{path.name}; if the change is intended, run "
        "pytest with --update-golden and review the diff:\n" + "".join(diff)
    )


@pytest.mark.parametrize("example", EXAMPLES)
def test_children_match_golden(example: str, update_golden: bool) -> None:
    children = render_example(load_example(example))
    compare_golden(
        GOLDEN_DIR / f"{example}.children.yaml", dump_children(children), update=update_golden
    )


@pytest.mark.parametrize("example", EXAMPLES)
def test_nginx_conf_matches_golden(example: str, update_golden: bool) -> None:
    spec = load_example(example)
    path = GOLDEN_DIR / f"{example}.nginx.conf"
    if not spec.ingress.edge.enabled:
        assert not path.exists(), f"{path.name} is stale: the example has no edge proxy"
        return
    compare_golden(path, render_nginx_conf(OWNER, spec), update=update_golden)


@pytest.mark.parametrize("example", EXAMPLES)
def test_golden_children_load_as_rendered(example: str) -> None:
    text = (GOLDEN_DIR / f"{example}.children.yaml").read_text(encoding="utf-8")
    assert list(yaml.safe_load_all(text)) == render_example(load_example(example))


def test_golden_comparison_fails_on_change(tmp_path: Path) -> None:
    path = tmp_path / "example.yaml"
    path.write_text("replicas: 2\n", encoding="utf-8")
    with pytest.raises(pytest.fail.Exception, match=r"-replicas: 2\n\+replicas: 3"):
        compare_golden(path, "replicas: 3\n", update=False)


def test_golden_comparison_fails_when_file_missing(tmp_path: Path) -> None:
    with pytest.raises(pytest.fail.Exception, match="--update-golden"):
        compare_golden(tmp_path / "missing.yaml", "kind: Secret\n", update=False)


def test_golden_update_rewrites_file(tmp_path: Path) -> None:
    path = tmp_path / "example.yaml"
    path.write_text("replicas: 2\n", encoding="utf-8")
    compare_golden(path, "replicas: 3\n", update=True)
    assert path.read_text(encoding="utf-8") == "replicas: 3\n"
