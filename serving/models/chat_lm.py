"""chat-lm: a tiny seeded causal transformer LM with an explicit KV cache, and a
continuous-batching engine in the style of vLLM's scheduler, small enough for a CPU.

Engine life of a request: submit() -> waiting (FIFO) -> admitted when a running slot is free
(`max_running`) AND its whole budget, prompt + max_tokens, fits in the KV cache capacity
(`kv_cache_tokens`; reserved up front, so nothing is ever preempted) -> prefill (first token)
-> decoded one token per step together with every other running sequence -> finished after
exactly max_tokens tokens (no early stop, greedy argmax: replays are deterministic) -> its
KV reservation is released and a waiting request can take its place between two steps.

`kv_usage_ratio` = reserved KV tokens / capacity (the quantity that makes requests wait).
The engine knows nothing about Triton: tokens go to a `TokenSink` and measurements to a
`EngineMetrics`; serving/models/triton_chat.py adapts both to the python backend.
"""

from __future__ import annotations

import math
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import torch
import torch.nn.functional as F
from torch import nn

LM_WEIGHT_SEED = 1234


@dataclass(frozen=True)
class LMConfig:
    vocab_size: int = 512
    d_model: int = 128
    n_layers: int = 2
    n_heads: int = 4
    d_ff: int = 512

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_heads


def _syllables() -> list[str]:
    return [c + v for c in "bdfgklmnprstvz" for v in "aeiou"]  # 70 syllables


# Token id -> text: two syllables, unique for all 512 ids (70 * 8 >= 512).
TOKEN_TEXT: tuple[str, ...] = tuple(" " + _syllables()[i % 70] + _syllables()[i // 70] for i in range(512))


def token_text(token_id: int) -> str:
    return TOKEN_TEXT[token_id]


def _sinusoid(positions: torch.Tensor, dim: int) -> torch.Tensor:
    """Fixed sinusoidal position encodings [*, dim] (no length limit besides the KV capacity)."""
    half = dim // 2
    freq = torch.exp(-math.log(10000.0) * torch.arange(half, device=positions.device) / half)
    angles = positions.to(torch.float32).unsqueeze(-1) * freq
    return torch.cat([angles.sin(), angles.cos()], dim=-1)


class KVCache:
    """One sequence's keys and values, preallocated for its whole budget (prompt + max_tokens)."""

    def __init__(self, cfg: LMConfig, capacity_tokens: int, device: torch.device | str):
        shape = (cfg.n_layers, cfg.n_heads, capacity_tokens, cfg.head_dim)
        self.k = torch.zeros(shape, device=device)
        self.v = torch.zeros(shape, device=device)
        self.length = 0  # tokens written so far
        self.capacity_tokens = capacity_tokens


class Block(nn.Module):
    def __init__(self, cfg: LMConfig):
        super().__init__()
        self.cfg = cfg
        self.ln1 = nn.LayerNorm(cfg.d_model)
        self.qkv = nn.Linear(cfg.d_model, 3 * cfg.d_model)
        self.proj = nn.Linear(cfg.d_model, cfg.d_model)
        self.ln2 = nn.LayerNorm(cfg.d_model)
        self.mlp = nn.Sequential(
            nn.Linear(cfg.d_model, cfg.d_ff), nn.GELU(), nn.Linear(cfg.d_ff, cfg.d_model)
        )

    def forward(self, x: torch.Tensor, layer: int, caches: Sequence[KVCache]) -> torch.Tensor:
        """x [B,T,d]: T new tokens per sequence, sequence b starting at position caches[b].length."""
        cfg, (b, t, _) = self.cfg, x.shape
        q, k, v = self.qkv(self.ln1(x)).view(b, t, 3, cfg.n_heads, cfg.head_dim).permute(2, 0, 3, 1, 4)
        lengths = [c.length for c in caches]
        total = max(lengths) + t  # keys attended by the longest sequence
        keys = x.new_zeros(b, cfg.n_heads, total, cfg.head_dim)
        values = torch.zeros_like(keys)
        for i, c in enumerate(caches):
            end = lengths[i] + t
            c.k[layer, :, lengths[i] : end] = k[i]
            c.v[layer, :, lengths[i] : end] = v[i]
            keys[i, :, :end] = c.k[layer, :, :end]
            values[i, :, :end] = c.v[layer, :, :end]
        # Query j of sequence i sits at position lengths[i] + j and sees keys 0..that position.
        key_pos = torch.arange(total, device=x.device)
        query_pos = torch.tensor(lengths, device=x.device).unsqueeze(1) + torch.arange(t, device=x.device)
        allowed = key_pos.view(1, 1, total) <= query_pos.unsqueeze(-1)  # [B,T,total]
        att = F.scaled_dot_product_attention(q, keys, values, attn_mask=allowed.unsqueeze(1))
        x = x + self.proj(att.transpose(1, 2).reshape(b, t, cfg.d_model))
        return x + self.mlp(self.ln2(x))


class TinyCausalLM(nn.Module):
    def __init__(self, cfg: LMConfig):
        super().__init__()
        self.cfg = cfg
        self.embed = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layers))
        self.ln_f = nn.LayerNorm(cfg.d_model)
        self.head = nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)

    @torch.inference_mode()
    def forward_cached(self, tokens: torch.Tensor, caches: Sequence[KVCache]) -> torch.Tensor:
        """Logits [B, vocab] for the last of T new tokens per sequence; advances every cache by T."""
        b, t = tokens.shape
        positions = torch.tensor([c.length for c in caches], device=tokens.device).unsqueeze(
            1
        ) + torch.arange(t, device=tokens.device)
        x = self.embed(tokens) + _sinusoid(positions, self.cfg.d_model)
        for layer, block in enumerate(self.blocks):
            x = block(x, layer, caches)
        for c in caches:
            c.length += t
        return self.head(self.ln_f(x[:, -1]))

    def generate(
        self, prompt: Sequence[int], max_tokens: int, device: str | torch.device = "cpu"
    ) -> list[int]:
        """Reference greedy decoding of one sequence (what the engine must reproduce)."""
        cache = KVCache(self.cfg, len(prompt) + max_tokens, device)
        out: list[int] = []
        logits = self.forward_cached(torch.tensor([list(prompt)], device=device), [cache])
        for _ in range(max_tokens):
            out.append(int(logits.argmax(-1)[0]))
            if len(out) < max_tokens:
                logits = self.forward_cached(torch.tensor([[out[-1]]], device=device), [cache])
        return out


