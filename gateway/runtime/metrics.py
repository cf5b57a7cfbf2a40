"""Prometheus metrics, per worker process (each worker's series carry its pid): requests by route
and status, request latency, audit append latency, denials by reason. No client ids, no tokens."""

from __future__ import annotations

import os
import threading
from collections import defaultdict

from gateway.model.decision import Verdict

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class Histogram:
    def __init__(self) -> None:
        self.counts = [0] * (len(LATENCY_BUCKETS) + 1)
        self.total = 0.0
        self.n = 0

    def observe(self, seconds: float) -> None:
        for i, bound in enumerate(LATENCY_BUCKETS):
            if seconds <= bound:
                self.counts[i] += 1
                break
        else:
            self.counts[-1] += 1
        self.total += seconds
        self.n += 1

    def lines(self, name: str, labels: str) -> list[str]:
        out, running = [], 0
        for bound, count in zip((*map(str, LATENCY_BUCKETS), "+Inf"), self.counts, strict=True):
            running += count
            sep = "," if labels else ""
            out.append(f'{name}_bucket{{{labels}{sep}le="{bound}"}} {running}')
        braces = f"{{{labels}}}" if labels else ""
        out.append(f"{name}_sum{braces} {self.total:.6f}")
        out.append(f"{name}_count{braces} {self.n}")
        return out


class Metrics:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests: defaultdict[tuple[str, int], int] = defaultdict(int)
        self.denials: defaultdict[str, int] = defaultdict(int)
        self.latency = Histogram()
        self.audit = Histogram()

    def record(
        self,
        route: str | None,
        status: int,
        reason: str | None,
        decision: Verdict,
        seconds: float,
        audit_seconds: float | None,
    ) -> None:
        with self._lock:
            self.requests[(route or "unmatched", status)] += 1
            if decision == Verdict.DENY and reason:
                self.denials[reason] += 1
            self.latency.observe(seconds)
            if audit_seconds is not None:
                self.audit.observe(audit_seconds)

    def render(self) -> str:
        worker = f'worker="{os.getpid()}"'
        with self._lock:
            lines = [
                "# HELP gateway_requests_total HTTP requests answered, by route and status.",
                "# TYPE gateway_requests_total counter",
                *(
                    f'gateway_requests_total{{{worker},route="{route}",status="{status}"}} {n}'
                    for (route, status), n in sorted(self.requests.items())
                ),
                "# HELP gateway_denials_total Requests denied, by reason code.",
                "# TYPE gateway_denials_total counter",
                *(
                    f'gateway_denials_total{{{worker},reason="{reason}"}} {n}'
                    for reason, n in sorted(self.denials.items())
                ),
                "# HELP gateway_request_duration_seconds Request to response, audit included.",
                "# TYPE gateway_request_duration_seconds histogram",
                *self.latency.lines("gateway_request_duration_seconds", worker),
                "# HELP gateway_audit_append_seconds Time to commit one audit entry durably.",
                "# TYPE gateway_audit_append_seconds histogram",
                *self.audit.lines("gateway_audit_append_seconds", worker),
            ]
        return "\n".join(lines) + "\n"
