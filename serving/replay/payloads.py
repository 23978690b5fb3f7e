"""What each replayed request sends: body, headers, caps and priority (pure and deterministic).

Every random choice for request `index` comes from `numpy.random.default_rng((seed, index))`,
so a request's prompt, features, complexity and priority do not depend on what was sent
before it (same seed -> same bytes on the wire, whatever the timing).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

import numpy as np

from serving.replay.traces import TraceRequest

CHAT_MODEL = "chat-lm"
CLASSIFIER_MODEL = "classifier"  # the router's virtual model; X-Complexity picks the tier
VOCAB_SIZE = 512  # chat-lm token ids are 0..511
FEATURES = 64  # classifier input `features` FP32 [1, 64]
PRIORITY_HEADER = "X-Priority"
COMPLEXITY_HEADER = "X-Complexity"
DEFAULT_PRIORITY_MIX = {"standard": 1.0}


@dataclass(frozen=True)
class Caps:
    max_prompt_tokens: int
    max_generated_tokens: int


@dataclass(frozen=True)
class ClippedLengths:
    prompt_tokens: int
    max_tokens: int
    clipped_prompt: bool  # the trace asked for more prompt tokens than the cap
    clipped_output: bool  # the trace asked for more generated tokens than the cap


def clip_lengths(input_length: int, output_length: int, caps: Caps) -> ClippedLengths:
    """Apply the caps; a zero length in the trace is sent as 1 (empty requests are not useful)."""
    prompt = max(1, min(input_length, caps.max_prompt_tokens))
    out = max(1, min(output_length, caps.max_generated_tokens))
    return ClippedLengths(
        prompt, out, input_length > caps.max_prompt_tokens, output_length > caps.max_generated_tokens
    )


def parse_priority_mix(text: str, allowed: set[str] | None = None) -> dict[str, float]:
    """`premium=0.2,standard=0.6,batch=0.2` -> normalised weights; errors name the bad part."""
    mix: dict[str, float] = {}
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        name, sep, raw = part.partition("=")
        name = name.strip()
        if not sep or not name:
            raise ValueError(f"priority mix part {part!r} is not NAME=WEIGHT")
        try:
            weight = float(raw)
        except ValueError:
            raise ValueError(f"priority mix weight {raw.strip()!r} for {name!r} is not a number") from None
        if not math.isfinite(weight) or weight < 0:
            raise ValueError(f"priority mix weight {weight} for {name!r} must be >= 0")
        if allowed is not None and name not in allowed:
            raise ValueError(
                f"priority class {name!r} is unknown; known classes: {', '.join(sorted(allowed))}"
            )
        if name in mix:
            raise ValueError(f"priority class {name!r} appears twice in the mix")
        mix[name] = weight
    total = sum(mix.values())
    if not mix or total <= 0:
        raise ValueError(f"priority mix {text!r} has no positive weight")
    return {name: w / total for name, w in mix.items()}


def format_priority_mix(mix: dict[str, float]) -> str:
    return ",".join(f"{name}={weight:g}" for name, weight in mix.items())


@dataclass(frozen=True)
class PlannedRequest:
    index: int
    model: str  # model name in the URL (chat-lm or the virtual `classifier`)
    path: str  # URL path below the router base URL
    body: bytes
    headers: dict[str, str]
    stream: bool  # SSE generate_stream (chat) or one JSON infer response (classifier)
    priority: str
    prompt_tokens: int = 0
    max_tokens: int = 0
    clipped_prompt: bool = False
    clipped_output: bool = False
    complexity: float | None = None


class RequestPlanner:
    """Turns trace requests into concrete HTTP requests."""

    def __init__(self, caps: Caps, seed: int = 0, priority_mix: dict[str, float] | None = None):
        self.caps = caps
        self.seed = seed
        mix = priority_mix or DEFAULT_PRIORITY_MIX
        self._priorities = list(mix)
        self._cumulative = np.cumsum([mix[p] for p in self._priorities])
        self._cumulative[-1] = 1.0  # guard against rounding leaving a gap at the top

    def _priority(self, rng: np.random.Generator) -> str:
        return self._priorities[int(np.searchsorted(self._cumulative, rng.random(), side="right"))]

    def plan(self, index: int, request: TraceRequest) -> PlannedRequest:
        rng = np.random.default_rng((self.seed, index))
        priority = self._priority(rng)
        headers = {"Content-Type": "application/json", PRIORITY_HEADER: priority}
        if request.kind == "chat":
            lengths = clip_lengths(request.input_length, request.output_length, self.caps)
            ids = rng.integers(0, VOCAB_SIZE, size=lengths.prompt_tokens).tolist()
            body = json.dumps({"input_ids": ids, "max_tokens": lengths.max_tokens}, separators=(",", ":"))
            return PlannedRequest(
                index,
                CHAT_MODEL,
                f"/v2/models/{CHAT_MODEL}/generate_stream",
                body.encode(),
                headers,
                True,
                priority,
                lengths.prompt_tokens,
                lengths.max_tokens,
                lengths.clipped_prompt,
                lengths.clipped_output,
            )
        complexity = round(float(rng.random()), 4)  # uniform 0-1: the tier threshold sets the large share
        features = np.round(rng.standard_normal(FEATURES), 4).tolist()
        body = json.dumps(
            {"inputs": [{"name": "features", "shape": [1, FEATURES], "datatype": "FP32", "data": features}]},
            separators=(",", ":"),
        )
        headers[COMPLEXITY_HEADER] = f"{complexity:.4f}"
        return PlannedRequest(
            index,
            CLASSIFIER_MODEL,
            f"/v2/models/{CLASSIFIER_MODEL}/infer",
            body.encode(),
            headers,
            False,
            priority,
            complexity=complexity,
        )
