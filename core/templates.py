"""Agent templates shipped with the project: loading, rendering and the checklist's loading test."""
from __future__ import annotations

import string
import tomllib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Mapping

from core.errors import UserInputError
from core.models import AGENT_TYPES

TEMPLATE_FILE = Path(__file__).parent / "agent_templates" / "templates.toml"

SAMPLE_CONTEXT = {
    "client_first_name": "Marcus", "shop_name": "Fade Factory", "barber_name": "Andre",
    "weeks_since_visit": 5, "months_since_visit": 4, "since_visit_weeks": "5 weeks",
    "since_visit_months": "4 months", "booking_link": "https://book.example/fade-factory",
    "review_link": "https://review.example/fade-factory", "appointment_date": "Friday, Nov 27",
    "appointment_time": "3:30 PM", "fee_amount": "$15", "holiday_name": "Thanksgiving",
    "holiday_hours": "Thu closed, Fri 9-5", "service": "skin fade", "addon_service": "beard trim",
    "custom_message": "We're open late on Thursdays now.",
}


class MissingVariable(UserInputError):
    """A template needs a variable the context does not have."""


@dataclass(frozen=True)
class TemplateSpec:
    agent_type: str
    name: str
    description: str
    channel: str
    system_prompt: str
    initial_message: str
    follow_ups: tuple[str, ...]
    required_variables: tuple[str, ...]


@lru_cache(maxsize=1)
def load_templates() -> dict[str, TemplateSpec]:
    """Every shipped template, by agent type."""
    data = tomllib.loads(TEMPLATE_FILE.read_text(encoding="utf-8"))
    specs = {}
    for agent_type, raw in data.items():
        specs[agent_type] = TemplateSpec(
            agent_type=agent_type, name=raw["name"], description=raw["description"], channel=raw["channel"],
            system_prompt=" ".join(raw["system_prompt"].split()), initial_message=raw["initial_message"],
            follow_ups=tuple(raw.get("follow_ups", [])), required_variables=tuple(raw["required_variables"]))
    return specs


def used_variables(text: str) -> set[str]:
    """Names of the {variables} in TEXT."""
    return {name for _, name, _, _ in string.Formatter().parse(text) if name}


def render(text: str, context: Mapping[str, Any], *, where: str = "template") -> str:
    """Fill TEXT's {variables} from CONTEXT; a missing one raises MissingVariable naming it."""
    missing = sorted(used_variables(text) - set(context))
    if missing:
        raise MissingVariable(f"{where} needs {', '.join(missing)}, which the context does not provide.")
    return text.format_map(dict(context))


def check_templates(context: Mapping[str, Any] = SAMPLE_CONTEXT, specs: Mapping[str, TemplateSpec] | None = None,
                    *, missing: str = "no template shipped") -> list[str]:
    """Render every template (the shipped ones, or SPECS) with CONTEXT; one problem line per failure."""
    problems = []
    specs = load_templates() if specs is None else specs
    for agent_type in AGENT_TYPES:
        spec = specs.get(agent_type)
        if spec is None:
            problems.append(f"{agent_type}: {missing}")
            continue
        for part, text in [("system_prompt", spec.system_prompt), ("initial_message", spec.initial_message),
                           *[(f"follow_up {i + 1}", t) for i, t in enumerate(spec.follow_ups)]]:
            undeclared = used_variables(text) - set(spec.required_variables)
            if undeclared:
                problems.append(f"{agent_type} {part}: uses undeclared {', '.join(sorted(undeclared))}")
            try:
                render(text, context, where=f"{agent_type} {part}")
            except MissingVariable as exc:
                problems.append(str(exc))
    return problems
