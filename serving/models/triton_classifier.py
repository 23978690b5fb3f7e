"""Python-backend model for classifier-small / classifier-large / classifier-large-int8.

Imported by serving/model_repository/classifier-*/1/model.py inside the Triton stub (only
there is `triton_python_backend_utils` importable). One execute() call gets the requests the
dynamic batcher grouped; they run as one forward pass.
"""

from __future__ import annotations

import numpy as np
import torch
import triton_python_backend_utils as pb_utils

from serving.models.classifier import build_classifier, classify
from serving.models.error_metrics import ErrorCounter
from serving.models.fault_injector import FaultInjector
from serving.models.instance import engine_label, instance_seed, parameter, torch_device

VARIANT_BY_MODEL = {
    "classifier-small": "small",
    "classifier-large": "large",
    "classifier-large-int8": "large-int8",
}


class TritonPythonModel:
    def initialize(self, args: dict) -> None:
        self.variant = parameter(args, "variant") or VARIANT_BY_MODEL[args["model_name"]]
        self.device = torch_device(
            args, cuda_available=torch.cuda.is_available(), cpu_only=self.variant == "large-int8"
        )
        self.model = build_classifier(self.variant, self.device)
        self.faults = FaultInjector(seed=instance_seed(args)).start()
        self.errors = ErrorCounter(pb_utils, args["model_name"], engine_label(args))
        classify(self.model, torch.zeros(1, 64, device=self.device))  # warm up kernels

    def execute(self, requests: list) -> list:
        faults = self.faults.poll()
        self.faults.delay(faults, batch_size=len(requests))
        responses: list = [None] * len(requests)
        arrays, served = [], []
        for i, request in enumerate(requests):
            error = self.faults.error_for(faults)
            if error:
                responses[i] = pb_utils.InferenceResponse(error=pb_utils.TritonError(error))
                self.errors.increment()
                continue
            arrays.append(pb_utils.get_input_tensor_by_name(request, "features").as_numpy())
            served.append(i)
        if served:
            features = torch.from_numpy(np.concatenate(arrays)).to(self.device, torch.float32)
            probs, labels = classify(self.model, features)
            probs_np = probs.cpu().numpy().astype(np.float32)
            labels_np = labels.cpu().numpy().astype(np.int64).reshape(-1, 1)
            start = 0
            for i, arr in zip(served, arrays, strict=True):
                end = start + arr.shape[0]
                responses[i] = pb_utils.InferenceResponse(
                    output_tensors=[
                        pb_utils.Tensor("probabilities", probs_np[start:end]),
                        pb_utils.Tensor("label", labels_np[start:end]),
                    ]
                )
                start = end
        return responses

    def finalize(self) -> None:
        self.faults.stop()
