"""What an audited action is called in a refusal: 'may not start a checklist run', not 'may not checklist start'."""
from __future__ import annotations

PHRASES: dict[str, str] = {
    "agent_type.disable": "disable an agent type",
    "agent_type.enable": "enable an agent type",
    "alert.acknowledge": "acknowledge alerts",
    "alert.mitigate": "act on an alert",
    "alert.test_notification": "send test notifications",
    "alert_contact.delete": "remove contact points",
    "alert_contact.save": "save contact points",
    "alert_rule.delete": "remove alert rules",
    "alert_rule.install_defaults": "install the default alert rules",
    "alert_rule.save": "save alert rules",
    "alert_silence.create": "silence alerts",
    "alert_silence.expire": "end a silence",
    "checklist.deployed": "mark a release deployed",
    "checklist.run": "run checklist items",
    "checklist.sign_off": "sign a checklist run off",
    "checklist.start": "start a checklist run",
    "checklist.tick": "tick checklist items",
    "checklist.waive": "waive checklist items",
    "client.reveal": "reveal client details",
    "conversations.enqueue": "enqueue conversations",
    "db.cleanup": "clean up the database",
    "db.restore": "restore the database",
    "db.setup": "set up the database",
    "instance.activate": "activate an agent instance",
    "instance.pause": "pause an agent instance",
    "kill_switch.engage": "turn the agent system off",
    "retention.drop": "drop old partitions",
    "review.escalated": "escalate a conversation",
    "review.fill": "fill the review queues",
    "review.judge": "run the review judge",
    "review.next": "take conversations from a review queue",
    "review.queue": "change a review queue",
    "review.release": "release a review item",
    "review.resolved": "resolve an escalated conversation",
    "review.submit": "review conversations",
    "rollback.database.approve": "approve a database rollback",
    "rollback.database.request": "request a database rollback",
    "rollback.database.run": "run a database rollback",
    "rollback.database.withdraw": "withdraw a database rollback",
    "rollback.full.start": "start a full rollback",
    "rollback.immediate.check": "follow an immediate rollback",
    "rollback.immediate.start": "start an immediate rollback",
    "rollback.list": "list rollbacks",
    "rollups.rebuild": "rebuild the rollups",
    "seed": "seed the database",
    "token.create": "create API tokens",
    "token.list": "list API tokens",
    "token.revoke": "revoke API tokens",
    "user.add": "add users",
    "user.disable": "disable users",
    "user.enable": "enable users",
    "user.set_password": "set passwords",
    "user.set_role": "change roles",
}


def doing(action: str) -> str:
    """The verb phrase for ACTION ('checklist.start' → 'start a checklist run'); one not listed reads verb first."""
    if action in PHRASES:
        return PHRASES[action]
    prefix, _, verb = action.rpartition(".")
    if prefix == "activation":
        return f"set the activation mode to {verb}"
    return " ".join([verb, *reversed(prefix.split("."))] if prefix else [verb]).replace("_", " ")
