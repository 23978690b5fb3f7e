"""Model repository rendering: config.pbtxt and the load-API JSON are the same config."""

from __future__ import annotations

import json

import pytest
from google.protobuf import json_format, text_format
from tritonclient.grpc import model_config_pb2

from serving.model_repo import (
    MODEL_NAMES,
    TEMPLATE_DIR,
    config_pbtxt,
    model_config_json,
    render_repository,
)
from serving.models.instance import engine_label, int_parameter, parameter, torch_device


def _parsed_pbtxt(text: str) -> model_config_pb2.ModelConfig:
    return text_format.Parse(text, model_config_pb2.ModelConfig())


def _parsed_json(config: dict) -> model_config_pb2.ModelConfig:
    # Round trip through a JSON string, as load_model(config=json.dumps(...)) sends it.
    return json_format.ParseDict(json.loads(json.dumps(config)), model_config_pb2.ModelConfig())


@pytest.mark.parametrize("name", MODEL_NAMES)
@pytest.mark.parametrize("device", ["cpu", "gpu"])
@pytest.mark.parametrize("cache_enabled", [True, False])
def test_pbtxt_and_json_are_the_same_config(name, device, cache_enabled):
    config = model_config_json(name, device=device, instance_count=3, cache_enabled=cache_enabled)
    assert _parsed_pbtxt(config_pbtxt(config)) == _parsed_json(config)


@pytest.mark.parametrize(
    "name,device,kind",
    [
        ("classifier-small", "cpu", model_config_pb2.ModelInstanceGroup.KIND_CPU),
        ("classifier-small", "gpu", model_config_pb2.ModelInstanceGroup.KIND_GPU),
        ("chat-lm", "gpu", model_config_pb2.ModelInstanceGroup.KIND_GPU),
        ("classifier-large-int8", "gpu", model_config_pb2.ModelInstanceGroup.KIND_CPU),  # CPU-only kernels
    ],
)
def test_instance_kind_follows_device(name, device, kind):
    cfg = _parsed_json(model_config_json(name, device=device, instance_count=2))
    assert cfg.instance_group[0].kind == kind and cfg.instance_group[0].count == 2


def test_shared_io_contract():
    small = _parsed_json(model_config_json("classifier-small", device="cpu", instance_count=1))
    assert small.max_batch_size == 64 and small.response_cache.enable
    assert [(i.name, i.data_type, list(i.dims)) for i in small.input] == [
        ("features", model_config_pb2.TYPE_FP32, [64])
    ]
    assert [(o.name, o.data_type, list(o.dims)) for o in small.output] == [
        ("probabilities", model_config_pb2.TYPE_FP32, [10]),
        ("label", model_config_pb2.TYPE_INT64, [1]),
    ]
    chat = _parsed_json(model_config_json("chat-lm", device="cpu", instance_count=1))
    assert chat.model_transaction_policy.decoupled and chat.max_batch_size == 0
    assert [(i.name, i.data_type, list(i.dims)) for i in chat.input] == [
        ("input_ids", model_config_pb2.TYPE_INT32, [-1]),
        ("max_tokens", model_config_pb2.TYPE_INT32, [1]),
    ]
    assert [(o.name, o.data_type, list(o.dims)) for o in chat.output] == [
        ("token_id", model_config_pb2.TYPE_INT32, [1]),
        ("text_output", model_config_pb2.TYPE_STRING, [1]),
    ]


def test_cache_off_disables_the_response_cache():
    cfg = model_config_json("classifier-large", device="cpu", instance_count=1, cache_enabled=False)
    assert cfg["response_cache"] == {"enable": False}
    assert "response_cache" not in model_config_json("chat-lm", device="cpu", instance_count=1)


def test_model_py_reads_the_parameters_the_renderer_wrote():
    cfg = model_config_json(
        "chat-lm", device="cpu", instance_count=1, chat_max_running=3, chat_kv_cache_tokens=777
    )
    args = {"model_config": json.dumps(cfg), "model_name": "chat-lm"}  # as Triton passes it
    assert int_parameter(args, "max_running", 8) == 3
    assert int_parameter(args, "kv_cache_tokens", 4096) == 777
    assert int_parameter(args, "absent", 5) == 5
    small = {
        "model_config": json.dumps(model_config_json("classifier-large-int8", device="cpu", instance_count=1))
    }
    assert parameter(small, "variant") == "large-int8"


def test_render_writes_config_and_model_py(tmp_path):
    out = render_repository(
        tmp_path / "repo",
        MODEL_NAMES,
        device="cpu",
        instance_count=2,
        chat_max_running=4,
        chat_kv_cache_tokens=512,
    )
    for name in MODEL_NAMES:
        text = (out / name / "config.pbtxt").read_text()
        assert _parsed_pbtxt(text) == _parsed_json(
            model_config_json(
                name, device="cpu", instance_count=2, chat_max_running=4, chat_kv_cache_tokens=512
            )
        )
        model_py = (out / name / "1" / "model.py").read_text()
        assert 'sys.path[:0] = os.environ["FLEETPILOT_MODEL_PYTHONPATH"].split(":")' in model_py
        assert "import TritonPythonModel" in model_py


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_committed_template_configs_match_the_default_render(name):
    committed = (TEMPLATE_DIR / name / "config.pbtxt").read_text()
    assert committed == config_pbtxt(model_config_json(name, device="cpu", instance_count=1))


def test_unknown_model_is_rejected_before_anything_is_written(tmp_path):
    with pytest.raises(
        ValueError, match="'bert'.*classifier-small, classifier-large, classifier-large-int8, chat-lm"
    ):
        render_repository(tmp_path / "repo", ["classifier-small", "bert"], device="cpu", instance_count=1)
    assert not (tmp_path / "repo").exists()


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"device": "tpu", "instance_count": 1}, "device='tpu'"),
        ({"device": "cpu", "instance_count": 0}, "instance_count=0"),
        ({"device": "cpu", "instance_count": 1, "chat_max_running": 0}, "chat_max_running=0"),
    ],
)
def test_bad_arguments_are_rejected(kwargs, message):
    with pytest.raises(ValueError, match=message):
        model_config_json("chat-lm", **kwargs)


@pytest.mark.parametrize(
    "args,cuda,cpu_only,expected",
    [
        ({"model_instance_kind": "GPU", "model_instance_device_id": "1"}, True, False, "cuda:1"),
        ({"model_instance_kind": "GPU", "model_instance_device_id": "0"}, False, False, "cpu"),
        ({"model_instance_kind": "CPU", "model_instance_device_id": "0"}, True, False, "cpu"),
        ({"model_instance_kind": "GPU", "model_instance_device_id": "0"}, True, True, "cpu"),
    ],
)
def test_torch_device(args, cuda, cpu_only, expected):
    assert torch_device(args, cuda_available=cuda, cpu_only=cpu_only) == expected


@pytest.mark.parametrize(
    "instance,label", [("chat-lm_0_1", "1"), ("chat-lm_0_0", "0"), ("odd", "odd"), ("", "0")]
)
def test_engine_label(instance, label):
    assert engine_label({"model_instance_name": instance}) == label


def test_per_model_instance_counts_override_the_default(tmp_path):
    render_repository(
        tmp_path,
        ["classifier-small", "chat-lm"],
        device="cpu",
        instance_count=1,
        instance_counts={"chat-lm": 3},
    )
    small = (tmp_path / "classifier-small" / "config.pbtxt").read_text()
    chat = (tmp_path / "chat-lm" / "config.pbtxt").read_text()
    assert "count: 1" in small and "count: 3" not in small
    assert "count: 3" in chat
