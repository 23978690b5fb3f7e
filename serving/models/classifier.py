"""Torch MLP classifiers served as classifier-small, classifier-large and classifier-large-int8.

Weights are drawn from a fixed seed (`torch.manual_seed(WEIGHT_SEED)` inside a forked RNG), so
every replica, every model instance and every test gets bit-identical weights; nothing is
downloaded.

Cost per sample (multiply-adds counted as 2 FLOPs, biases and ReLU ignored):
- small 64->128->10:                     2*(64*128 + 128*10)               =    18,944 FLOPs
- large 64->1024->1024->1024->10:        2*(64*1024 + 2*1024*1024 + 1024*10) = 4,345,856 FLOPs
so large costs about 229x small (FLOP ratio >= 10 is asserted in tests/unit/test_models_classifier.py).
classifier-large-int8 is the large model after `quantize_dynamic` (nn.Linear -> qint8 weights,
activations quantized per batch); it runs on CPU only (quantized kernels have no CUDA path).
"""

from __future__ import annotations

import math
import statistics
import time
import warnings
from collections.abc import Sequence

import torch
from torch import nn

FEATURES = 64
CLASSES = 10
WEIGHT_SEED = 20240611
INPUT_SEED = 7  # seeded inputs for int8_report
HIDDEN = {"small": (128,), "large": (1024, 1024, 1024)}
VARIANTS = ("small", "large", "large-int8")


def _mlp(hidden: Sequence[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    width = FEATURES
    for h in hidden:
        layers += [nn.Linear(width, h), nn.ReLU()]
        width = h
    layers.append(nn.Linear(width, CLASSES))
    return nn.Sequential(*layers)


@torch.no_grad()
def _seed_weights(model: nn.Module, gen: torch.Generator) -> None:
    """nn.Linear's default init (uniform within 1/sqrt(fan_in)) drawn from a private generator.
    The global RNG is shared by every thread of the process: seeding it and drawing from it
    raced with other threads, and two builds got different weights in a CI run."""
    for m in model.modules():
        if isinstance(m, nn.Linear):
            bound = 1.0 / math.sqrt(m.in_features)
            m.weight.uniform_(-bound, bound, generator=gen)
            m.bias.uniform_(-bound, bound, generator=gen)


def mlp_flops_per_sample(model: nn.Module) -> int:
    """2 FLOPs per multiply-add of every nn.Linear (or its dynamic-quantized twin)."""
    total = 0
    for m in model.modules():
        w = getattr(m, "weight", None)
        if callable(w):  # quantized Linear exposes weight() as a method
            w = w()
        if w is not None and isinstance(m, nn.Linear | torch.ao.nn.quantized.dynamic.Linear):
            total += 2 * w.shape[0] * w.shape[1]
    return total


def quantize_int8(model: nn.Module) -> nn.Module:
    """Dynamic int8 quantization of every nn.Linear (CPU only)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.ao.quantization deprecation notices
        return torch.ao.quantization.quantize_dynamic(model.cpu(), {nn.Linear}, dtype=torch.qint8)


def build_classifier(variant: str, device: str | torch.device = "cpu") -> nn.Module:
    """The eval-mode classifier for variant small|large|large-int8 with seeded weights."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown classifier variant {variant!r}; known: {', '.join(VARIANTS)}")
    base = "large" if variant == "large-int8" else variant
    with torch.random.fork_rng(devices=[]):  # construction's default init leaves the caller's RNG be
        model = _mlp(HIDDEN[base]).eval()
    _seed_weights(model, torch.Generator().manual_seed(WEIGHT_SEED))
    if variant == "large-int8":
        return quantize_int8(model).eval()
    return model.to(device)


@torch.inference_mode()
def classify(model: nn.Module, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(probabilities [B,10] float32, labels [B] int64) for features [B,64]."""
    probs = torch.softmax(model(features), dim=-1)
    return probs, probs.argmax(dim=-1)


def seeded_features(n: int, seed: int = INPUT_SEED) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(n, FEATURES, generator=gen)


def _latency_ms(model: nn.Module, x: torch.Tensor, iters: int, warmup: int) -> float:
    """Median wall time of one forward pass (ms): robust to other processes on a shared CPU."""
    samples = []
    with torch.inference_mode():
        for _ in range(warmup):
            model(x)
        for _ in range(iters):
            start = time.perf_counter()
            model(x)
            samples.append(time.perf_counter() - start)
    return statistics.median(samples) * 1000.0


def int8_report(
    batch_sizes: Sequence[int] = (1, 16, 64),
    iters: int = 50,
    agreement_samples: int = 2048,
    warmup: int = 5,
    threads: int | None = 1,
) -> dict:
    """Compare fp32 vs int8 classifier-large in this process (CPU): speed and agreement.

    Returns {"batches": [{"batch_size", "fp32_ms", "int8_ms", "speedup_ratio"}...],
    "top1_agreement_ratio", "max_abs_prob_diff", "agreement_samples", "iters", "threads"}.
    Latencies are the median wall time of one forward pass (ms) over `iters` passes after
    `warmup` untimed ones, with `threads` torch threads (1, as a Triton instance runs with
    OMP_NUM_THREADS=1; None keeps the current setting).
    """
    if iters < 1 or agreement_samples < 1 or not batch_sizes or any(b < 1 for b in batch_sizes):
        raise ValueError(
            f"iters={iters} and agreement_samples={agreement_samples} must be >= 1, "
            f"batch_sizes={tuple(batch_sizes)} non-empty and each >= 1"
        )
    previous_threads = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        return _int8_report(batch_sizes, iters, agreement_samples, warmup)
    finally:
        torch.set_num_threads(previous_threads)


def _int8_report(batch_sizes: Sequence[int], iters: int, agreement_samples: int, warmup: int) -> dict:
    fp32 = build_classifier("large")
    int8 = build_classifier("large-int8")
    batches = []
    for b in batch_sizes:
        x = seeded_features(b, seed=INPUT_SEED + b)
        fp32_ms = _latency_ms(fp32, x, iters, warmup)
        int8_ms = _latency_ms(int8, x, iters, warmup)
        batches.append(
            {
                "batch_size": b,
                "fp32_ms": round(fp32_ms, 4),
                "int8_ms": round(int8_ms, 4),
                "speedup_ratio": round(fp32_ms / int8_ms, 3) if int8_ms > 0 else None,
            }
        )
    x = seeded_features(agreement_samples)
    p32, l32 = classify(fp32, x)
    p8, l8 = classify(int8, x)
    return {
        "model": "classifier-large",
        "batches": batches,
        "top1_agreement_ratio": round(float((l32 == l8).float().mean()), 5),
        "max_abs_prob_diff": float((p32 - p8).abs().max()),
        "agreement_samples": agreement_samples,
        "iters": iters,
        "threads": torch.get_num_threads(),
    }
