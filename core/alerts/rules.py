"""Rules as data: the default set from the checklist, their validation, label sets and silence matchers."""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from core.alerts.metrics import METRICS, Scope
from core.config import Settings, get_settings
from core.errors import UserInputError
from core.inputs import finite_number, short_text, whole_number
from core.models import AGENT_TYPES, NO_DATA_MODES, SEVERITIES, AlertRule

OPS = {">": lambda v, t: v > t, ">=": lambda v, t: v >= t, "<": lambda v, t: v < t, "<=": lambda v, t: v <= t}
SEVERITY_RANK = {s: i for i, s in enumerate(SEVERITIES)}
MAX_WINDOW_MINUTES = 90 * 24 * 60  # the hourly rollups and raw rows a window reads are kept about that long
MAX_PERIOD_SECONDS = 7 * 24 * 3600  # pending and keep-firing periods
_KEY = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")
_MATCHER = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*(.*?)\s*$")

def _rule(**spec: Any) -> dict[str, Any]:
    return spec


# The checklist's success criteria and rollback triggers, and the further alerts. Thresholds (and the
# windows and pending periods that are checklist numbers) name their setting, so the numbers live in config once.
DEFAULT_RULES: list[dict[str, Any]] = [
    _rule(key="agent_response_p95", name="Agent response time p95 above the success criterion",
         metric="response_p95_ms", threshold_setting="sc_response_p95_ms", severity="warning", pending_seconds=120),
    _rule(key="db_query_p95", name="Database query p95 above the success criterion", metric="db_query_p95_ms",
         threshold_setting="sc_db_query_p95_ms", severity="warning", pending_seconds=120),
    _rule(key="db_query_p95_trigger", name="Rollback trigger: database query p95", metric="db_query_p95_ms",
         threshold_setting="rb_query_ms", severity="critical", pending_seconds=120, rollback_trigger=True),
    _rule(key="error_rate", name="Error rate above the success criterion", metric="error_rate",
         threshold_setting="sc_error_rate", severity="warning", pending_seconds=60),
    _rule(key="error_rate_critical", name="Error rate critical", metric="error_rate",
         threshold_setting="sc_window_error_rate", severity="critical", pending_seconds=60),
    _rule(key="worker_memory_growth", name="Worker memory growth above the success criterion",
         metric="worker_memory_growth_mb", threshold_setting="sc_memory_mb", severity="warning", window_minutes=5),
    _rule(key="worker_memory_trigger", name="Rollback trigger: worker memory", metric="worker_memory_mb",
         threshold_setting="rb_memory_mb", severity="critical", rollback_trigger=True, window_minutes=5),
    _rule(key="worker_cpu", name="Worker CPU above the success criterion", metric="worker_cpu_percent",
         threshold_setting="sc_cpu_percent", severity="warning", pending_seconds=120, window_minutes=5),
    _rule(key="unauthorized_access", name="Rollback trigger: unauthorized client-data access",
         metric="unauthorized_access", threshold_setting="rb_unauthorized_max", severity="critical",
         rollback_trigger=True, window_minutes=24 * 60),
    _rule(key="failed_conversations", name="Failed conversations", metric="failed_conversations", op=">=",
         threshold_setting="alert_failed_conversations", window_setting="alert_failed_window_minutes",
         severity="critical"),
    _rule(key="worker_heartbeat", name="No worker heartbeat", metric="worker_heartbeat_age_s",
         threshold_setting="alert_heartbeat_seconds", severity="critical", window_minutes=5),
    _rule(key="health_probe_down", name="Health endpoint down", metric="probe_failures_in_row", op=">=",
         threshold_setting="alert_probe_failures", severity="critical"),
    _rule(key="breaker_open", name="Model breaker open", metric="breaker_open_workers", threshold=0,
         pending_setting="alert_breaker_open_seconds", severity="warning", window_minutes=5),
    _rule(key="opt_out_rate", name="Opt-out rate above its baseline", metric="opt_out_over_baseline_pp",
         threshold_setting="alert_opt_out_margin_pp", severity="warning", pending_seconds=300),
]