def build_chat_lm(device: str | torch.device = "cpu", cfg: LMConfig = LMConfig()) -> TinyCausalLM:
    """The seeded chat-lm (identical weights everywhere), eval mode, on `device`."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(LM_WEIGHT_SEED)
        model = TinyCausalLM(cfg).eval()
    return model.to(device)


# --- engine ------------------------------------------------------------------------------


class TokenSink(Protocol):
    def send_token(self, token_id: int, text: str, final: bool) -> bool:
        """Deliver one token; return False when the client is gone (the sequence is dropped)."""

    def send_error(self, message: str) -> None:
        """Fail the request (final)."""


class EngineMetrics:
    """No-op measurement hooks; the Triton adapter publishes them as vllm:* metrics."""

    def prompt_tokens(self, n: int) -> None: ...
    def generation_tokens(self, n: int) -> None: ...
    def time_to_first_token(self, seconds: float) -> None: ...
    def time_per_output_token(self, seconds: float) -> None: ...
    def e2e_request_latency(self, seconds: float) -> None: ...
    def gauges(self, running: int, waiting: int, kv_usage_ratio: float) -> None: ...


@dataclass(eq=False)
class GenRequest:
    prompt_ids: list[int]
    max_tokens: int
    sink: TokenSink
    not_before_s: float = 0.0  # injected latency: not admitted before this monotonic time
    arrival_s: float = 0.0
    cache: KVCache | None = None
    generated: list[int] = field(default_factory=list)
    last_token_s: float = 0.0

    @property
    def budget_tokens(self) -> int:
        return len(self.prompt_ids) + self.max_tokens


class ChatEngine:
    """Continuous batching over a TinyCausalLM. `step()` is one scheduler iteration; `start()`
    runs steps in a daemon thread until `stop()`. submit() may be called from any thread."""

    def __init__(
        self,
        model: TinyCausalLM,
        *,
        max_running: int,
        kv_cache_tokens: int,
        device: str | torch.device = "cpu",
        metrics: EngineMetrics | None = None,
        clock: Callable[[], float] = time.monotonic,
    ):
        if max_running < 1 or kv_cache_tokens < 2:
            raise ValueError(
                f"max_running={max_running} must be >= 1 and kv_cache_tokens={kv_cache_tokens} >= 2"
            )
        self.model = model
        self.max_running = max_running
        self.kv_cache_tokens = kv_cache_tokens
        self.device = device
        self.metrics = metrics or EngineMetrics()
        self.clock = clock
        self.waiting: deque[GenRequest] = deque()
        self.running: list[GenRequest] = []
        self.kv_reserved_tokens = 0
        self.step_batch_sizes: deque[int] = deque(maxlen=4096)  # decode batch size per step
        self._inbox: queue.SimpleQueue[GenRequest] = queue.SimpleQueue()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_gauges: tuple | None = None

    # -- intake ----------------------------------------------------------------------------
    def validate(self, prompt_ids: Sequence[int], max_tokens: int) -> str | None:
        """Why a request can never be served, or None."""
        vocab = self.model.cfg.vocab_size
        if not prompt_ids:
            return "input_ids is empty"
        if max_tokens < 1:
            return f"max_tokens={max_tokens} must be >= 1"
        bad = [t for t in prompt_ids if not 0 <= t < vocab]
        if bad:
            return f"input_ids has token ids outside 0..{vocab - 1}: {bad[:5]}"
        if len(prompt_ids) + max_tokens > self.kv_cache_tokens:
            return (
                f"prompt ({len(prompt_ids)} tokens) + max_tokens ({max_tokens}) exceeds the KV cache "
                f"capacity of {self.kv_cache_tokens} tokens"
            )
        return None

    def submit(self, req: GenRequest) -> None:
        problem = self.validate(req.prompt_ids, req.max_tokens)
        if problem:
            req.sink.send_error(problem)
            return
        req.arrival_s = req.arrival_s or self.clock()
        self._inbox.put(req)
        self._wake.set()

    # -- state -----------------------------------------------------------------------------
    @property
    def kv_usage_ratio(self) -> float:
        return self.kv_reserved_tokens / self.kv_cache_tokens

    @property
    def idle(self) -> bool:
        return not self.running and not self.waiting and self._inbox.empty()

    # -- scheduling --------------------------------------------------------------------------
    def step(self) -> bool:
        """Admit what fits, prefill it, decode one token for every running sequence.
        Returns True when any token was produced."""
        while not self._inbox.empty():
            self.waiting.append(self._inbox.get_nowait())
        worked = self._admit()
        if self.running:
            self._decode()
            worked = True
        self._publish_gauges()
        return worked

    def _admit(self) -> bool:
        admitted = False
        now = self.clock()
        # Strict FIFO (vLLM's FCFS): the head waits for capacity, later requests wait behind it.
        while self.waiting and len(self.running) < self.max_running:
            head = self.waiting[0]
            if head.not_before_s > now or self.kv_reserved_tokens + head.budget_tokens > self.kv_cache_tokens:
                break
            self.waiting.popleft()
            self.kv_reserved_tokens += head.budget_tokens
            head.cache = KVCache(self.model.cfg, head.budget_tokens, self.device)
            self.running.append(head)
            self.metrics.prompt_tokens(len(head.prompt_ids))
            tokens = torch.tensor([head.prompt_ids], device=self.device)
            logits = self.model.forward_cached(tokens, [head.cache])
            self._emit([head], logits)
            admitted = True
        return admitted

    def _decode(self) -> None:
        seqs = list(self.running)
        self.step_batch_sizes.append(len(seqs))
        tokens = torch.tensor([[s.generated[-1]] for s in seqs], device=self.device)
        logits = self.model.forward_cached(tokens, [s.cache for s in seqs])
        self._emit(seqs, logits)

    def _emit(self, seqs: list[GenRequest], logits: torch.Tensor) -> None:
        next_ids = logits.argmax(dim=-1).tolist()
        now = self.clock()
        self.metrics.generation_tokens(len(seqs))
        for seq, tok in zip(seqs, next_ids, strict=True):
            seq.generated.append(tok)
            if len(seq.generated) == 1:
                self.metrics.time_to_first_token(now - seq.arrival_s)
            else:
                self.metrics.time_per_output_token(now - seq.last_token_s)
            seq.last_token_s = now
            final = len(seq.generated) >= seq.max_tokens
            if final:
                # Close the books before the last token leaves: a client that scrapes the
                # metrics after its final token must see its request counted and its KV freed.
                self.metrics.e2e_request_latency(now - seq.arrival_s)
                self._release(seq)
                self._publish_gauges()
            try:
                delivered = seq.sink.send_token(tok, token_text(tok), final)
            except Exception:  # noqa: BLE001 - a broken client must not stop the engine
                delivered = False
            if not final and not delivered:
                self._release(seq)

    def _release(self, seq: GenRequest) -> None:
        self.running.remove(seq)
        self.kv_reserved_tokens -= seq.budget_tokens
        seq.cache = None

    def _publish_gauges(self) -> None:
        snapshot = (len(self.running), len(self.waiting), self.kv_usage_ratio)
        if snapshot != self._last_gauges:  # every update is an IPC round trip in Triton
            self._last_gauges = snapshot
            self.metrics.gauges(*snapshot)

    def fail_all(self, message: str) -> None:
        """Fail every queued and running request (model unload, engine crash)."""
        while not self._inbox.empty():
            self.waiting.append(self._inbox.get_nowait())
        for seq in list(self.running) + list(self.waiting):
            try:
                seq.sink.send_error(message)
            except Exception:  # noqa: BLE001,S110 - the client may already be gone
                pass
        self.running.clear()
        self.waiting.clear()
        self.kv_reserved_tokens = 0
        self._publish_gauges()

    # -- thread ------------------------------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="chat-engine", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
        self.fail_all("chat-lm instance is shutting down")

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                worked = self.step()
            except Exception as exc:  # noqa: BLE001 - keep serving; fail what was in flight
                self.fail_all(f"chat-lm engine error: {exc!r}")
                worked = False
            if not worked:
                # Idle, or the waiting head is delayed by injected latency: sleep until woken.
                self._wake.wait(0.005 if self.waiting else 0.5)
                self._wake.clear()
