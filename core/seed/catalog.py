"""The agent catalogue: one agent per type with its shipped template."""
from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.models import AGENT_TYPES, Agent, AgentTemplate
from core.templates import load_templates


def ensure_catalog(session: Session) -> dict[str, int]:
    """Create any missing agent and its template; returns agent id by type (caller commits)."""
    specs = load_templates()
    existing = {a.agent_type: a for a in session.scalars(select(Agent))}
    for agent_type in AGENT_TYPES:
        if agent_type in existing:
            continue
        spec = specs[agent_type]
        agent = Agent(agent_type=agent_type, name=spec.name, description=spec.description)
        session.add(agent)
        session.flush()
        session.add(AgentTemplate(agent_id=agent.id, version=1, channel=spec.channel, system_prompt=spec.system_prompt,
                                  initial_message=spec.initial_message, follow_ups=list(spec.follow_ups),
                                  required_variables=list(spec.required_variables)))
        existing[agent_type] = agent
    session.flush()
    return {t: a.id for t, a in existing.items()}
