"""Typed settings: every variable of the staging checklist, read once through get_settings()."""
from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

Environment = Literal["development", "staging", "production"]
LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]

EXAMPLE_COOKIE_KEY = "change-me-example-cookie-key"
MIN_AUDIT_KEY = 32
DEFAULT_DATABASE_URL = "sqlite:///var/agentops.db"


class SettingsError(Exception):
    """A setting has a value that cannot be used; the message is one line for a person."""


class Settings(BaseSettings):
    """The agent system's configuration; field names are the environment variables, lower-cased."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", case_sensitive=False)

    environment: Environment = "development"
    database_url: str = DEFAULT_DATABASE_URL
    database_read_url: str | None = None
    # A replica that does not answer within this many seconds is skipped: reads go to the primary (libpq's minimum
    # is 2), and it is not tried again for DATABASE_READ_RETRY_SECONDS, so a fallback never hangs a page.
    database_read_connect_timeout_seconds: int = Field(2, ge=2, le=30)
    database_read_retry_seconds: float = Field(5.0, ge=0, le=300)

    agent_system_enabled: bool = True
    agent_log_level: LogLevel = "INFO"
    agent_max_concurrent: int = Field(10, ge=1, le=1000)
    agent_retry_attempts: int = Field(3, ge=1, le=20)
    agent_timeout_seconds: float = Field(30.0, gt=0, le=600)
    agent_retry_base_seconds: float = Field(0.5, ge=0)
    agent_retry_max_seconds: float = Field(8.0, ge=0)
    agent_lease_seconds: float = Field(60.0, gt=0)
    agent_heartbeat_seconds: float = Field(2.0, gt=0)
    agent_settings_ttl_seconds: float = Field(0.5, ge=0, le=1.0)
    # The kill switch is pushed (PostgreSQL LISTEN/NOTIFY); while the listening connection is up the settings are
    # re-read only every RECHECK seconds, and polled every TTL seconds whenever it is down (and on SQLite).
    agent_settings_push: bool = True
    agent_settings_recheck_seconds: float = Field(30.0, gt=0, le=3600)
    agent_settings_listen_retry_seconds: float = Field(1.0, gt=0, le=300)
    agent_poll_seconds: float = Field(0.2, gt=0)

    openai_api_key: SecretStr | None = None
    openai_base_url: str | None = None
    openai_model: str = "gpt-4o-mini"
    stripe_secret_key: SecretStr | None = None
    sendgrid_api_key: SecretStr | None = None
    sentry_dsn: SecretStr | None = None

    # Circuit breaker and retries: the checklist's numbers.
    breaker_failure_threshold: int = Field(5, ge=1)
    breaker_reset_seconds: float = Field(30.0, gt=0)
    db_retry_attempts: int = Field(3, ge=1)
    db_retry_delay_seconds: float = Field(1.0, ge=0)
    db_retry_backoff: float = Field(2.0, ge=1)

    # Success criteria (checklist "SUCCESS CRITERIA").
    sc_response_p95_ms: float = 2000.0
    sc_db_query_p95_ms: float = 100.0
    sc_error_rate: float = 0.001
    sc_memory_mb: float = 100.0
    sc_cpu_percent: float = 10.0
    # Rollback triggers (checklist "KNOWN RISKS").
    rb_query_ms: float = 200.0
    rb_memory_mb: float = 2048.0
    rb_unauthorized_max: int = 0

    # The live checklist (`python -m core check`, the Checklist page): its own numbers, once.
    checklist_stale_hours: float = Field(24.0, gt=0)  # a result older than this is shown as stale
    checklist_item_timeout_seconds: float = Field(20.0, gt=0)  # a check running longer fails with that reason
    checklist_synthetic_timeout_seconds: float = Field(30.0, gt=0)  # the synthetic conversation's own limit
    checklist_api_token: SecretStr | None = None  # a read-only user's API token: /status 200, /activate 403
    checklist_test_shop_id: int | None = None  # the synthetic conversation's shop (default: the lowest shop id)
    checklist_log_file: str | None = None  # the application log the "no critical errors" item scans
    checklist_log_pattern: str = r"CRITICAL|ERROR|Traceback"
    checklist_host_probe: str | None = None  # main application probe: an http(s) URL or a SQL statement
    checklist_host_probe_samples: int = Field(5, ge=1, le=100)
    checklist_min_volume: int = Field(100, ge=0)  # conversations the extended window must have processed
    sc_main_impact_percent: float = 5.0  # "Performance impact on main application < 5%"
    sc_window_error_rate: float = 0.01  # the post-deployment windows' "Error rates below 1%"
    # Emergency contacts (the checklist's last section), shown on the Checklist page and in its report.
    contact_platform_engineer: str = "[Contact Info]"
    contact_database_admin: str = "[Contact Info]"
    contact_security_team: str = "[Contact Info]"
    contact_product_owner: str = "[Contact Info]"
    contact_customer_success: str = "[Contact Info]"
    # Alerts (issue 14): the evaluator's cadence, the seed's remaining alert numbers, and the contact points a
    # deployment may give in settings (they appear as contact points `webhook` and `email`).
    alert_eval_seconds: float = Field(15.0, gt=0)
    alert_failed_conversations: int = Field(10, ge=1)  # "N failed conversations in M minutes"
    alert_failed_window_minutes: int = Field(5, ge=1)
    alert_heartbeat_seconds: float = Field(60.0, gt=0)  # no worker heartbeat for this long
    alert_probe_failures: int = Field(2, ge=1)  # a health endpoint down for this many probes in a row
    alert_breaker_open_seconds: float = Field(60.0, ge=0)  # a breaker open for longer than this
    alert_opt_out_margin_pp: float = Field(0.0, ge=0)  # opt-out rate above its 7-day baseline by this many points
    alert_repeat_minutes: float = Field(240.0, gt=0)  # a firing group is notified again after this long
    alert_retry_attempts: int = Field(3, ge=1, le=10)
    alert_retry_base_seconds: float = Field(0.5, ge=0)
    alert_timeout_seconds: float = Field(5.0, gt=0, le=60)
    alert_limited_percent: int = Field(10, ge=0, le=100)  # the "go limited" mitigation's share of shops
    alert_webhook_url: SecretStr | None = None  # Slack-compatible incoming webhook; its URL is a secret
    alert_email_to: str | None = None
    sendgrid_base_url: str = "https://api.sendgrid.com"
    alert_email_from: str = "alerts@bookedbarber.invalid"
    auto_rollback: bool = False  # a firing rollback trigger runs the immediate rollback itself
    # Conversation review (issue 12): the score schema, queue defaults, the judge and break-glass reveals.
    review_rating_min: int = Field(1, ge=0)
    review_rating_max: int = Field(5, ge=1)
    review_flags: str = "wrong_info,tone,hallucination,privacy,opt_out_ignored,off_brand,other"
    review_complaint_keywords: str = "complaint,refund,rude,wrong,stop texting,unsubscribe,angry,terrible"
    review_sample_percent: float = Field(5.0, ge=0, le=100)  # stable sample per agent type per day
    review_fill_days: int = Field(2, ge=1, le=365)  # how far back a fill looks for finished conversations
    review_fill_seconds: float = Field(60.0, ge=0)  # how often each worker fills the queues (0: only the CLI)
    review_lease_seconds: float = Field(900.0, gt=0)  # a reviewer's hold on a queue item
    review_reveal_minutes: float = Field(10.0, gt=0, le=240)  # how long a break-glass reveal lasts
    review_page_size: int = Field(50, ge=1, le=500)
    judge_model: str = "gpt-4o-mini"
    judge_sample_percent: float = Field(100.0, ge=0, le=100)  # of queued conversations the judge pre-scores

    cookie_key: SecretStr = SecretStr(EXAMPLE_COOKIE_KEY)
    # The audit chain's HMAC key lives outside the database. Development generates one into AUDIT_KEY_FILE.
    audit_key: SecretStr | None = None
    audit_previous_keys: SecretStr | None = None  # comma-separated, verification only (after a rotation)
    audit_key_file: str = "var/audit.key"
    audit_anchor_path: str = "var/audit-anchors.jsonl"  # append-only checkpoints of the chain's head
    agentops_token: SecretStr | None = None  # the CLI's proof of --actor outside development (API or session token)
    bcrypt_rounds: int = Field(12, ge=4, le=16)
    session_hours: float = Field(12.0, gt=0)
    # How often Agent health's live panels (figures, workers, endpoints) read again while the page is open.
    health_refresh_seconds: int = Field(15, ge=2, le=3600)
    login_max_failures: int = 5
    login_window_minutes: int = 15

    api_rate_limit_per_minute: int = Field(60, ge=1)
    api_status_cache_seconds: float = Field(1.0, ge=0)
    api_token_cache_seconds: float = Field(1.0, ge=0, le=5)
    api_token_cache_size: int = Field(10_000, ge=10)  # bounded: random tokens cannot grow the process
    # Health and readiness are for probes and load balancers: a limit of their own, far above any probe's rate.
    api_health_rate_limit_per_minute: int = Field(600, ge=1)
    api_docs: bool | None = None  # /docs and /openapi.json; default: public in development only
    metrics_token: SecretStr | None = None  # bearer token for /metrics; outside development /metrics needs it
    redis_url: str | None = None
    trusted_proxies: str = ""
    api_base_url: str = "http://127.0.0.1:8000"
    health_probe_urls: str = ""
    deploy_hook_url: str | None = None
    deploy_hook_timeout_seconds: float = Field(120.0, gt=0)
    release_id: str = "unknown"
    deploy_hook_command: str | None = None
    backup_dir: str = "var/backups"

    @field_validator("database_url", "database_read_url")
    @classmethod
    def _parse_url(cls, value: str | None) -> str | None:
        if value is None:
            return value
        # Imported here: settings are read by commands that never touch a database (sqlalchemy is ~0.1 s to load).
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError

        try:
            parsed = make_url(value)
        except (ArgumentError, ValueError):
            raise ValueError("a database URL such as postgresql://user:pass@host:5432/db or sqlite:///var/agentops.db")
        backend, driver = parsed.get_backend_name(), parsed.drivername.partition("+")[2]
        if backend == "postgres":  # Heroku's and libpq's spelling: the same database (core.db.normalize_url)
            backend, value = "postgresql", "postgresql" + value[len("postgres"):]
        if backend not in ("postgresql", "sqlite"):  # the only drivers installed, and the only ones tested
            raise ValueError("a PostgreSQL (postgresql://) or SQLite (sqlite:///path) URL")
        # Another driver (postgresql+asyncpg) is not installed; SQLite takes a path only. Either failed later as a
        # traceback, and SQLAlchemy's message about a SQLite URL repeats it whole, token and all.
        if backend == "postgresql" and driver not in ("", "psycopg2"):
            raise ValueError("a PostgreSQL URL for the installed driver: postgresql:// or postgresql+psycopg2://")
        if backend == "sqlite" and (driver not in ("", "pysqlite") or parsed.username or parsed.password
                                    or parsed.host or parsed.port):
            raise ValueError("a SQLite URL of a file, sqlite:///path, with no user, password or host")
        return value

    @field_validator("backup_dir")
    @classmethod
    def _backup_folder(cls, value: str) -> str:
        if not value.strip():  # empty wrote the backups into whatever folder the command ran from
            raise ValueError("a folder for the backups, such as var/backups")
        return value

    @field_validator("sentry_dsn")
    @classmethod
    def _sentry_dsn(cls, value: SecretStr | None) -> SecretStr | None:
        """Checked here, once: a DSN Sentry cannot parse ended the worker, the API and the evaluator in a traceback."""
        if value is None or not value.get_secret_value().strip():
            return None
        from sentry_sdk.utils import BadDsn, Dsn

        try:
            Dsn(value.get_secret_value().strip())
        except BadDsn:
            raise ValueError("a Sentry DSN such as https://KEY@o0.ingest.sentry.io/PROJECT_ID") from None
        return value

    @field_validator("environment", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("agent_log_level", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.strip().upper() if isinstance(value, str) else value

    @field_validator("audit_key")
    @classmethod
    def _strong_key(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value().strip()) < MIN_AUDIT_KEY:
            raise ValueError(f"at least {MIN_AUDIT_KEY} characters, e.g. from `openssl rand -hex 32`")
        return value

    @model_validator(mode="after")
    def _no_placeholders_outside_development(self) -> Settings:
        if self.environment == "development":
            return self
        problems = []
        if self.cookie_key.get_secret_value() == EXAMPLE_COOKIE_KEY:
            problems.append("COOKIE_KEY: the example key is refused outside development; set a random secret")
        if self.audit_key is None:
            problems.append("AUDIT_KEY: required outside development (the audit chain's HMAC key, kept outside the "
                            "database); set one from `openssl rand -hex 32`")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def emergency_contacts(self) -> dict[str, str]:
        """The checklist's emergency contacts by role, as configured."""
        return {"Platform Engineer": self.contact_platform_engineer, "Database Admin": self.contact_database_admin,
                "Security Team": self.contact_security_team, "Product Owner": self.contact_product_owner,
                "Customer Success": self.contact_customer_success}
    def review_flag_names(self) -> tuple[str, ...]:
        """The review schema's flags, in order."""
        return tuple(f.strip() for f in self.review_flags.split(",") if f.strip())

    def complaint_keywords(self) -> tuple[str, ...]:
        """Words that put a conversation into the complaints queue."""
        return tuple(k.strip().lower() for k in self.review_complaint_keywords.split(",") if k.strip())

    def local_file(self, name: str) -> Path:
        """The file setting NAME (AUDIT_KEY_FILE, AUDIT_ANCHOR_PATH) belongs to this database: left at its default,
        it sits beside a SQLite database file, so a command run from another folder finds the same development key
        and anchors (it made a key of its own there, and reported the chain as broken)."""
        value, sqlite = Path(getattr(self, name)), re.match(r"sqlite(\+\w+)?:///([^?]+)", self.database_url)
        if name in self.model_fields_set or value.is_absolute() or sqlite is None or sqlite[2] == ":memory:":
            return value
        return Path(sqlite[2]).parent / value.name

    def docs_served(self) -> bool:
        """Whether the API serves /docs, /redoc and /openapi.json: API_DOCS, else in development only."""
        return self.api_docs if self.api_docs is not None else self.environment == "development"

    def probe_urls(self) -> list[str]:
        """The health endpoints the console probes, by default the project's own API."""
        urls = [u.strip() for u in self.health_probe_urls.split(",") if u.strip()]
        return urls or [f"{self.api_base_url}/health", f"{self.api_base_url}/api/v2/agents/health"]

    def _audit_key_view(self, name: str, value: SecretStr | None) -> str:
        """An audit key is shown by its id only (a hash of it), never by any of its characters."""
        from core.audit_keys import key_id

        if value is not None:
            return "key id " + ", ".join(key_id(k) for k in value.get_secret_value().split(",") if k.strip())
        dev_key = self.local_file("audit_key_file")
        if name == "audit_key" and self.environment == "development":
            if dev_key.is_file():
                return f"(development key in {dev_key}, key id {key_id(dev_key.read_text())})"
            return f"(development key, generated into {dev_key} on first use)"
        return "(not set)"

    def public_view(self) -> dict[str, Any]:
        """Every setting with secrets masked, for display."""
        out: dict[str, Any] = {}
        for name in type(self).model_fields:
            value = getattr(self, name)
            if name in ("audit_key", "audit_previous_keys"):
                value = self._audit_key_view(name, value)
            elif isinstance(value, SecretStr):
                value = mask_secret(value.get_secret_value())
            elif name.endswith("url") and isinstance(value, str):
                value = mask_url(value)
            elif name.endswith("urls") and isinstance(value, str):
                value = ",".join(mask_url(u.strip()) for u in value.split(",") if u.strip())
            elif name.endswith("command") and isinstance(value, str):
                value = mask_command(value)
            elif isinstance(value, str):  # a URL in any other setting (a probe: a URL or a SQL statement)
                value = mask_secrets_in_text(value)
            out[name.upper()] = value
        return out


