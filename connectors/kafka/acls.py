"""The ACLs fusewatch's principal needs on a cluster with an authorizer, and nothing more.

On fusewatch's topics (``kafka.topic_prefix``) and on the topics and consumer groups named after the worker's app
id (faust creates ``<app_id>-__assignor-__leader``; the workers' group is the app id, the sinks' group
``<app_id>-sink``), all as prefixed patterns; plus ``IDEMPOTENT_WRITE`` on the cluster (brokers before 2.8
require it for idempotent producers). No ``DELETE``, no ``ALTER``: topics are created by fusewatch but deleted
and reconfigured only by an administrator.

>>> for line in describe_acls(acls_for("User:fusewatch", "fusewatch.", "fusewatch")):
...     print(line)
User:fusewatch  ALLOW  READ, WRITE, CREATE, DESCRIBE, DESCRIBE_CONFIGS  on TOPIC  fusewatch*
User:fusewatch  ALLOW  READ, DESCRIBE  on GROUP  fusewatch*
User:fusewatch  ALLOW  IDEMPOTENT_WRITE  on CLUSTER  kafka-cluster
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import groupby

from kafka.admin import (
    ACL,
    ACLOperation,
    ACLPermissionType,
    ACLResourcePatternType,
    ResourcePattern,
    ResourceType,
)

from connectors.kafka.admin import admin_client
from fusewatch.core.errors import AccessDeniedError, FusewatchError
from fusewatch.core.kafka_settings import KafkaSettings

TOPIC_OPERATIONS = (ACLOperation.READ, ACLOperation.WRITE, ACLOperation.CREATE, ACLOperation.DESCRIBE,
                    ACLOperation.DESCRIBE_CONFIGS)
GROUP_OPERATIONS = (ACLOperation.READ, ACLOperation.DESCRIBE)


def acls_for(principal: str, topic_prefix: str, app_id: str) -> list[ACL]:
    """The ACLs of ``principal`` (``User:NAME``) for fusewatch's topics under ``topic_prefix`` and the app id."""
    if not principal.startswith("User:") or len(principal) <= len("User:"):
        raise FusewatchError(f"principal {principal!r}: give it as User:NAME")

    def allow(operations: Sequence[ACLOperation], kind: ResourceType, name: str,
              pattern: ACLResourcePatternType = ACLResourcePatternType.PREFIXED) -> list[ACL]:
        return [ACL(principal, "*", operation, ACLPermissionType.ALLOW, ResourcePattern(kind, name, pattern))
                for operation in operations]

    # the topics, and faust's <app_id>-__assignor-__leader (one prefix when the app id covers the topics)
    prefixes = [app_id] if topic_prefix.startswith(app_id) else [topic_prefix, app_id]
    acls: list[ACL] = []
    for prefix in prefixes:
        acls += allow(TOPIC_OPERATIONS, ResourceType.TOPIC, prefix)
    acls += allow(GROUP_OPERATIONS, ResourceType.GROUP, app_id)  # the workers (app id) and sinks (<app_id>-sink)
    acls += allow([ACLOperation.IDEMPOTENT_WRITE], ResourceType.CLUSTER, "kafka-cluster",
                  ACLResourcePatternType.LITERAL)
    return acls


def describe_acls(acls: Sequence[ACL]) -> list[str]:
    """One line per principal and resource: what is allowed where (``NAME*`` marks a prefixed pattern)."""

    def resource(acl: ACL) -> tuple[str, str, str]:
        pattern = acl.resource_pattern
        star = "*" if pattern.pattern_type == ACLResourcePatternType.PREFIXED else ""
        return acl.principal, pattern.resource_type.name, pattern.resource_name + star

    lines = []
    for (principal, kind, name), group in groupby(acls, key=resource):
        operations = ", ".join(acl.operation.name for acl in group)
        lines.append(f"{principal}  ALLOW  {operations}  on {kind}  {name}")
    return lines


def apply_acls(settings: KafkaSettings, acls: Sequence[ACL]) -> int:
    """Create ``acls`` on the cluster (as the principal of ``settings``, which must be allowed to ALTER the
    cluster: an administrator); existing ones are left as they are. Returns how many were asked for."""
    with admin_client(settings) as client:
        result = client.create_acls(list(acls))
    failed = result.get("failed", [])
    if failed:
        acl, error = failed[0]
        raise AccessDeniedError(
            f"Kafka at {settings.bootstrap_servers}: {len(failed)} of {len(acls)} ACLs were not created"
            f" ({type(error).__name__}, e.g. for {acl.resource_pattern.resource_name}); creating ACLs needs an"
            f" administrator's credentials, {settings.principal} may not")
    return len(acls)
