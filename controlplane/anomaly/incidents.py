"""Incidents: findings per tick -> open / update / close events (never one event per sample).

Key = (model, replica, metric). Lifecycle, as a pure `step(state, findings, now_s)`:
  * open   when a finding scores >= open_score and the key has no open incident and is not cooling
           down (a flapping series re-opens at most once per `cooldown_s`);
  * update only when the severity rises (duplicates of an open incident are suppressed);
  * close  when the key has stayed below close_score (hysteresis) for `close_after_s`;
           the key then cools down for `cooldown_s`, unless a strictly more severe finding arrives.
`AnomalyEvent` matches the store's `anomaly_events` columns (controlplane/store/schema.py).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from controlplane.anomaly.combine import Explanation

SEVERITIES = ("info", "warning", "critical")


@dataclass(frozen=True)
class IncidentParams:
    open_score: float = 0.6
    close_score: float = 0.3
    close_after_s: float = 60.0
    cooldown_s: float = 300.0
    warning_score: float = 0.75
    critical_score: float = 0.9


@dataclass(frozen=True)
class Finding:
    """One series' combined score at this tick (only series worth a look are passed)."""

    model: str
    replica: str
    metric: str
    score: float
    explanation: Explanation
    zone: str = ""


@dataclass(frozen=True)
class Incident:
    incident_id: str
    model: str
    replica: str
    zone: str
    metric: str
    opened_s: float
    severity: str
    peak_score: float
    last_above_s: float
    observed: float
    expected: float
    detectors: tuple[str, ...]
    seq: int = 0


@dataclass(frozen=True)
class IncidentState:
    open: dict[tuple[str, str, str], Incident] = field(default_factory=dict)
    cooling: dict[tuple[str, str, str], tuple[float, str]] = field(default_factory=dict)  # until_s, severity
    suppressed: int = 0  # findings swallowed by duplicate suppression or cool-down


@dataclass(frozen=True)
class AnomalyEvent:
    """One row of `anomaly_events`; `kind` is also the first reason code."""

    ts: datetime
    event_id: str
    detector: str
    model: str
    replica: str
    zone: str
    metric: str
    severity: str
    score: float
    threshold: float
    observed_value: float
    expected_value: float
    reason_codes: list[str]
    inputs: str
    window_start: datetime
    window_end: datetime

    @property
    def kind(self) -> str:
        return self.reason_codes[0]

    def as_row(self) -> dict:
        return {k: getattr(self, k) for k in COLUMNS}


COLUMNS = tuple(AnomalyEvent.__dataclass_fields__)


def severity_of(score: float, p: IncidentParams = IncidentParams()) -> str:
    if score >= p.critical_score:
        return "critical"
    if score >= p.warning_score:
        return "warning"
    return "info"


def _utc(s: float) -> datetime:
    return datetime.fromtimestamp(s, tz=UTC)


def _event(
    kind: str, inc: Incident, now_s: float, score: float, p: IncidentParams, extra: dict
) -> AnomalyEvent:
    inputs = {"incident_id": inc.incident_id, "peak_score": inc.peak_score, **extra}
    return AnomalyEvent(
        ts=_utc(now_s),
        event_id=f"{inc.incident_id}#{inc.seq}",
        detector="+".join(inc.detectors) or "combined",
        model=inc.model,
        replica=inc.replica,
        zone=inc.zone,
        metric=inc.metric,
        severity=inc.severity,
        score=float(score),
        threshold=p.open_score,
        observed_value=float(inc.observed),
        expected_value=float(inc.expected),
        reason_codes=[kind, *(f"detector:{d}" for d in inc.detectors)],
        inputs=json.dumps(inputs, default=str, sort_keys=True),
        window_start=_utc(inc.opened_s),
        window_end=_utc(now_s),
    )


def step(
    state: IncidentState, findings: list[Finding], now_s: float, p: IncidentParams = IncidentParams()
) -> tuple[IncidentState, list[AnomalyEvent]]:
    opened = dict(state.open)
    cooling = {k: v for k, v in state.cooling.items() if v[0] > now_s}
    suppressed = state.suppressed
    events: list[AnomalyEvent] = []
    seen: set[tuple[str, str, str]] = set()
    for f in sorted(findings, key=lambda f: -f.score):
        key = (f.model, f.replica, f.metric)
        if key in seen:
            suppressed += 1  # the same series twice in one tick: keep the strongest
            continue
        seen.add(key)
        ex = f.explanation
        sev = severity_of(f.score, p)
        inc = opened.get(key)
        if inc is not None:
            if f.score >= p.close_score:
                inc = replace(inc, last_above_s=now_s)
            if f.score >= p.open_score and SEVERITIES.index(sev) > SEVERITIES.index(inc.severity):
                inc = replace(
                    inc, severity=sev, peak_score=max(inc.peak_score, f.score), observed=ex.observed,
                    expected=ex.expected, detectors=ex.detectors, seq=inc.seq + 1,
                )  # fmt: skip
                events.append(_event("updated", inc, now_s, f.score, p, {"explanation": ex.text()}))
            else:
                if f.score >= p.open_score:
                    suppressed += 1  # duplicate of an open incident
                inc = replace(inc, peak_score=max(inc.peak_score, f.score))
            opened[key] = inc
            continue
        if f.score < p.open_score:
            continue
        cool = cooling.get(key)
        if cool is not None and SEVERITIES.index(sev) <= SEVERITIES.index(cool[1]):
            suppressed += 1
            continue
        inc = Incident(
            incident_id=f"{f.model}/{f.replica}/{f.metric}@{int(now_s * 1000)}",
            model=f.model, replica=f.replica, zone=f.zone, metric=f.metric, opened_s=now_s,
            severity=sev, peak_score=f.score, last_above_s=now_s, observed=ex.observed,
            expected=ex.expected, detectors=ex.detectors,
        )  # fmt: skip
        cooling.pop(key, None)
        opened[key] = inc
        events.append(
            _event(
                "opened",
                inc,
                now_s,
                f.score,
                p,
                {
                    "explanation": ex.text(),
                    "expected_low": ex.expected_low,
                    "expected_high": ex.expected_high,
                },
            )  # fmt: skip
        )
    for key, inc in list(opened.items()):
        if now_s - inc.last_above_s >= p.close_after_s:
            inc = replace(inc, seq=inc.seq + 1)
            events.append(
                _event("closed", inc, now_s, inc.peak_score, p, {"quiet_s": now_s - inc.last_above_s})
            )
            del opened[key]
            cooling[key] = (now_s + p.cooldown_s, inc.severity)
    return IncidentState(open=opened, cooling=cooling, suppressed=suppressed), events
