"""Drift between a contract and a served OpenAPI document, as a readable diff.

Both documents are reduced to their shape: for each operation and each
documented status, the fields of the JSON body (name, base type, required),
recursively. Spelling differences that mean the same (OpenAPI 3.0
``nullable`` vs 3.1 ``anyOf [.., null]``, titles, descriptions, examples)
disappear in the reduction; a renamed, retyped, added or dropped field does not.
"""

from __future__ import annotations

import difflib
import json
from typing import Any

__all__ = ["shape_of", "drift"]

MAX_DEPTH = 4


def _resolve(doc: dict[str, Any], node: Any) -> Any:
    seen = 0
    while isinstance(node, dict) and "$ref" in node and seen < 20:
        target: Any = doc
        for part in node["$ref"].lstrip("#/").split("/"):
            target = target[part.replace("~1", "/").replace("~0", "~")]
        node, seen = target, seen + 1
    return node


def _type(doc: dict[str, Any], schema: dict[str, Any]) -> str:
    for key in ("anyOf", "oneOf"):
        if key in schema:
            kinds = sorted({_type(doc, _resolve(doc, s)) for s in schema[key]} - {"null"})
            return "|".join(kinds) or "null"
    kind = schema.get("type")
    if isinstance(kind, list):
        kinds = [k for k in kind if k != "null"]
        kind = kinds[0] if len(kinds) == 1 else "|".join(sorted(kinds))
    if kind is None and "const" in schema:
        kind = {bool: "boolean", int: "integer", str: "string"}.get(type(schema["const"]), "any")
    if kind is None and "properties" in schema:
        kind = "object"
    return str(kind or "any")


def _shape(doc: dict[str, Any], schema: Any, depth: int) -> Any:
    schema = _resolve(doc, schema)
    if not isinstance(schema, dict):
        return "any"
    for key in ("anyOf", "oneOf"):
        options = [s for s in (schema.get(key) or []) if _resolve(doc, s).get("type") != "null"]
        if len(options) == 1:
            return _shape(doc, options[0], depth)
    kind = _type(doc, schema)
    if depth >= MAX_DEPTH:
        return kind
    if kind == "object" and schema.get("properties"):
        required = set(schema.get("required", []))
        return {name: {"required": name in required, "shape": _shape(doc, sub, depth + 1)}
                for name, sub in sorted(schema["properties"].items())}
    if kind == "array" and isinstance(schema.get("items"), dict):
        return {"array of": _shape(doc, schema["items"], depth + 1)}
    return kind


def shape_of(doc: dict[str, Any], *, prefix: str = "") -> dict[str, Any]:
    """``{"GET /path": {"200": shape, ...}}`` for every operation under ``prefix``."""
    out: dict[str, Any] = {}
    for path, item in sorted(doc.get("paths", {}).items()):
        if not path.startswith(prefix):
            continue
        for method, op in sorted(item.items()):
            if method not in ("get", "post", "put", "patch", "delete"):
                continue
            statuses: dict[str, Any] = {}
            for status, response in sorted((op.get("responses") or {}).items()):
                response = _resolve(doc, response)
                media = (response.get("content") or {}).get("application/json")
                statuses[str(status)] = _shape(doc, media.get("schema", {}), 0) if media else None
            out[f"{method.upper()} {path}"] = statuses
    return out


def drift(contract: dict[str, Any], served: dict[str, Any], *, prefix: str = "") -> str:
    """A unified diff of the two shapes; empty when they agree."""
    want = json.dumps(shape_of(contract, prefix=prefix), indent=1, sort_keys=True).splitlines()
    got = json.dumps(shape_of(served, prefix=prefix), indent=1, sort_keys=True).splitlines()
    return "\n".join(difflib.unified_diff(want, got, "contract", "served", lineterm="", n=4))