def mask_secret(value: str | None) -> str:
    """Show a secret as its prefix and last four characters, e.g. sk-…1234."""
    if not value:
        return "(not set)"
    if len(value) <= 8:
        return "…"
    prefix = value.split("-")[0] + "-" if "-" in value[:6] else value[:3]
    return f"{prefix}…{value[-4:]}"


MASK = "***"
_URL_IN_TEXT = re.compile(r"[a-zA-Z][a-zA-Z0-9+.-]*://[^\s'\"<>]+")
_SECRET_FLAG = re.compile(r"(token|secret|password|passwd|pass|key|auth|credential|signature|sig)", re.IGNORECASE)


def mask_url(url: str | None) -> str:
    """URL without its secrets: userinfo password (or a bare token as user name) and every query value.

    Works on malformed URLs too (a bad port, no scheme): it only splits text, never validates it."""
    if not url:
        return "(not set)"
    scheme, sep, rest = url.partition("://")
    prefix = f"{scheme}://" if sep else ""
    if not sep:  # "postgres//user:pw@db/x", "http:/user:pw@host": the userinfo starts after the last "/" before "@"
        prefix, rest = _before_userinfo(url)
    cut = min([i for i in (rest.find("/"), rest.find("?"), rest.find("#")) if i >= 0] or [len(rest)])
    netloc, tail = rest[:cut], rest[cut:]
    if "@" in netloc:
        userinfo, _, host = netloc.rpartition("@")
        user, colon, _password = userinfo.partition(":")
        # A user name without a password is often the secret itself (https://TOKEN@host).
        netloc = f"{user}:{MASK}@{host}" if colon else f"{MASK}@{host}"
    tail, _, fragment = tail.partition("#")
    path, qmark, query = tail.partition("?")
    if qmark:
        pairs = [p.partition("=") for p in query.split("&") if p]
        path += "?" + "&".join(f"{k}={MASK}" if eq else k for k, eq, _v in pairs)
    return prefix + netloc + path + (f"#{MASK}" if fragment else "")


