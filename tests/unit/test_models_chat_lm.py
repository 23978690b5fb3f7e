"""chat-lm engine without Triton: exact token counts, continuous batching, KV-capacity waits."""

from __future__ import annotations

import threading

import pytest
import torch

from serving.models.chat_lm import (
    TOKEN_TEXT,
    ChatEngine,
    EngineMetrics,
    GenRequest,
    build_chat_lm,
)


class FakeSink:
    def __init__(self, cancel_after: int | None = None):
        self.tokens: list[int] = []
        self.texts: list[str] = []
        self.finals: list[bool] = []
        self.errors: list[str] = []
        self.cancel_after = cancel_after
        self.done = threading.Event()

    def send_token(self, token_id, text, final):
        if self.cancel_after is not None and len(self.tokens) >= self.cancel_after:
            self.done.set()
            return False
        self.tokens.append(token_id)
        self.texts.append(text)
        self.finals.append(final)
        if final:
            self.done.set()
        return True

    def send_error(self, message):
        self.errors.append(message)
        self.done.set()


class RecordingMetrics(EngineMetrics):
    def __init__(self):
        self.prompt = self.generated = 0
        self.ttft, self.tpot, self.e2e, self.gauge_updates = [], [], [], []

    def prompt_tokens(self, n):
        self.prompt += n

    def generation_tokens(self, n):
        self.generated += n

    def time_to_first_token(self, seconds):
        self.ttft.append(seconds)

    def time_per_output_token(self, seconds):
        self.tpot.append(seconds)

    def e2e_request_latency(self, seconds):
        self.e2e.append(seconds)

    def gauges(self, running, waiting, kv_usage_ratio):
        self.gauge_updates.append((running, waiting, kv_usage_ratio))


class FakeClock:
    def __init__(self):
        self.now_s = 100.0

    def __call__(self):
        return self.now_s


@pytest.fixture(scope="module")
def lm():
    return build_chat_lm()


def _engine(lm, **kw):
    kw.setdefault("max_running", 8)
    kw.setdefault("kv_cache_tokens", 1024)
    return ChatEngine(lm, **kw)


def _run(engine: ChatEngine, max_steps: int = 1000) -> int:
    steps = 0
    while not engine.idle:
        engine.step()
        steps += 1
        assert steps < max_steps, "engine did not drain"
    return steps


def test_weights_are_seeded_and_identical(lm):
    other = build_chat_lm()
    for (name, a), (_, b) in zip(lm.state_dict().items(), other.state_dict().items(), strict=True):
        assert torch.equal(a, b), name


def test_token_text_is_unique_per_id():
    assert len(TOKEN_TEXT) == 512 and len(set(TOKEN_TEXT)) == 512


@pytest.mark.parametrize("prompt,max_tokens", [([5], 1), ([5, 6, 7], 3), ([1] * 40, 17)])
def test_generates_exactly_max_tokens_matching_reference(lm, prompt, max_tokens):
    engine, sink = _engine(lm), FakeSink()
    engine.submit(GenRequest(prompt, max_tokens, sink))
    _run(engine)
    assert sink.errors == []
    assert len(sink.tokens) == max_tokens
    assert sink.finals == [False] * (max_tokens - 1) + [True]  # FINAL only on the last token
    assert sink.tokens == lm.generate(prompt, max_tokens)
    assert sink.texts == [TOKEN_TEXT[t] for t in sink.tokens]


def test_sequences_decode_together_and_late_arrivals_join(lm):
    engine = _engine(lm)
    early = [FakeSink() for _ in range(3)]
    for i, sink in enumerate(early):
        engine.submit(GenRequest([i + 1, 2, 3], 10, sink))
    for _ in range(3):  # step 1 admits + prefills all three, then decode steps
        engine.step()
    assert len(engine.running) == 3 and list(engine.step_batch_sizes) == [3, 3, 3]
    late = FakeSink()
    engine.submit(GenRequest([9, 9], 10, late))
    engine.step()
    assert engine.step_batch_sizes[-1] == 4  # joined mid-flight, no wait for the batch to end
    _run(engine)
    for i, sink in enumerate(early):
        assert sink.tokens == lm.generate([i + 1, 2, 3], 10)  # batching does not change results
    assert late.tokens == lm.generate([9, 9], 10)


def test_max_running_limits_the_batch(lm):
    engine = _engine(lm, max_running=2)
    sinks = [FakeSink() for _ in range(3)]
    for sink in sinks:
        engine.submit(GenRequest([1, 2], 4, sink))
    engine.step()
    assert (len(engine.running), len(engine.waiting)) == (2, 1)
    _run(engine)
    assert [len(s.tokens) for s in sinks] == [4, 4, 4]
    assert max(engine.step_batch_sizes) == 2


