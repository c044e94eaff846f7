"""The title-filter example, in Python: only records whose title contains the config's
`pattern` (ignoring case) go out, reshaped to a small JSON object — the same bytes as the
Rust (../rust) and JavaScript (../js) versions.

Build: `./build.sh` (installs the pinned componentize-py into .venv first if needed).
"""

import json

import wit_world
from componentize_py_types import Err
from wit_world.imports import host
from wit_world.imports.types import OutgoingRequest, PluginError_InvalidConfig, PluginInfo

SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "required": ["pattern"],
    "properties": {"pattern": {"type": "string", "minLength": 1, "description": "Text the title must contain (any case)."}},
}


class WitWorld(wit_world.WitWorld):
    def describe(self) -> PluginInfo:
        return PluginInfo(
            name="title-filter",
            version="1.0.0",
            description="Sends records whose title contains a pattern, as {event, id, matched, project, title}.",
            config_schema=json.dumps(SCHEMA),
            policy=None,
        )

    def transform(self, event: str, config: str) -> list[OutgoingRequest]:
        settings = json.loads(config)
        pattern = settings.get("pattern")
        if not isinstance(pattern, str):
            raise Err(PluginError_InvalidConfig("pattern: expected a string"))
        payload = json.loads(event)
        title = (payload.get("currentValue") or {}).get("title")
        if not isinstance(title, str):
            return []  # no title: nothing to match
        if pattern.lower() not in title.lower():
            host.log(host.LogLevel.DEBUG, f"{json.dumps(title)} does not contain {json.dumps(pattern)}")
            return []
        # Keys in alphabetical order, compact, UTF-8 as it is: the same bytes as the Rust and
        # JavaScript versions.
        body = {
            "event": payload.get("event"),
            "id": payload.get("id"),
            "matched": pattern,
            "project": (payload.get("project") or {}).get("id"),
            "title": title,
        }
        text = json.dumps(body, separators=(",", ":"), ensure_ascii=False)
        return [OutgoingRequest(url=None, method=None, headers=[("content-type", "application/json")], body=text, ordering_key=None)]
