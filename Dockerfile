# One image for every fleetpilot role: the nvidia-pytriton wheel carries the tritonserver binary,
# so the same image runs replicas (`fleet up`), the router and the control plane.
FROM python:3.11-slim-bookworm
RUN apt-get update && apt-get install -y --no-install-recommends make libgomp1 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY . /app
# CPU build of torch; use an NVIDIA CUDA base image and a CUDA torch wheel for GPU replicas.
RUN pip install --no-cache-dir --extra-index-url https://download.pytorch.org/whl/cpu -e . \
    && useradd -m fleetpilot && chown -R fleetpilot /app
USER fleetpilot
ENV FLEETPILOT_DATA_DIR=/data FLEETPILOT_BIND_HOST=0.0.0.0
ENTRYPOINT ["fleetpilot"]
