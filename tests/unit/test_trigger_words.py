"""A fired rollback trigger is said with its unit and without a third decimal ('= 254.089 (limit 200)' before)."""
from __future__ import annotations

from core.queries.controls import Trigger


def test_a_trigger_is_said_with_its_unit() -> None:
    said = Trigger("query_time", "Database query time p95 (last hour)", 254.089, 200.0, True, "", "ms").said()
    assert said == "Database query time p95 (last hour) = 254.1 ms (limit 200 ms)"
    assert Trigger("memory", "Worker memory", 2100.0, 2048.0, True, "", "MB").said() == \
        "Worker memory = 2,100 MB (limit 2,048 MB)"
    assert Trigger("unauthorized", "Refused reads (24 h)", 3.0, 0.0, True, "").said() == "Refused reads (24 h) = 3 (limit 0)"
