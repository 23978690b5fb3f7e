"""Render the Triton model repository a replica serves.

One source of truth per model: `model_config_json()` returns the model config as the JSON
dict Triton's model load API accepts (`load_model(name, config=json.dumps(d))`, used for live
instance-count changes and for switching the response cache off); `config_pbtxt()` prints the
same dict as protobuf text for config.pbtxt, so the two cannot drift. `render_repository()`
writes `<dest>/<model>/config.pbtxt` and `<dest>/<model>/1/model.py` (copied from
serving/model_repository/<model>/1/model.py, a thin shim into serving.models).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Literal

MODEL_NAMES = ("classifier-small", "classifier-large", "classifier-large-int8", "chat-lm")
CLASSIFIER_VARIANTS = {
    "classifier-small": "small",
    "classifier-large": "large",
    "classifier-large-int8": "large-int8",
}
TEMPLATE_DIR = Path(__file__).resolve().parent / "model_repository"

CLASSIFIER_MAX_BATCH_SIZE = 64
CLASSIFIER_QUEUE_DELAY_US = 200  # dynamic batcher wait for a fuller batch (microseconds)
FEATURES = 64
CLASSES = 10
# Defaults mirror controlplane FleetConfig.chat_* (serving does not import the control plane).
CHAT_MAX_RUNNING_DEFAULT = 8
CHAT_KV_CACHE_TOKENS_DEFAULT = 4096
MAX_INSTANCE_COUNT = 32

Device = Literal["cpu", "gpu"]


def _check_name(name: str) -> None:
    if name not in MODEL_NAMES:
        raise ValueError(f"unknown model {name!r}; known models: {', '.join(MODEL_NAMES)}")


def _params(**values: object) -> dict:
    return {k: {"string_value": str(v)} for k, v in values.items()}


def model_config_json(
    name: str,
    *,
    device: Device,
    instance_count: int,
    cache_enabled: bool = True,
    chat_max_running: int = CHAT_MAX_RUNNING_DEFAULT,
    chat_kv_cache_tokens: int = CHAT_KV_CACHE_TOKENS_DEFAULT,
) -> dict:
    """Full config of `name` as Triton's JSON model config (protobuf JSON mapping).

    `device="gpu"` gives KIND_GPU instances, except classifier-large-int8, whose dynamic-quantized
    kernels run on CPU only. `cache_enabled` toggles the response cache of the classifiers
    (chat-lm is decoupled: Triton has no response cache for it).
    """
    _check_name(name)
    if device not in ("cpu", "gpu"):
        raise ValueError(f"device={device!r}; allowed: 'cpu', 'gpu'")
    if not 1 <= instance_count <= MAX_INSTANCE_COUNT:
        raise ValueError(f"instance_count={instance_count} outside 1..{MAX_INSTANCE_COUNT}")
    kind = "KIND_GPU" if device == "gpu" and name != "classifier-large-int8" else "KIND_CPU"
    config: dict = {"name": name, "backend": "python"}
    if name in CLASSIFIER_VARIANTS:
        config.update(
            max_batch_size=CLASSIFIER_MAX_BATCH_SIZE,
            input=[{"name": "features", "data_type": "TYPE_FP32", "dims": [FEATURES]}],
            output=[
                {"name": "probabilities", "data_type": "TYPE_FP32", "dims": [CLASSES]},
                {"name": "label", "data_type": "TYPE_INT64", "dims": [1]},
            ],
            instance_group=[{"kind": kind, "count": instance_count}],
            dynamic_batching={"max_queue_delay_microseconds": CLASSIFIER_QUEUE_DELAY_US},
            response_cache={"enable": bool(cache_enabled)},
            parameters=_params(variant=CLASSIFIER_VARIANTS[name]),
        )
        return config
    if chat_max_running < 1 or chat_kv_cache_tokens < 2:
        raise ValueError(
            f"chat_max_running={chat_max_running} must be >= 1, chat_kv_cache_tokens={chat_kv_cache_tokens} >= 2"
        )
    config.update(
        max_batch_size=0,
        model_transaction_policy={"decoupled": True},
        input=[
            {"name": "input_ids", "data_type": "TYPE_INT32", "dims": [-1]},
            {"name": "max_tokens", "data_type": "TYPE_INT32", "dims": [1]},
        ],
        output=[
            {"name": "token_id", "data_type": "TYPE_INT32", "dims": [1]},
            {"name": "text_output", "data_type": "TYPE_STRING", "dims": [1]},
        ],
        instance_group=[{"kind": kind, "count": instance_count}],
        parameters=_params(max_running=chat_max_running, kv_cache_tokens=chat_kv_cache_tokens),
    )
    return config


# --- protobuf text ------------------------------------------------------------------------
_ENUM_KEYS = {"data_type", "kind"}  # printed bare (enum names), not quoted
_MAP_KEYS = {"parameters"}  # map<string, message>: one entry block per key


def _scalar(key: str, value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if key in _ENUM_KEYS:
        return str(value)
    return json.dumps(str(value))


def _lines(d: dict, indent: str) -> list[str]:
    out: list[str] = []
    for key, value in d.items():
        if key in _MAP_KEYS:
            for k, v in value.items():
                out.append(f"{indent}{key} {{")
                out.append(f"{indent}  key: {json.dumps(k)}")
                out.append(f"{indent}  value {{")
                out += _lines(v, indent + "    ")
                out.append(f"{indent}  }}")
                out.append(f"{indent}}}")
        elif isinstance(value, dict):
            out.append(f"{indent}{key} {{")
            out += _lines(value, indent + "  ")
            out.append(f"{indent}}}")
        elif isinstance(value, list) and value and isinstance(value[0], dict):
            for item in value:  # repeated message: one block per element
                out.append(f"{indent}{key} {{")
                out += _lines(item, indent + "  ")
                out.append(f"{indent}}}")
        elif isinstance(value, list):
            out.append(f"{indent}{key}: [{', '.join(_scalar(key, v) for v in value)}]")
        else:
            out.append(f"{indent}{key}: {_scalar(key, value)}")
    return out


def config_pbtxt(config: dict) -> str:
    """The JSON model config printed as config.pbtxt (protobuf text format)."""
    return "\n".join(_lines(config, "")) + "\n"


def render_repository(
    dest: Path,
    models: Sequence[str],
    *,
    device: Device,
    instance_count: int,
    chat_max_running: int = CHAT_MAX_RUNNING_DEFAULT,
    chat_kv_cache_tokens: int = CHAT_KV_CACHE_TOKENS_DEFAULT,
    cache_enabled: bool = True,
    instance_counts: Mapping[str, int] | None = None,
) -> Path:
    """Write a loadable model repository for `models` under dest; returns dest.

    `instance_counts` overrides `instance_count` per model (a replacement replica starts with
    the counts its predecessor had)."""
    for name in models:
        _check_name(name)  # validate all before writing anything
    dest = Path(dest)
    for name in models:
        config = model_config_json(
            name,
            device=device,
            instance_count=(instance_counts or {}).get(name, instance_count),
            cache_enabled=cache_enabled,
            chat_max_running=chat_max_running,
            chat_kv_cache_tokens=chat_kv_cache_tokens,
        )
        version_dir = dest / name / "1"
        version_dir.mkdir(parents=True, exist_ok=True)
        (dest / name / "config.pbtxt").write_text(config_pbtxt(config))
        src, dst = TEMPLATE_DIR / name / "1" / "model.py", version_dir / "model.py"
        if src.resolve() != dst.resolve():  # rendering onto the templates refreshes configs only
            shutil.copyfile(src, dst)
    return dest