def test_request_waits_while_kv_capacity_is_full(lm):
    # Budgets: 4 + 8 = 12 tokens each; capacity 20 holds one at a time.
    engine = _engine(lm, kv_cache_tokens=20)
    first, second = FakeSink(), FakeSink()
    engine.submit(GenRequest([1, 2, 3, 4], 8, first))
    engine.submit(GenRequest([5, 6, 7, 8], 8, second))
    engine.step()
    assert (len(engine.running), len(engine.waiting)) == (1, 1)
    assert engine.kv_reserved_tokens == 12 and engine.kv_usage_ratio == pytest.approx(0.6)
    while not first.done.is_set():
        assert second.tokens == []  # still waiting
        engine.step()
    engine.step()  # first released; second admitted
    assert (len(engine.running), len(engine.waiting)) == (1, 0)
    _run(engine)
    assert len(second.tokens) == 8
    assert engine.kv_reserved_tokens == 0 and engine.kv_usage_ratio == 0.0


def test_fifo_head_blocks_smaller_requests_behind_it(lm):
    engine = _engine(lm, kv_cache_tokens=30)
    engine.submit(GenRequest([1] * 10, 10, FakeSink()))  # budget 20, admitted
    engine.submit(GenRequest([1] * 10, 5, FakeSink()))  # budget 15: does not fit (20 + 15 > 30)
    engine.submit(GenRequest([1], 1, FakeSink()))  # budget 2 would fit, but waits behind the head
    engine.step()
    assert (len(engine.running), len(engine.waiting)) == (1, 2)


@pytest.mark.parametrize(
    "prompt,max_tokens,message",
    [
        ([], 3, "empty"),
        ([1, 2], 0, "max_tokens=0"),
        ([1, 512], 3, "outside 0..511"),
        ([1] * 60, 5, "exceeds the KV cache capacity of 64"),
    ],
)
def test_requests_that_can_never_run_fail_at_once(lm, prompt, max_tokens, message):
    engine, sink = _engine(lm, kv_cache_tokens=64), FakeSink()
    engine.submit(GenRequest(prompt, max_tokens, sink))
    assert len(sink.errors) == 1 and message in sink.errors[0]
    assert engine.idle


def test_cancelled_client_releases_its_kv(lm):
    engine, sink = _engine(lm), FakeSink(cancel_after=3)
    engine.submit(GenRequest([1, 2], 10, sink))
    _run(engine)
    assert len(sink.tokens) == 3 and engine.kv_reserved_tokens == 0 and engine.running == []


def test_metrics_count_tokens_and_latencies(lm):
    clock, metrics = FakeClock(), RecordingMetrics()
    engine = _engine(lm, metrics=metrics, clock=clock)
    engine.submit(GenRequest([1, 2, 3], 4, FakeSink()))
    engine.submit(GenRequest([4, 5], 4, FakeSink()))
    while not engine.idle:
        clock.now_s += 0.01  # each step takes 10 ms of fake time
        engine.step()
    assert metrics.prompt == 5 and metrics.generated == 8
    assert metrics.ttft == pytest.approx([0.01, 0.01])
    # Step 1 prefills both (first tokens) and decodes their second tokens at the same instant.
    assert metrics.tpot == pytest.approx([0.0, 0.0] + [0.01] * 4)
    assert metrics.e2e == pytest.approx([0.03, 0.03])
    assert metrics.gauge_updates[0][0] == 2 and metrics.gauge_updates[-1] == (0, 0, 0.0)


def test_final_token_leaves_after_the_books_are_closed(lm):
    """A client that scrapes after its last token must see its request counted and its KV
    freed (a clean-clone CI run read kv_cache_usage_perc 0.0024 after the final token)."""
    metrics = RecordingMetrics()
    engine = _engine(lm, metrics=metrics)
    seen_at_final = []

    class ScrapingSink(FakeSink):
        def send_token(self, token_id, text, final):
            if final:
                seen_at_final.append((len(metrics.e2e), engine.kv_reserved_tokens, metrics.gauge_updates[-1]))
            return super().send_token(token_id, text, final)

    engine.submit(GenRequest([1, 2, 3], 5, ScrapingSink()))
    _run(engine)
    assert seen_at_final == [(1, 0, (0, 0, 0.0))]


def test_not_before_delays_admission(lm):
    clock = FakeClock()
    engine, sink = _engine(lm, clock=clock), FakeSink()
    engine.submit(GenRequest([1, 2], 2, sink, not_before_s=clock.now_s + 0.5))
    engine.step()
    assert sink.tokens == [] and len(engine.waiting) == 1
    clock.now_s += 0.5
    _run(engine)
    assert len(sink.tokens) == 2


def test_background_thread_serves_and_stop_fails_leftovers(lm):
    engine = _engine(lm, max_running=1)
    done = FakeSink()
    engine.start()
    try:
        engine.submit(GenRequest([3, 4], 5, done))
        assert done.done.wait(10) and len(done.tokens) == 5
    finally:
        engine._stop.set()  # stop the loop first so that the next request stays queued
        engine._wake.set()
        engine._thread.join(5)
    left = FakeSink()
    engine.submit(GenRequest([3, 4], 5, left))
    engine.stop()
    assert left.errors == ["chat-lm instance is shutting down"]
