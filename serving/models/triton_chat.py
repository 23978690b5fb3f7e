"""Python-backend model for chat-lm (decoupled): execute() hands each request to the
continuous-batching ChatEngine running in a background thread and returns None; the engine
streams one response per token through the request's response sender, the last one flagged
FINAL. Publishes vLLM-named metrics on Triton's metrics port, labelled model_name="chat-lm"
and engine="<instance index>" (as vLLM labels its data-parallel engines): sum over `engine`
for the model's totals.
"""

from __future__ import annotations

import numpy as np
import torch
import triton_python_backend_utils as pb_utils

from serving.models.chat_lm import ChatEngine, EngineMetrics, GenRequest, build_chat_lm
from serving.models.error_metrics import ErrorCounter
from serving.models.fault_injector import FaultInjector
from serving.models.instance import engine_label, instance_seed, int_parameter, torch_device

MODEL_LABEL = "chat-lm"  # vLLM labels its metrics with model_name
FINAL = pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL

# vLLM's buckets, extended downwards: a CPU token of this tiny model takes about a millisecond.
TTFT_BUCKETS_S = [
    0.001,
    0.0025,
    0.005,
    0.01,
    0.02,
    0.04,
    0.06,
    0.08,
    0.1,
    0.25,
    0.5,
    0.75,
    1.0,
    2.5,
    5.0,
    10.0,
]
TPOT_BUCKETS_S = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 1.0, 2.5]
E2E_BUCKETS_S = [0.01, 0.025, 0.05, 0.1, 0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0]


class VllmMetrics(EngineMetrics):
    """EngineMetrics on pb_utils custom metrics. The families stay referenced on self: a
    garbage-collected MetricFamily invalidates its metrics."""

    def __init__(self, labels: dict[str, str]):
        fam = pb_utils.MetricFamily
        self.families = {
            "prompt": fam("vllm:prompt_tokens_total", "Prompt tokens processed.", kind=fam.COUNTER),
            "generation": fam("vllm:generation_tokens_total", "Generated tokens.", kind=fam.COUNTER),
            "ttft": fam("vllm:time_to_first_token_seconds", "Time to first token (s).", kind=fam.HISTOGRAM),
            "tpot": fam("vllm:time_per_output_token_seconds", "Inter-token latency (s).", kind=fam.HISTOGRAM),
            "e2e": fam(
                "vllm:e2e_request_latency_seconds",
                "Request latency, arrival to last token (s).",
                kind=fam.HISTOGRAM,
            ),
            "running": fam("vllm:num_requests_running", "Sequences being decoded.", kind=fam.GAUGE),
            "waiting": fam("vllm:num_requests_waiting", "Requests queued for admission.", kind=fam.GAUGE),
            "kv": fam(
                "vllm:kv_cache_usage_perc", "KV cache reserved / capacity (ratio 0-1).", kind=fam.GAUGE
            ),
        }
        f = self.families
        self._prompt = f["prompt"].Metric(labels=labels)
        self._generation = f["generation"].Metric(labels=labels)
        self._ttft = f["ttft"].Metric(labels=labels, buckets=TTFT_BUCKETS_S)
        self._tpot = f["tpot"].Metric(labels=labels, buckets=TPOT_BUCKETS_S)
        self._e2e = f["e2e"].Metric(labels=labels, buckets=E2E_BUCKETS_S)
        self._running = f["running"].Metric(labels=labels)
        self._waiting = f["waiting"].Metric(labels=labels)
        self._kv = f["kv"].Metric(labels=labels)

    def prompt_tokens(self, n: int) -> None:
        self._prompt.increment(n)

    def generation_tokens(self, n: int) -> None:
        self._generation.increment(n)

    def time_to_first_token(self, seconds: float) -> None:
        self._ttft.observe(seconds)

    def time_per_output_token(self, seconds: float) -> None:
        self._tpot.observe(seconds)

    def e2e_request_latency(self, seconds: float) -> None:
        self._e2e.observe(seconds)

    def gauges(self, running: int, waiting: int, kv_usage_ratio: float) -> None:
        self._running.set(running)
        self._waiting.set(waiting)
        self._kv.set(kv_usage_ratio)


class TritonTokenSink:
    def __init__(self, sender):
        self.sender = sender

    def send_token(self, token_id: int, text: str, final: bool) -> bool:
        if self.sender.is_cancelled():
            self.sender.send(flags=FINAL)
            return False
        response = pb_utils.InferenceResponse(
            output_tensors=[
                pb_utils.Tensor("token_id", np.array([token_id], dtype=np.int32)),
                pb_utils.Tensor("text_output", np.array([text.encode()], dtype=np.object_)),
            ]
        )
        self.sender.send(response, flags=FINAL if final else 0)
        return True

    def send_error(self, message: str) -> None:
        self.sender.send(pb_utils.InferenceResponse(error=pb_utils.TritonError(message)), flags=FINAL)


class TritonPythonModel:
    def initialize(self, args: dict) -> None:
        self.device = torch_device(args, cuda_available=torch.cuda.is_available())
        self.metrics = VllmMetrics({"model_name": MODEL_LABEL, "engine": engine_label(args)})
        self.engine = ChatEngine(
            build_chat_lm(self.device),
            max_running=int_parameter(args, "max_running", 8),
            kv_cache_tokens=int_parameter(args, "kv_cache_tokens", 4096),
            device=self.device,
            metrics=self.metrics,
        )
        self.faults = FaultInjector(seed=instance_seed(args)).start()
        self.errors = ErrorCounter(pb_utils, args["model_name"], engine_label(args))
        self.engine.model.generate([1, 2, 3], 2, self.device)  # warm up kernels
        self.engine.start()

    def execute(self, requests: list) -> None:
        faults = self.faults.poll()
        for request in requests:
            sink = TritonTokenSink(request.get_response_sender())
            error = self.faults.error_for(faults)
            if error:
                sink.send_error(error)
                self.errors.increment()
                continue
            try:
                prompt = pb_utils.get_input_tensor_by_name(request, "input_ids").as_numpy().reshape(-1)
                max_tokens = int(
                    pb_utils.get_input_tensor_by_name(request, "max_tokens").as_numpy().reshape(-1)[0]
                )
            except (AttributeError, IndexError):  # a missing input yields None
                sink.send_error("chat-lm needs inputs input_ids (INT32 [-1]) and max_tokens (INT32 [1])")
                continue
            req = GenRequest([int(t) for t in prompt], max_tokens, sink)
            delay_ms = faults.added_latency_ms + faults.added_latency_per_item_ms
            if delay_ms > 0:  # delay admission without blocking other requests
                req.not_before_s = self.engine.clock() + delay_ms / 1000.0
            self.engine.submit(req)
        return None

    def finalize(self) -> None:
        self.engine.stop()
        self.faults.stop()
