"""The staging checklist as data: every section and item of the seed, in its order and its words.

An item is automated (a check function named by `check`, see core.checklist.checks) or manual (ticked by a
person). `depends` names items that must be satisfied first (activation after table creation): until they are, the
item shows as blocked. `blocking` items decide go / no-go; the others (optional steps, business judgements) inform."""
from __future__ import annotations

from dataclasses import dataclass

from core.errors import UserInputError


@dataclass(frozen=True)
class Section:
    key: str
    part: str  # the seed's top-level heading
    title: str  # the seed's ### heading


@dataclass(frozen=True)
class Item:
    id: str
    section: str
    title: str
    check: str | None = None  # name of the check function; None: manual
    depends: tuple[str, ...] = ()
    blocking: bool = True
    hint: str = ""  # how to do or verify it (the seed's command, or what the check does)

    @property
    def automated(self) -> bool:
        return self.check is not None


PRE, STEPS, POST = "PRE-DEPLOYMENT REQUIREMENTS (MANDATORY)", "DEPLOYMENT STEPS", "POST-DEPLOYMENT VERIFICATION"
ROLLBACK, SUCCESS, RISKS = "ROLLBACK PROCEDURES", "SUCCESS CRITERIA", "KNOWN RISKS AND MITIGATIONS"
SECTIONS: tuple[Section, ...] = (
    Section("environment", PRE, "Environment Setup"),
    Section("database", PRE, "Database Migration"),
    Section("security", PRE, "Security Implementation"),
    Section("errors", PRE, "Error Handling Enhancement"),
    Section("code", STEPS, "Step 1: Code Deployment"),
    Section("db_setup", STEPS, "Step 2: Database Setup"),
    Section("activation", STEPS, "Step 3: Agent System Activation"),
    Section("integration", STEPS, "Step 4: Integration Testing"),
    Section("monitoring", STEPS, "Step 5: Monitoring Setup"),
    Section("immediate", POST, "Immediate Checks (0-30 minutes)"),
    Section("short_term", POST, "Short-term Validation (1-4 hours)"),
    Section("extended", POST, "Extended Validation (24-48 hours)"),
    Section("rollback", ROLLBACK, "Rollback Procedures"),
    Section("performance", SUCCESS, "Performance Benchmarks"),
    Section("functional", SUCCESS, "Functional Requirements"),
    Section("business", SUCCESS, "Business Requirements"),
    Section("risks", RISKS, "High-Priority Risks"),
    Section("medium_risks", RISKS, "Medium-Priority Risks"),
)

