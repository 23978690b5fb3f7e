"""What a python-backend model instance learns from Triton's `initialize(args)`: its config
parameters and the torch device it should use. Pure (no Triton import) so it is unit-tested."""

from __future__ import annotations

import json
import zlib


def model_config(args: dict) -> dict:
    cfg = args["model_config"]
    return json.loads(cfg) if isinstance(cfg, str) else cfg


def parameter(args: dict, key: str, default: str | None = None) -> str | None:
    """A string parameter of the model config (`parameters { key: ... value { string_value } }`)."""
    entry = model_config(args).get("parameters", {}).get(key)
    return entry.get("string_value", default) if entry else default


def int_parameter(args: dict, key: str, default: int) -> int:
    raw = parameter(args, key)
    try:
        return int(raw) if raw not in (None, "") else default
    except ValueError as exc:
        raise ValueError(f"model parameter {key}={raw!r} is not an integer") from exc


def torch_device(args: dict, *, cuda_available: bool, cpu_only: bool = False) -> str:
    """`cuda:<device_id>` for a KIND_GPU instance on a machine with CUDA, else `cpu`."""
    if cpu_only or args.get("model_instance_kind") != "GPU" or not cuda_available:
        return "cpu"
    return f"cuda:{int(args.get('model_instance_device_id', 0))}"


def instance_seed(args: dict) -> int:
    """A stable per-instance seed (fault RNG): instances do not fail in lockstep."""
    return zlib.crc32(str(args.get("model_instance_name", args.get("model_name", ""))).encode())


def engine_label(args: dict) -> str:
    """Index of this instance within the model ("chat-lm_0_1" -> "1"), used like vLLM's `engine`
    label: each instance runs its own engine, and gauges of two engines must not overwrite
    each other in one series."""
    name = str(args.get("model_instance_name", ""))
    suffix = name.rpartition("_")[2]
    return suffix if suffix.isdigit() else (name or "0")