def _number_setting(name: str, what: str) -> None:
    field = Settings.model_fields.get(name or "")
    if field is None or field.annotation not in (int, float):
        raise UserInputError(f"The {what} setting {name!r} is not a numeric setting (e.g. rb_query_ms).")


def _non_negative(value: Any, what: str, high: int) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise UserInputError(f"The {what} must be a whole number of seconds or minutes (got {value!r}).") from None
    if number < 0:
        raise UserInputError(f"The {what} cannot be negative (got {number}).")
    if number > high:  # the evaluator could not even compute the window's start
        raise UserInputError(f"The {what} can be at most {high:,} (got {number:,}).")
    return number


def validate_rule(spec: dict[str, Any]) -> dict[str, Any]:
    """SPEC checked and normalised into AlertRule columns; the first problem is one sentence (UserInputError)."""
    out = {**spec}
    if not _KEY.match(str(out.get("key", ""))):
        raise UserInputError("A rule key is 1–64 lower-case letters, digits, '_', '.' or '-' (e.g. error_rate_shop_1).")
    metric = METRICS.get(str(out.get("metric")))
    if metric is None:
        raise UserInputError(f"Unknown metric {out.get('metric')!r}; known metrics: {', '.join(METRICS)}.")
    if out.setdefault("op", ">") not in OPS:
        raise UserInputError(f"The comparison must be one of {', '.join(OPS)} (got {out['op']!r}).")
    if out.get("threshold_setting"):
        _number_setting(out["threshold_setting"], "threshold")
        out["threshold"] = None
    elif out.get("threshold") is None:
        raise UserInputError("A rule needs a threshold: a number or the name of a setting.")
    else:
        out["threshold"] = finite_number(out["threshold"], "The threshold")
        if out["threshold"] < 0 and not metric.signed:  # a count, rate or time: such a rule fires at once, always
            raise UserInputError(f"The threshold of {metric.label.lower()} cannot be below 0, as the metric never is "
                                 f"(got {out['threshold']:g}).")
    for name in ("pending_setting", "window_setting"):
        if out.get(name):
            _number_setting(out[name], name.split("_")[0])
    out["pending_seconds"] = _non_negative(out.get("pending_seconds", 0), "pending period", MAX_PERIOD_SECONDS)
    out["keep_firing_seconds"] = _non_negative(out.get("keep_firing_seconds", 0), "keep-firing period",
                                               MAX_PERIOD_SECONDS)
    out["window_minutes"] = _non_negative(out.get("window_minutes", 60), "window", MAX_WINDOW_MINUTES) or 1
    _check_choices(out, metric.scoped)
    out["labels"] = {str(k): str(v) for k, v in (out.get("labels") or {}).items()}
    out["name"] = short_text(str(out.get("name") or ""), "A rule's name", most=200) or out["key"]
    return out


def _check_choices(out: dict[str, Any], scoped: bool) -> None:
    if out.setdefault("severity", "warning") not in SEVERITIES:
        raise UserInputError(f"The severity must be one of {', '.join(SEVERITIES)} (got {out['severity']!r}).")
    if out.setdefault("no_data", "ok") not in NO_DATA_MODES:
        raise UserInputError(f"No-data handling must be one of {', '.join(NO_DATA_MODES)} (got {out['no_data']!r}).")
    out["agent_type"] = out.get("agent_type") or None
    out["shop_id"] = None if out.get("shop_id") in (None, "", 0) else whole_number(out["shop_id"], "The shop id")
    if (out["agent_type"] or out["shop_id"] is not None) and not scoped:
        raise UserInputError(f"The metric {out['metric']} has no agent-type or shop scope; leave both empty.")
    if out["agent_type"] and out["agent_type"] not in AGENT_TYPES:
        raise UserInputError(f"Unknown agent type {out['agent_type']!r}; known types: {', '.join(AGENT_TYPES)}.")


@dataclass(frozen=True)
class Resolved:
    """A rule's numbers for this cycle, with the settings it names read now."""

    threshold: float
    pending_seconds: float
    scope: Scope


