"""Triton python-backend entry point for chat-lm; the code lives in serving/models/triton_chat.py."""

import os
import sys

# The backend stub runs this file in isolated mode (PYTHONPATH is ignored): put the project
# and its site-packages on sys.path first (FLEETPILOT_MODEL_PYTHONPATH, set by triton_env).
sys.path[:0] = os.environ["FLEETPILOT_MODEL_PYTHONPATH"].split(":")

from serving.models.triton_chat import TritonPythonModel  # noqa: E402,F401
