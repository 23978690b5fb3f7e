# One image for every fleetpilot role: the control plane (`up`), the router, the dashboards and,
# through the nvidia-pytriton wheel's tritonserver binary, local replicas (`fleet up`).
FROM python:3.11-slim-bookworm
RUN apt-get update && apt-get install -y --no-install-recommends make libgomp1 \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY . /app
# CPU build of torch; use an NVIDIA CUDA base image and a CUDA torch wheel for GPU replicas.
RUN pip install --no-cache-dir --extra-index-url https://download.pytorch.org/whl/cpu -e . \
    && useradd -m fleetpilot && chown -R fleetpilot /app \
    && mkdir -p /data && chown fleetpilot /data
USER fleetpilot
# /data: embedded store (when no store.dsn), fleet state, spool, logs. A named volume mounted
# here starts owned by the fleetpilot user.
ENV FLEETPILOT_DATA_DIR=/data FLEETPILOT_BIND_HOST=0.0.0.0 PYTHONUNBUFFERED=1
VOLUME ["/data"]
EXPOSE 7070 7000 8501
ENTRYPOINT ["fleetpilot"]
CMD ["up"]
