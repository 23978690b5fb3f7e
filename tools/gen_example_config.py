"""Regenerate fleetpilot.example.yaml from the Settings model (descriptions become comments).

Run: .venv/bin/python tools/gen_example_config.py. tests/unit/test_config.py checks the file
documents every field and parses to the defaults, so a new field without this step fails CI.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import yaml
from pydantic import BaseModel

from controlplane.config import Settings

HEADER = [
    "# fleetpilot configuration. Every key is optional; the values shown are the defaults.",
    "# Environment overrides: FLEETPILOT_<KEY>, nested keys joined by __ (e.g. FLEETPILOT_ROUTER__PORT=7001).",
    "# Use with: fleetpilot <command> --config fleetpilot.example.yaml (or FLEETPILOT_CONFIG=..., or ./fleetpilot.yaml).",
    "",
]


def _plain(value):
    if hasattr(value, "get_secret_value"):
        return None
    if hasattr(value, "__fspath__"):
        return str(value)
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def render(model: BaseModel, indent: int = 0) -> list[str]:
    pad = "  " * indent
    lines: list[str] = []
    for name, field in type(model).model_fields.items():
        value = getattr(model, name)
        if isinstance(value, BaseModel):
            lines.append(f"{pad}{name}:")
            lines += render(value, indent + 1)
            if indent == 0:
                lines.append("")
            continue
        lines += [f"{pad}# {line}" for line in textwrap.wrap(field.description or "", 100 - len(pad))]
        text = yaml.safe_dump({name: _plain(value)}, default_flow_style=True, width=200).strip()
        lines.append(f"{pad}{text[1:-1] if text.startswith('{') else text}")
    return lines


def main() -> None:
    out = Path(__file__).resolve().parents[1] / "fleetpilot.example.yaml"
    out.write_text("\n".join(HEADER + render(Settings())).rstrip() + "\n")


if __name__ == "__main__":
    main()
