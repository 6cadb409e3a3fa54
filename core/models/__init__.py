"""The data model. Agent tables are named agent… so the checklist's information_schema query finds them."""
import functools as _functools  # underscored: __all__ below lists every public name

from core.models.agents import AGENT_TYPES, INSTANCE_STATUSES, Agent, AgentInstance, AgentTemplate
from core.models.alerts import (
    ALERT_STATES, CONTACT_KINDS, NO_DATA_MODES, SEVERITIES, AlertContact, AlertDelivery, AlertGroup, AlertLease,
    AlertRule, AlertSilence, AlertState, AlertTransition,
)
from core.models.base import Base, utcnow
from core.models.checklist import RESULT_KINDS, ChecklistResult, ChecklistRun
from core.models.conversations import CHANNELS, Conversation, Message
from core.models.host import Appointment, Barber, Client, Enterprise, Shop
from core.models.metrics import (
    AgentDbTiming, AgentMetric, AgentMetricDaily, AgentMetricDailyByShop, AgentMetricDailyByType,
    AgentMetricHourlyByShop, AgentMetricHourlyByShopType,
    AgentMetricHourlyByType, AgentResponseBucket, AgentResponseDailyByShop, AgentResponseDailyByShopType,
    AgentResponseDailyByType,
    AgentResponseHourlyByShop, AgentResponseHourlyByShopType, AgentResponseHourlyByType,
)
from core.models.ops import (
    ACTIVATION_MODES, AgentSettings, AuditHead, AuditRecord, HealthProbe, RollbackRun, WorkerHeartbeat,
)
from core.models.review import (
    REVIEW_STATES, JudgeScore, ReviewQueue, ReviewQueueItem, ReviewRecord, ReviewState, RevealGrant,
)
from core.models.users import ApiToken, ConsoleSession, LoginAttempt, User, UserShop

# Dropped by `db cleanup`. The audit log stays: the record of the cleanup must outlive it.
# So do the rollback runs: a database rollback records its own run.
# So does the checklist: its runs are the record of the deployment the rollback undoes.
AGENT_TABLES_KEPT_ON_CLEANUP = ("agent_audit_log", "agent_audit_head", "agent_rollback_runs", "agent_checklist_runs",
                                "agent_checklist_results")


@_functools.cache
def agent_tables() -> tuple[str, ...]:
    """Names of the agent tables the cleanup drops, parents first.

    Cached: sorting the metadata's tables costs about 0.3 ms, and the backup reader asked once per row (a restore
    of 200k conversations spent minutes here)."""
    return tuple(t.name for t in Base.metadata.sorted_tables
                 if (t.name.startswith("agent") or t.name == "agents") and t.name not in AGENT_TABLES_KEPT_ON_CLEANUP)


__all__ = [name for name in dir() if not name.startswith("_")]
