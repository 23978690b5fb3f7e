"""GPU telemetry: dcgm-exporter is just another exposition target (units normalised by
collectors.families); NVML (nvidia-ml-py) samples local GPUs when the package and a GPU exist.

NVML samples use the `nvml_` prefix so that a host scraped both ways is not counted twice in
fleet sums; families.GPU_UTILIZATION & co. list the equivalent names for queries.
"""

from __future__ import annotations

import logging
import socket

from collectors.targets import Target
from controlplane.config import StaticTarget

log = logging.getLogger(__name__)

DCGM_PORT = 9400


def dcgm_target(
    host: str, name: str | None = None, zone: str = "", region: str = "", port: int = DCGM_PORT
) -> Target:
    return Target(name or f"dcgm@{host}", f"http://{host}:{port}/metrics", None, zone, region, "dcgm")


def dcgm_static_target(host: str, **kw) -> StaticTarget:
    t = dcgm_target(host, **kw)
    return StaticTarget(name=t.name, metrics_url=t.metrics_url, kind="dcgm", zone=t.zone, region=t.region)


class NvmlSampler:
    """Reads utilisation, memory, power and energy of every local GPU. `open()` returns None when NVML
    is unusable (package missing, no driver, no GPU): the collector then simply has no NVML target."""

    def __init__(self, nvml_module, handles: list, target_name: str):
        self._nvml = nvml_module
        self._handles = handles
        self.target_name = target_name

    @classmethod
    def open(cls) -> NvmlSampler | None:
        try:
            import pynvml  # noqa: PLC0415 - optional: provided by the nvidia-ml-py package
        except ImportError:
            log.info("nvidia-ml-py is not installed; NVML sampling skipped")
            return None
        try:
            pynvml.nvmlInit()
            handles = [pynvml.nvmlDeviceGetHandleByIndex(i) for i in range(pynvml.nvmlDeviceGetCount())]
        except Exception as exc:  # noqa: BLE001 - any NVML error means "no local GPU to sample"
            log.info("NVML unavailable (%s); NVML sampling skipped", exc)
            return None
        if not handles:
            return None
        return cls(pynvml, handles, f"nvml@{socket.gethostname()}")

    def sample(self) -> list[tuple[str, dict[str, str], str, float]]:
        """(metric, labels, kind, value) per GPU, in stored units (ratio, bytes, W, J)."""
        n = self._nvml
        out: list[tuple[str, dict[str, str], str, float]] = []
        for i, h in enumerate(self._handles):
            try:
                uuid = n.nvmlDeviceGetUUID(h)
                uuid = uuid.decode() if isinstance(uuid, bytes) else str(uuid)
                labels = {"gpu_uuid": uuid, "gpu": str(i)}
                util = n.nvmlDeviceGetUtilizationRates(h)
                mem = n.nvmlDeviceGetMemoryInfo(h)
                out += [
                    ("nvml_gpu_utilization", labels, "gauge", util.gpu / 100.0),
                    ("nvml_gpu_memory_used_bytes", labels, "gauge", float(mem.used)),
                    ("nvml_gpu_memory_total_bytes", labels, "gauge", float(mem.total)),
                    (
                        "nvml_gpu_power_usage",
                        labels,
                        "gauge",
                        n.nvmlDeviceGetPowerUsage(h) / 1000.0,
                    ),  # mW -> W
                    ("nvml_gpu_power_limit", labels, "gauge", n.nvmlDeviceGetEnforcedPowerLimit(h) / 1000.0),
                    (
                        "nvml_energy_consumption",
                        labels,
                        "counter",
                        n.nvmlDeviceGetTotalEnergyConsumption(h) / 1000.0,
                    ),  # mJ -> J
                ]
            except Exception as exc:  # noqa: BLE001 - one bad GPU must not hide the others
                log.warning("NVML read of GPU %d failed: %s", i, exc)
        return out
