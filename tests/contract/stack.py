"""The examples' ApiServices and the child objects that the operator renders for them."""

from __future__ import annotations

import base64
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from apiservice_operator.model import ApiServiceSpec
from apiservice_operator.render import (
    Credentials,
    Manifest,
    Owner,
    child_names,
    render_children,
)

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES_DIR = ROOT / "examples"
NAMESPACE = "contract"
INPUTS_CHECKSUM = "0" * 64


@dataclass(frozen=True)
class Example:
    """One ApiService from examples/: the file's stem, the resource's name and its raw spec."""

    file: str
    name: str
    spec_data: dict[str, Any]

    def spec(self) -> ApiServiceSpec:
        """Return the spec, validated and with defaults, as the operator reads it."""
        return ApiServiceSpec.model_validate(self.spec_data)

    def owner(self) -> Owner:
        """Return the Owner that rendering uses for this ApiService."""
        return Owner(name=self.name, namespace=NAMESPACE, uid=f"uid-of-{self.file}")


def load_examples() -> list[Example]:
    """Read every ApiService in examples/, sorted by file name."""
    found = []
    for path in sorted(EXAMPLES_DIR.glob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text()):
            if document and document.get("kind") == "ApiService":
                found.append(
                    Example(
                        file=path.stem,
                        name=document["metadata"]["name"],
                        spec_data=document["spec"],
                    )
                )
    return found


def example_params(has_component: Callable[[ApiServiceSpec], bool]) -> list[Any]:
    """Return pytest params of the examples whose spec has a component, with file stems as ids."""
    return [
        pytest.param(example, id=example.file)
        for example in load_examples()
        if has_component(example.spec())
    ]


def generate_credentials() -> Credentials:
    """Generate credentials the way the operator does: random URL-safe tokens."""
    return Credentials(
        postgres_password=secrets.token_urlsafe(32),
        redis_password=secrets.token_urlsafe(32),
        jwt_secret=secrets.token_urlsafe(32),
    )


@dataclass(frozen=True)
class RenderedStack:
    """The children rendered for one example, with lookups by kind and name."""

    example: Example
    credentials: Credentials
    children: list[Manifest]

    def child(self, kind: str, name: str) -> Manifest:
        """Return the child of `kind` called `name`, failing the test when there is none."""
        for child in self.children:
            if child["kind"] == kind and child["metadata"]["name"] == name:
                return child
        rendered = [(child["kind"], child["metadata"]["name"]) for child in self.children]
        raise AssertionError(f"no {kind} {name!r} among the rendered children: {rendered}")

    def secret_value(self, key: str) -> str:
        """Return one key of the credentials Secret, decoded from base64 `data`."""
        secret = self.child("Secret", child_names(self.example.name).credentials)
        data = secret["data"]
        assert key in data, f"credentials Secret has no key {key}: {sorted(data)}"
        return base64.b64decode(data[key]).decode("utf-8")

    def container(self, deployment_name: str) -> dict[str, Any]:
        """Return the only container of the Deployment called `deployment_name`."""
        deployment = self.child("Deployment", deployment_name)
        containers = deployment["spec"]["template"]["spec"]["containers"]
        assert len(containers) == 1, f"{deployment_name} has {len(containers)} containers"
        return dict(containers[0])

    def env(self, deployment_name: str) -> dict[str, str]:
        """Return a Deployment's environment variables, resolving credentials Secret refs.

        Values that refer to the credentials Secret are read from it, as the kubelet does, so
        a wrong key name fails here as it would fail the pod.
        """
        names = child_names(self.example.name)
        resolved = {}
        for variable in self.container(deployment_name).get("env", []):
            if "value" in variable:
                resolved[variable["name"]] = variable["value"]
                continue
            reference = variable["valueFrom"]["secretKeyRef"]
            assert reference["name"] == names.credentials, (
                f"{variable['name']} refers to Secret {reference['name']!r}, "
                f"not to the credentials Secret {names.credentials!r}"
            )
            resolved[variable["name"]] = self.secret_value(reference["key"])
        return resolved


def render_stack(example: Example) -> RenderedStack:
    """Render every child of `example` with freshly generated credentials."""
    credentials = generate_credentials()
    children = render_children(example.owner(), example.spec(), credentials, INPUTS_CHECKSUM)
    return RenderedStack(example=example, credentials=credentials, children=children)


# Passwords that a URL must percent-escape: URL delimiters and a literal "%", spaces and a "+"
# that form encoding would read as a space, and non-ASCII text. The shell syntax in the last one
# must reach Redis unexpanded through the container's `sh -c` command.
ESCAPING_PASSWORDS = [
    pytest.param("p@ss:w/rd%?#&", id="url-delimiters"),
    pytest.param("two words  and+plus", id="spaces-plus"),
    pytest.param("ünïcødé-密码-🔑", id="unicode"),
    pytest.param("%41%2F=$(id)`id`\"'\\;", id="percent-and-shell"),
]