I = Item
ITEMS: tuple[Item, ...] = (
    I("env.database_url", "environment", "Staging database connection configured", "check_database_url"),
    I("env.agent_variables", "environment", "Agent system environment variables set", "check_agent_variables"),
    I("env.api_keys", "environment", "Staging API keys configured", "check_api_keys"),
    I("db.create_tables", "database", "Create agent tables in staging PostgreSQL", "check_migrations_at_head",
      hint="python -m core db setup --environment=staging"),
    I("db.verify_tables", "database", "Verify table creation", "check_agent_tables", ("db.create_tables",)),
    I("db.app_connection", "database", "Test database connection from application", "check_app_connection"),
    I("security.activate_auth", "security", "Agent API authentication added", "check_activate_auth"),
    I("security.client_access", "security", "Client data access controls", "check_client_access"),
    I("security.rate_limit", "security", "Rate limiting configured", "check_rate_limit"),
    I("errors.try_catch", "errors", "Agent operation try-catch blocks", "check_failures_recorded"),
    I("errors.db_retries", "errors", "Database operation retries", "check_db_retries"),
    I("errors.breakers", "errors", "External API circuit breakers", "check_breakers"),
    I("code.merge", "code", "Merge feature branch to staging", blocking=True,
      hint="git checkout staging && git merge feature/migrate-agents-to-root-v2-implementation && git push"),
    I("code.deploy", "code", "Deploy to staging environment", hint="via Render/Platform; then mark the release deployed"),
    I("code.status", "code", "Verify deployment status", "check_liveness"),
    I("db_setup.create", "db_setup", "Run agent table creation", "check_migrations_at_head",
      hint="python -m core db setup --environment=staging"),
    I("db_setup.test_data", "db_setup", "Populate test data", blocking=False,
      hint="optional: python -m core seed --test-data minimal"),
    I("db_setup.accessible", "db_setup", "Verify agent tables exist and are accessible", "check_tables_accessible",
      ("db_setup.create",)),
    I("activation.limited", "activation", "Activate agent system with limited scope", "check_limited_activation",
      ("db.verify_tables", "db_setup.accessible"), hint="python -m core activate --mode limited --shops 1 --reason …"),
    I("activation.status", "activation", "Verify agent status endpoints", "check_status_endpoint"),
    I("activation.templates", "activation", "Test agent template loading", "check_templates_load"),
    I("integration.real_data", "integration", "Test with real staging appointment data", "check_synthetic_conversation",
      ("activation.limited",)),
    I("integration.saved", "integration", "Verify agent conversations are saved to database", "check_conversations_saved",
      ("integration.real_data",)),
    I("integration.load", "integration", "Test agent performance with realistic load",
      hint="python -m bench worker_throughput; record the figures in the note"),
    I("integration.access", "integration", "Validate client data access controls", "check_client_access"),
    I("monitoring.sentry", "monitoring", "Configure Sentry for agent errors", "check_sentry"),
    I("monitoring.metrics", "monitoring", "Set up agent performance metrics", "check_metrics_recorded"),
    I("monitoring.alerting", "monitoring", "Configure alerting for failed conversations",
      "check_alerting_configured"),
    I("monitoring.test", "monitoring", "Test error reporting and alerting", "check_alerting",
      ("monitoring.sentry",)),
    I("immediate.starts", "immediate", "Application starts without errors", "check_liveness"),
    I("immediate.endpoints", "immediate", "Agent endpoints respond correctly", "check_readiness_endpoint"),
    I("immediate.db_stable", "immediate", "Database connections are stable", "check_connections_stable"),
    I("immediate.logs", "immediate", "No critical errors in logs", "check_logs"),
    I("short_term.processes", "short_term", "Agent system processes test conversations successfully",
      "check_short_term_processing"),
    I("short_term.response", "short_term", "Performance metrics show acceptable response times",
      "check_short_term_response"),
    I("short_term.resources", "short_term", "Memory and CPU usage within expected ranges", "check_resources"),
    I("short_term.pool", "short_term", "No database connection pool exhaustion", "check_connection_pool"),
    I("short_term.errors", "short_term", "Error rates below 1%", "check_short_term_errors"),
    I("extended.volume", "extended", "Agent system handles realistic conversation volume", "check_extended_volume",
      blocking=False),
    I("extended.leaks", "extended", "No memory leaks or resource accumulation", "check_memory_growth", blocking=False),
    I("extended.db_performance", "extended", "Database performance remains stable", "check_extended_db",
      blocking=False),
    I("extended.monitoring", "extended", "All monitoring and alerting systems functional",
      "check_alerting_configured",
      blocking=False),
    I("extended.access", "extended", "Client data access controls working correctly", "check_unauthorized_access",
      blocking=False),
    I("rollback.immediate", "rollback", "Immediate Rollback (< 5 minutes)", "check_kill_switch_dry_run"),
    I("rollback.full", "rollback", "Full Rollback (< 15 minutes)", "check_deploy_hook"),
    I("rollback.database", "rollback", "Database Rollback (if needed)", "check_backup_restorable"),
    I("performance.response", "performance", "Agent response time: < 2 seconds (p95)", "check_sc_response"),
    I("performance.db_query", "performance", "Database query time: < 100ms (p95)", "check_sc_db_query"),
    I("performance.error_rate", "performance", "Error rate: < 0.1%", "check_sc_error_rate"),
    I("performance.memory", "performance", "Memory usage: < 100MB additional", "check_sc_memory"),
    I("performance.cpu", "performance", "CPU usage: < 10% additional", "check_sc_cpu"),
    I("functional.saved", "functional", "Agent conversations save to database", "check_conversations_saved"),
    I("functional.access", "functional", "Client data access controls enforced", "check_client_access"),
    I("functional.cascading", "functional", "Error handling prevents cascading failures", "check_breakers"),
    I("functional.monitoring", "functional", "Monitoring captures all agent activities",
      hint="compare the Agent health page's counts with the conversations the trial created"),
    I("functional.impact", "functional", "Performance impact on main application < 5%", "check_main_app_impact"),
    I("business.responses", "business", "Agent responses are contextually appropriate", blocking=False,
      hint="review a sample of transcripts"),
    I("business.privacy", "business", "Client privacy and data security maintained", blocking=False),
    I("business.reliability", "business", "System reliability not compromised", blocking=False),
    I("business.rollback", "business", "Rollback capability verified and tested", blocking=False,
      depends=("rollback.immediate", "rollback.database")),
    I("risks.database", "risks", "Database Performance Impact", "check_trigger_query_time",
      hint="Rollback Trigger: Query response time > 200ms"),
    I("risks.memory", "risks", "Memory Usage Growth", "check_trigger_memory", hint="Rollback Trigger: Memory usage > 2GB"),
    I("risks.security", "risks", "Client Data Security", "check_unauthorized_access",
      hint="Rollback Trigger: Any unauthorized data access detected"),
    I("medium_risks.rate_limits", "medium_risks", "External API Rate Limits", "check_breakers", blocking=False),
    I("medium_risks.quality", "medium_risks", "Agent Response Quality", blocking=False,
      hint="monitor conversation quality; disable problematic agent types"),
)
BY_ID = {item.id: item for item in ITEMS}
SECTION_BY_KEY = {s.key: s for s in SECTIONS}


def get_item(item_id: str) -> Item:
    """The item ITEM_ID, or one sentence naming the known ones."""
    if item_id not in BY_ID:
        raise UserInputError(f"Unknown checklist item {item_id!r}; see `python -m core check list` for the ids.")
    return BY_ID[item_id]


def items_of(section: str | None = None, item_id: str | None = None) -> list[Item]:
    """The items a selection means: one item, one section, or all (bad names: one sentence)."""
    if item_id is not None:
        return [get_item(item_id)]
    if section is None:
        return list(ITEMS)
    if section not in SECTION_BY_KEY:
        raise UserInputError(f"Unknown checklist section {section!r}; known sections: {', '.join(SECTION_BY_KEY)}.")
    return [i for i in ITEMS if i.section == section]


def runnable(section: str | None = None, item_id: str | None = None) -> list[Item]:
    """The items a run of checks means; a manual item asked for by id is bad input (it is ticked, not run)."""
    items = items_of(section, item_id)
    if item_id is not None and not items[0].automated:
        raise UserInputError(f"{item_id} is a manual item: tick it (with a note) or waive it (with a reason).")
    return items
