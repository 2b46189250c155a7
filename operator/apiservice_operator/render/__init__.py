"""Render layer: every child Kubernetes object of an ApiService, built as plain dicts.

The functions here are pure: no I/O beyond reading the packaged nginx.conf template, no clock
and no randomness. The same input always gives byte-identical output, so the reconcile layer
can apply it with server-side apply and compare it with what it applied before. Generated
secrets come in through Credentials, and the checksum of the pods' inputs through
render_children's `inputs_checksum`.
"""

from apiservice_operator.render.children import CHILD_KINDS, render_children
from apiservice_operator.render.config import (
    CREDENTIAL_KEYS,
    Credentials,
    credentials_values,
    database_url,
    decode_credentials,
    redis_url,
    render_credentials_secret,
    render_settings_configmap,
    stack_url,
)
from apiservice_operator.render.edge import render_nginx_conf
from apiservice_operator.render.meta import (
    COMPONENT_LABEL,
    CONFIG_CHECKSUM_ANNOTATION,
    INPUTS_CHECKSUM_ANNOTATION,
    MAX_OWNER_NAME_LENGTH,
    NAME_LABEL,
    ChildNames,
    Manifest,
    Owner,
    checksum,
    child_names,
    common_labels,
    selector_labels,
    validate_owner_name,
)
from apiservice_operator.render.retention import (
    ChildRef,
    retained_children,
    retains_credentials,
    retains_postgres_data,
    retains_redis_data,
)

__all__ = [
    "CHILD_KINDS",
    "COMPONENT_LABEL",
    "CONFIG_CHECKSUM_ANNOTATION",
    "CREDENTIAL_KEYS",
    "INPUTS_CHECKSUM_ANNOTATION",
    "MAX_OWNER_NAME_LENGTH",
    "NAME_LABEL",
    "ChildNames",
    "ChildRef",
    "Credentials",
    "Manifest",
    "Owner",
    "checksum",
    "child_names",
    "common_labels",
    "credentials_values",
    "database_url",
    "decode_credentials",
    "redis_url",
    "render_children",
    "render_credentials_secret",
    "render_nginx_conf",
    "render_settings_configmap",
    "retained_children",
    "retains_credentials",
    "retains_postgres_data",
    "retains_redis_data",
    "selector_labels",
    "stack_url",
    "validate_owner_name",
]
