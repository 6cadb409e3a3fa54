"""Property-based fuzzing of the OpenAPI schema: whatever schemathesis sends, no 5xx comes back."""
from __future__ import annotations

from datetime import timedelta

import schemathesis
from hypothesis import HealthCheck, given, settings

from core.api.ratelimit import MemoryLimiter
from core.models import WorkerHeartbeat, utcnow
from core.uow import UnitOfWork


def test_no_server_errors_for_any_generated_request(api: dict, engine) -> None:  # noqa: ANN001
    with UnitOfWork(engine) as uow:  # a live worker, so readiness answers 200 and any 5xx is a fault
        uow.session.add(WorkerHeartbeat(id="fuzz-worker", host="h", pid=1, last_seen_at=utcnow() + timedelta(minutes=5)))
        uow.commit()
    app = api["client"].app
    app.state.limiter = MemoryLimiter(10**9)  # fuzzing is not about the rate limit
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    headers = {"Authorization": f"Bearer {api['tokens']['engineer']}"}
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 6
    seen: list[tuple[str, int]] = []
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=30, deadline=None, database=None, suppress_health_check=list(HealthCheck))
        def check(case) -> None:  # noqa: ANN001
            response = case.call(headers=headers)
            seen.append((operation.label, response.status_code))
            assert response.status_code < 500, f"{operation.label}: {response.status_code} {response.text[:300]}"

        check()
    assert any(code >= 400 for _, code in seen), "the fuzzer should also have sent invalid requests"
