"""The agent catalogue: one agent per type with its shipped template."""
from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.models import AGENT_TYPES, Agent, AgentTemplate
from core.templates import TemplateSpec, load_templates


def ensure_catalog(session: Session) -> dict[str, int]:
    """Create any missing agent; store the shipped template as a new version where it differs from the newest one
    (a fix to a template reaches a database that already has agents). Returns agent id by type (caller commits)."""
    specs = load_templates()
    existing = {a.agent_type: a for a in session.scalars(select(Agent))}
    for agent_type in AGENT_TYPES:
        spec = specs[agent_type]
        agent = existing.get(agent_type)
        if agent is None:
            agent = existing[agent_type] = Agent(agent_type=agent_type, name=spec.name, description=spec.description)
            session.add(agent)
            session.flush()
        newest = session.scalars(select(AgentTemplate).where(AgentTemplate.agent_id == agent.id)
                                 .order_by(AgentTemplate.version.desc()).limit(1)).first()
        if newest is None or _text_of(newest) != _text_of(spec):
            session.add(AgentTemplate(agent_id=agent.id, version=(newest.version + 1) if newest else 1,
                                      channel=spec.channel, system_prompt=spec.system_prompt,
                                      initial_message=spec.initial_message, follow_ups=list(spec.follow_ups),
                                      required_variables=list(spec.required_variables)))
    session.flush()
    return {t: a.id for t, a in existing.items()}


def _text_of(template: AgentTemplate | TemplateSpec) -> tuple:
    return (template.channel, template.system_prompt, template.initial_message, list(template.follow_ups),
            list(template.required_variables))


def stored_templates(session: Session) -> dict[str, TemplateSpec]:
    """The newest stored template of each agent type: what the worker renders (not the shipped file)."""
    rows = session.execute(select(Agent, AgentTemplate).join(AgentTemplate, AgentTemplate.agent_id == Agent.id)
                           .order_by(AgentTemplate.version)).all()
    return {agent.agent_type: TemplateSpec(  # the newest version wins
        agent_type=agent.agent_type, name=agent.name, description=agent.description or "", channel=t.channel,
        system_prompt=t.system_prompt, initial_message=t.initial_message, follow_ups=tuple(t.follow_ups or ()),
        required_variables=tuple(t.required_variables or ())) for agent, t in rows}