def resolve(rule: AlertRule, settings: Settings | None = None) -> Resolved:
    """The threshold, pending period and scope of RULE, reading the settings it names."""
    s = settings or get_settings()
    threshold = float(getattr(s, rule.threshold_setting)) if rule.threshold_setting else float(rule.threshold or 0)
    pending = float(getattr(s, rule.pending_setting)) if rule.pending_setting else float(rule.pending_seconds)
    window = int(getattr(s, rule.window_setting)) if rule.window_setting else rule.window_minutes
    return Resolved(threshold, pending, Scope(window, rule.agent_type, rule.shop_id))


def describe_threshold(rule: AlertRule) -> str:
    """'> 200 (RB_QUERY_MS)' or '> 5'."""
    r = resolve(rule)
    source = f" ({rule.threshold_setting.upper()})" if rule.threshold_setting else ""
    return f"{rule.op} {r.threshold:g}{source}"


def alert_labels(rule: AlertRule, series_labels: dict[str, str]) -> dict[str, str]:
    """The label set of one alert: the rule's identity and scope, its own labels, and the series' labels."""
    labels = {"rule": rule.key, "metric": rule.metric, "severity": rule.severity}
    if rule.agent_type:
        labels["agent_type"] = rule.agent_type
    if rule.shop_id is not None:
        labels["shop"] = str(rule.shop_id)
    if rule.rollback_trigger:
        labels["rollback_trigger"] = "true"
    return {**labels, **(rule.labels or {}), **series_labels}


@dataclass(frozen=True)
class Matcher:
    label: str
    op: str
    value: str

    def matches(self, labels: dict[str, str]) -> bool:
        """True when LABELS satisfy this matcher (a missing label is the empty string)."""
        got = labels.get(self.label, "")
        if self.op == "=":
            return got == self.value
        if self.op == "!=":
            return got != self.value
        hit = re.fullmatch(self.value, got) is not None
        return hit if self.op == "=~" else not hit

    def __str__(self) -> str:
        return f"{self.label}{self.op}{self.value}"


def parse_matchers(texts: list[str] | str) -> list[Matcher]:
    """'rule=error_rate, shop!=2' → matchers; a bad one is one sentence (UserInputError)."""
    items = [t for t in (texts.split(",") if isinstance(texts, str) else texts) if t.strip()]
    out = []
    for text in items:
        m = _MATCHER.match(text)
        if not m or not m.group(3):
            raise UserInputError(f"Bad matcher {text.strip()!r}: write label=value, label!=value, label=~regex or "
                                 "label!~regex (e.g. rule=error_rate).")
        if m.group(2) in ("=~", "!~"):
            try:
                re.compile(m.group(3))
            except re.error as exc:
                raise UserInputError(f"Bad matcher {text.strip()!r}: the regular expression is invalid ({exc}).") from None
        out.append(Matcher(m.group(1), m.group(2), m.group(3)))
    return out


# The labels an alert carries (alert_labels): its rule's identity and scope, and a probe series' URL. A rule's own
# labels (AlertRule.labels) add more: the caller passes them.
BUILT_IN_LABELS = frozenset({"rule", "metric", "severity", "agent_type", "shop", "rollback_trigger", "url"})


def check_matcher_labels(matchers: list[Matcher], custom: set[str]) -> None:
    """A matcher on a label no alert carries, or `shop` compared to something other than a shop id, could never
    match (a silence or a route written with a typo): one sentence (UserInputError)."""
    known = BUILT_IN_LABELS | custom
    for m in matchers:
        if m.label not in known:
            raise UserInputError(f"No alert has a label {m.label!r}; labels are {', '.join(sorted(known))}.")
        if m.label == "shop" and m.op in ("=", "!=") and not m.value.isdigit():
            raise UserInputError(f"shop{m.op}{m.value} names no shop: a shop is its number, such as shop=1.")


def matches_all(matchers: list[Matcher], labels: dict[str, str]) -> bool:
    """True when every matcher matches LABELS (no matchers: everything)."""
    return all(m.matches(labels) for m in matchers)
