"""The {{name}} connector: sends each event's type, id, project and record title as JSON, with
the webhook's optional `label`; an event without a current value (a deletion) sends nothing.
Change `transform` to shape the requests your target expects. The contract is wit/plugin.wit.
"""

import json

import wit_world
from componentize_py_types import Err
from wit_world.imports import host
from wit_world.imports.types import OutgoingRequest, PluginError_InvalidConfig, PluginInfo

SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "label": {"type": "string", "title": "Label", "description": "Added to every message as `label`."},
    },
}


class WitWorld(wit_world.WitWorld):
    def describe(self) -> PluginInfo:
        return PluginInfo(
            name="{{name}}",
            version="0.1.0",
            description="Sends each event's type, id, project and title as JSON.",
            config_schema=json.dumps(SCHEMA),
            policy=None,
        )

    def transform(self, event: str, config: str) -> list[OutgoingRequest]:
        settings = json.loads(config)
        label = settings.get("label")
        if label is not None and not isinstance(label, str):
            raise Err(PluginError_InvalidConfig("label: expected a string"))
        payload = json.loads(event)
        record = payload.get("currentValue")
        if record is None:
            host.log(host.LogLevel.INFO, "no current value (a deletion): nothing to send")
            return []
        title = record.get("title") if isinstance(record, dict) else None
        # Keys in alphabetical order, compact, UTF-8 as it is: the same bytes as the Rust and
        # JavaScript templates send.
        body = {
            "event": payload.get("event"),
            "id": payload.get("id"),
            "label": label,
            "project": (payload.get("project") or {}).get("id"),
            "title": title if isinstance(title, str) else None,
        }
        text = json.dumps(body, separators=(",", ":"), ensure_ascii=False)
        return [OutgoingRequest(url=None, method=None, headers=[("content-type", "application/json")], body=text, ordering_key=None)]
