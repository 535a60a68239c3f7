"""Make sure the schema registry serves the alert schema at the id the packets carry.

Alert consumers decode with a Confluent-compatible registry client: it reads the schema id
from each message's header and fetches ``GET /schemas/ids/<id>``. The relay checks that id
before its first alert. A Confluent-compatible API cannot choose an id when registering, so
a missing schema is imported through Apicurio Registry's admin import, which preserves the
content id (Apicurio serves content ids as Confluent schema ids); any other registry must be
given the schema by its operators.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import time
import urllib.error
import urllib.request
import zipfile
from typing import Any

from shutterline import exceptions
from shutterline.alerts import serialize

__all__ = ["RegistryUnreachableError", "apicurio_import_zip", "ensure_schema"]

log = logging.getLogger(__name__)

_CCOMPAT = "/apis/ccompat/v7"
_TIMEOUT_S = 10.0


class RegistryUnreachableError(exceptions.RetriableError):
    """The schema registry did not answer (connection refused, time-out, 5xx)."""


def _request(url: str, data: bytes | None = None, headers: dict[str, str] | None = None) -> Any:
    """JSON of a registry answer; None for 404. Raises on anything else."""
    request = urllib.request.Request(url, data=data, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=_TIMEOUT_S) as response:
            body = response.read()
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return None
        detail = exc.read()[:300].decode(errors="replace")
        if exc.code >= 500:
            raise RegistryUnreachableError(f"{url}: HTTP {exc.code}: {detail}") from None
        message = f"schema registry {url}: HTTP {exc.code}: {detail}"
        raise exceptions.PermanentError(message) from None
    except (urllib.error.URLError, OSError) as exc:
        raise RegistryUnreachableError(f"schema registry {url} unreachable: {exc}") from None
    return json.loads(body) if body else {}


def _clean(node: Any) -> Any:
    """The schema without fastavro's bookkeeping keys (``__fastavro_parsed``, ...)."""
    if isinstance(node, dict):
        return {k: _clean(v) for k, v in node.items() if not k.startswith("__")}
    if isinstance(node, list):
        return [_clean(v) for v in node]
    return node


def _schema_text(schema: serialize.AlertSchema) -> bytes:
    return json.dumps(_clean(schema.packet_schema.definition), separators=(",", ":")).encode()


def _same_schema(served: str, schema: serialize.AlertSchema) -> bool:
    """Whether the registry's text is the same Avro schema as ours (parsing canonical form)."""
    import fastavro

    try:
        theirs = fastavro.schema.to_parsing_canonical_form(json.loads(served))
    except (ValueError, TypeError, KeyError, fastavro.schema.SchemaParseException):
        return False
    return bool(theirs == fastavro.schema.to_parsing_canonical_form(schema.parsed))


def apicurio_import_zip(schema: serialize.AlertSchema, subject: str) -> bytes:
    """An Apicurio Registry 3 export archive holding ``schema`` at content id ``schema.id``.

    One group (``default``), one artifact named ``subject`` with version 1 on the ``latest``
    branch; global id and content id both equal the Confluent schema id.
    """
    text = _schema_text(schema)
    digest = hashlib.sha256(text).hexdigest()
    now = int(time.time() * 1000)
    who = "shutterline"
    stamp = {"createdOn": now, "modifiedOn": now, "owner": who, "modifiedBy": who}
    artifact = f"groups/default/artifacts/{subject}"
    entries: dict[str, Any] = {
        "manifest.Manifest.json": {
            "systemName": "shutterline",
            "systemVersion": "3.0.0",
            "exportVersion": "3.0",
            "exportedOn": now,
            "exportedBy": "shutterline",
        },
        f"content/{digest}.Content.json": {
            "contentId": schema.id,
            "contentHash": digest,
            "canonicalHash": None,
            "artifactType": "AVRO",
            "contentType": "application/json",
            "serializedReferences": None,
        },
        f"{artifact}/MetaData.Artifact.json": {
            "groupId": None, "artifactId": subject, "artifactType": "AVRO", "labels": {}, **stamp
        },
        f"{artifact}/versions/1.ArtifactVersion.json": {
            "globalId": schema.id, "groupId": None, "artifactId": subject, "version": "1",
            "versionOrder": 1, "state": "ENABLED", "contentId": schema.id, "labels": {},
            "name": f"Rubin alert schema {schema.version}", **stamp,
        },
        f"{artifact}/branches/latest.Branch.json": {
            "groupId": None, "artifactId": subject, "branchId": "latest", "systemDefined": True,
            "versions": ["1"], **stamp,
        },
    }  # fmt: skip
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, document in entries.items():
            archive.writestr(name, json.dumps(document))
        archive.writestr(f"content/{digest}.Content.data", text)
    return buffer.getvalue()


def ensure_schema(url: str, schema: serialize.AlertSchema, subject: str) -> str:
    """Check (and if missing, import) the alert schema at id ``schema.id``; say what happened.

    Parameters
    ----------
    url
        The Confluent-compatible API root, e.g. ``http://registry:8080/apis/ccompat/v7``.
    schema
        The schema of the spooled packets.
    subject
        Subject to file it under when importing (``<alert topic>-value``).

    Raises
    ------
    RegistryUnreachableError
        The registry did not answer; worth trying again.
    shutterline.exceptions.PermanentError
        The id holds another schema, or the schema is missing and cannot be imported here.
    """
    root = url.rstrip("/")
    served = _request(f"{root}/schemas/ids/{schema.id}")
    if served is not None:
        if not _same_schema(served.get("schema", ""), schema):
            raise exceptions.PermanentError(
                f"schema registry {root}: id {schema.id} holds another schema than the alert "
                f"schema {schema.version}; packets would decode wrongly"
            )
        return f"schema id {schema.id} present at {root}"
    if not root.endswith(_CCOMPAT):
        raise exceptions.PermanentError(
            f"schema registry {root} has no schema id {schema.id}; register the alert schema "
            f"{schema.version} there with that id (Confluent: IMPORT mode) before relaying"
        )
    base = root[: -len(_CCOMPAT)]
    headers = {
        "Content-Type": "application/zip",
        "X-Registry-Preserve-GlobalId": "true",
        "X-Registry-Preserve-ContentId": "true",
    }
    _request(
        f"{base}/apis/registry/v3/admin/import?requireEmptyRegistry=false",
        apicurio_import_zip(schema, subject),
        headers,
    )
    served = _request(f"{root}/schemas/ids/{schema.id}")
    if served is None or not _same_schema(served.get("schema", ""), schema):
        raise exceptions.PermanentError(
            f"schema registry {base}: imported the alert schema but id {schema.id} does not "
            "serve it (does the registry serve global ids as schema ids?)"
        )
    log.info("imported alert schema %s at id %s into %s", schema.version, schema.id, base)
    return f"schema id {schema.id} imported into {base}"
