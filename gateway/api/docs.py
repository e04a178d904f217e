"""A self-contained API reference page, rendered on the server from the OpenAPI schema.

The gateway runs on closed networks: no script, stylesheet or font is fetched from anywhere,
and a Content-Security-Policy forbids the browser to try. The machine-readable schema is at
``/api/openapi.json`` for generators and for Swagger UI hosted elsewhere.
"""

from __future__ import annotations

from html import escape
from typing import Any

OPENAPI_URL = "/api/openapi.json"
CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:"

_STYLE = """
body{font:15px/1.45 system-ui,sans-serif;margin:0 auto;max-width:70em;padding:1em 2em;color:#222}
h2{border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:2em}
.op{border:1px solid #ddd;border-radius:6px;margin:.8em 0;padding:.2em 1em}
.m{display:inline-block;min-width:4.5em;font-weight:bold;font-family:monospace}
.get{color:#1866b4}.post{color:#188a3c}.put,.patch{color:#a56a00}.delete{color:#b42318}
code,.p{font-family:ui-monospace,monospace}
table{border-collapse:collapse;margin:.4em 0}td,th{border:1px solid #e3e3e3;padding:.2em .5em;
text-align:left;vertical-align:top}pre{white-space:pre-wrap}
"""

_METHODS = ("get", "post", "put", "patch", "delete")


def _text(value: Any) -> str:
    return escape(str(value)) if value else ""


def _schema_name(schema: dict[str, Any]) -> str:
    if "$ref" in schema:
        return str(schema["$ref"]).rsplit("/", 1)[-1]
    if "anyOf" in schema:
        return " | ".join(_schema_name(s) for s in schema["anyOf"])
    if schema.get("type") == "array":
        return f"array of {_schema_name(schema.get('items', {}))}"
    if "enum" in schema:
        return "one of " + ", ".join(str(v) for v in schema["enum"])
    return str(schema.get("type", "object"))


def _parameters(params: list[dict[str, Any]]) -> str:
    if not params:
        return ""
    rows = "".join(
        f"<tr><td class=p>{_text(p['name'])}{'' if not p.get('required') else ' *'}</td>"
        f"<td>{_text(p.get('in'))}</td><td>{_text(_schema_name(p.get('schema', {})))}</td>"
        f"<td>{_text(p.get('description') or p.get('schema', {}).get('description'))}</td></tr>"
        for p in params
    )
    return f"<table><tr><th>parameter</th><th>in</th><th>type</th><th></th></tr>{rows}</table>"


def _responses(responses: dict[str, Any]) -> str:
    items = []
    for code, response in responses.items():
        kinds = []
        for media, content in (response.get("content") or {}).items():
            kinds.append(f"{media}: {_schema_name(content.get('schema', {}))}")
        items.append(
            f"<li><b>{_text(code)}</b> {_text(response.get('description'))}"
            f"{' — ' + _text('; '.join(kinds)) if kinds else ''}</li>"
        )
    return f"<ul>{''.join(items)}</ul>"


def _operation(path: str, method: str, op: dict[str, Any]) -> str:
    link = path if method == "get" and "{" not in path else ""
    title = f'<a href="{escape(link)}">{escape(path)}</a>' if link else escape(path)
    return (
        f'<div class=op><p><span class="m {method}">{method.upper()}</span> '
        f"<code>{title}</code> {_text(op.get('summary'))}</p>"
        f"<pre>{_text(op.get('description'))}</pre>"
        f"{_parameters(op.get('parameters', []))}{_responses(op.get('responses', {}))}</div>"
    )


def _schemas(schemas: dict[str, Any]) -> str:
    parts = []
    for name, schema in sorted(schemas.items()):
        props = schema.get("properties", {})
        required = set(schema.get("required", []))
        rows = "".join(
            f"<tr><td class=p>{_text(field)}{' *' if field in required else ''}</td>"
            f"<td>{_text(_schema_name(spec))}</td><td>{_text(spec.get('description'))}</td></tr>"
            for field, spec in props.items()
        )
        table = f"<table>{rows}</table>" if rows else ""
        parts.append(
            f'<h3 id="schema-{escape(name)}">{escape(name)}</h3>'
            f"<p>{_text(schema.get('description'))}</p>{table}"
        )
    return "".join(parts)


def render_docs(openapi: dict[str, Any]) -> str:
    info = openapi.get("info", {})
    by_tag: dict[str, list[str]] = {}
    for path, item in openapi.get("paths", {}).items():
        for method in _METHODS:
            if method in item:
                op = item[method]
                tag = (op.get("tags") or ["other"])[0]
                by_tag.setdefault(tag, []).append(_operation(path, method, op))
    sections = "".join(
        f"<h2>{escape(tag)}</h2>{''.join(ops)}" for tag, ops in sorted(by_tag.items())
    )
    schemas = _schemas(openapi.get("components", {}).get("schemas", {}))
    title = f"{info.get('title', 'API')} {info.get('version', '')}"
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>{escape(title)}</title><style>{_STYLE}</style></head><body>"
        f"<h1>{escape(title)}</h1><p>{_text(info.get('description'))}</p>"
        f'<p>OpenAPI schema: <a href="{OPENAPI_URL}"><code>{OPENAPI_URL}</code></a>. '
        "Parameters marked * are required. WebSocket: <code>/api/events/ws</code>.</p>"
        f"{sections}<h2>Schemas</h2>{schemas}</body></html>"
    )