def _before_userinfo(url: str) -> tuple[str, str]:
    """A URL without "://" split where its userinfo would start (at the last "/" before the "@"), if it has one."""
    head = min([i for i in (url.find("?"), url.find("#")) if i >= 0] or [len(url)])
    at = url.rfind("@", 0, head)
    if at < 0:
        return "", url
    start = url.rfind("/", 0, at) + 1
    return url[:start], url[start:]


def mask_urls_in_text(text: str | None) -> str:
    """TEXT with every URL in it masked (hook descriptions, command output, error messages)."""
    return _URL_IN_TEXT.sub(lambda m: mask_url(m.group(0)), text or "")


# Secrets inside free text (log lines, command lines): NAME=value for a secret-looking name, an Authorization
# header's credentials, and the token shapes this project and its providers issue.
_SECRET_ASSIGNMENT = re.compile(r"\b([\w.-]*(?:token|secret|password|passwd|key|credential|signature)[\w.-]*=)"
                                r"(\"[^\"]*\"|'[^']*'|[^\s,;&]+)", re.IGNORECASE)
_CREDENTIALS = re.compile(r"\b(Bearer|Basic|Token)\s+[^\s,;'\"]+", re.IGNORECASE)
_TOKEN_SHAPES = re.compile(r"\b(bbat_|sk-|SG\.)[A-Za-z0-9_.\-]{6,}")
_USER_OPTIONS = ("-u", "--user", "--proxy-user")  # curl's user:password


def mask_secrets_in_text(text: str | None) -> str:
    """TEXT with URLs masked and secret assignments, Authorization credentials and token shapes replaced."""
    text = _SECRET_ASSIGNMENT.sub(lambda m: m.group(1) + MASK, mask_urls_in_text(text))
    text = _CREDENTIALS.sub(lambda m: f"{m.group(1)} {MASK}", text)
    return _TOKEN_SHAPES.sub(lambda m: m.group(1) + MASK, text)


def mask_secrets_in(value: Any) -> Any:
    """VALUE (text, or lists and dicts of it, as evidence is) with mask_secrets_in_text applied to every string."""
    if isinstance(value, str):
        return mask_secrets_in_text(value)
    if isinstance(value, dict):
        return {k: mask_secrets_in(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [mask_secrets_in(v) for v in value]
    return value


def mask_command(command: str | None) -> str:
    """A command line with the values of secret-looking options (--token X, --password=Y, KEY=Z, curl's -u
    user:password, an Authorization header) and URLs masked."""
    if not command:
        return "(not set)"
    words, out, hide_next, user_next = mask_secrets_in_text(command).split(), [], False, False
    for word in words:
        name, eq, value = word.partition("=")
        if hide_next:
            out.append(MASK)
        elif user_next or (eq and name in _USER_OPTIONS):
            who = value if eq else word
            masked = f"{who.partition(':')[0]}:{MASK}" if ":" in who else who
            out.append(f"{name}={masked}" if eq else masked)
        elif eq and _SECRET_FLAG.search(name):
            out.append(f"{name}={MASK}")
        else:
            out.append(word)
        user_next = not eq and word in _USER_OPTIONS
        hide_next = not eq and not user_next and word.startswith("-") and bool(_SECRET_FLAG.search(word))
    return " ".join(out)


def _is_secret_field(name: str) -> bool:
    field = Settings.model_fields.get(name.lower())
    secret_type = field is not None and "SecretStr" in str(field.annotation)
    return secret_type or any(w in name for w in ("KEY", "DSN", "TOKEN", "SECRET", "PASSWORD"))


def _shown_input(name: str, got: Any) -> str:
    """What a settings error may echo of the bad value: never a secret, URLs only masked."""
    if got is None or _is_secret_field(name):
        return ""
    if isinstance(got, str) and (name.endswith("_URL") or name.endswith("_URLS") or "://" in got or "@" in got):
        got = ",".join(mask_url(u) for u in got.split(",")) if name.endswith("_URLS") else mask_url(got)
    elif name.endswith("_COMMAND"):
        got = mask_command(str(got))
    return f" (got {got!r})"


def describe_error(exc: ValidationError) -> str:
    """One line naming the variable and what it expects (the value is echoed only when it holds no secret)."""
    parts = []
    for err in exc.errors():
        name = ".".join(str(p) for p in err.get("loc", ())).upper() or "SETTINGS"
        msg = err.get("msg", "invalid value").removeprefix("Value error, ")
        if re.match(r"^[A-Z_]+: ", msg):  # a whole-model check that already names its variable(s)
            parts.append(msg)
            continue
        if msg.startswith("Input should be "):
            msg = msg.removeprefix("Input should be ").split(", unable")[0]
        parts.append(f"{name}: expected {msg}{_shown_input(name, err.get('input'))}")
    return "; ".join(parts)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process's settings, read from the environment and .env once."""
    try:
        return Settings()
    except ValidationError as exc:
        raise SettingsError(describe_error(exc)) from None


def reset_settings() -> None:
    """Forget cached settings (tests and the CLI's --env handling)."""
    get_settings.cache_clear()
