"""Local fleet of real tritonserver replicas: start, stop, add, remove, replace, reconfigure.

Each replica is a tritonserver process in its own session (it outlives the CLI that started
it), with its own ports (3 per port slot), zone label, rendered model repository, log and
faults file under `<fleet_dir>/<name>/`. The fleet is recorded in the state file
(serving.fleet_state) so that later processes (router, collectors, control plane) find it.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from serving.faults import FAULTS_FILE_ENV, Faults, write_faults
from serving.fleet_state import FleetState, ReplicaRecord, lock_for, read_state, write_state
from serving.model_repo import model_config_json, render_repository
from serving.procs import http_ok, log_tail, pid_alive
from serving.triton_env import find_triton, triton_environment

PORTS_PER_SLOT = 3
CACHED_MODELS = ("classifier-small", "classifier-large", "classifier-large-int8")


class FleetError(RuntimeError):
    """A fleet operation failed; the message says which replica and why."""


class FleetRequestError(FleetError):
    """The request itself is wrong (unknown replica, model or zone, a value out of range): retrying will not help."""


class FleetUnavailable(FleetError):
    """A replica could not be reached: retrying later may help."""


@dataclass(frozen=True)
class FleetOptions:
    fleet_dir: Path
    state_path: Path
    host: str = "127.0.0.1"
    base_port: int = 8100
    zones: Sequence[str] = ("zone-a", "zone-b")
    region: str = "local"
    models: Sequence[str] = ("classifier-small", "classifier-large", "classifier-large-int8", "chat-lm")
    instance_count: int = 1
    device: Literal["auto", "cpu", "gpu"] = "auto"
    response_cache_size_bytes: int = 16 * 1024 * 1024
    ready_timeout_s: float = 180.0
    stop_timeout_s: float = 15.0
    tritonserver_path: Path | None = None
    chat_max_running: int = 8
    chat_kv_cache_tokens: int = 4096


@dataclass
class ReplicaStatus:
    record: ReplicaRecord
    state: str  # ready | starting | unready | exited
    detail: str = ""

    def to_json(self) -> dict:
        return {**self.record.to_json(), "state": self.state, "detail": self.detail}


@dataclass
class _Launch:
    record: ReplicaRecord
    process: subprocess.Popen | None = None
    error: str | None = None


def detect_device(requested: str) -> str:
    """'gpu' when asked for, or when auto and CUDA is usable; torch is imported only if a GPU device node exists."""
    if requested != "auto":
        return requested
    if not Path("/dev/nvidia0").exists() and not Path("/dev/nvidiactl").exists():
        return "cpu"
    try:
        import torch  # noqa: PLC0415 - slow import, only on machines with an NVIDIA device

        return "gpu" if torch.cuda.is_available() else "cpu"
    except Exception:  # noqa: BLE001 - any failure means no usable GPU
        return "cpu"


def port_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def pick_zone(zones: Sequence[str], existing: Sequence[ReplicaRecord]) -> str:
    """The zone with the fewest replicas; ties go to the zone listed first."""
    counts = {z: 0 for z in zones}
    for r in existing:
        if r.zone in counts:
            counts[r.zone] += 1
    return min(zones, key=lambda z: (counts[z], list(zones).index(z)))


class FleetManager:
    """Start and control local tritonserver replicas, recorded in the fleet state file."""

    def __init__(self, options: FleetOptions):
        self.opts = options
        # Popen handles of replicas started by this process, so that their exit is reaped.
        self._children: dict[int, subprocess.Popen] = {}
        self._device: str | None = None

    # --- queries ---------------------------------------------------------------------
    def state(self) -> FleetState:
        return read_state(self.opts.state_path)

    def status(self) -> list[ReplicaStatus]:
        out = []
        for rec in self.state().replicas:
            out.append(self._probe(rec))
        return out

    def _probe(self, rec: ReplicaRecord) -> ReplicaStatus:
        child = self._children.get(rec.pid or -1)
        if child is not None and child.poll() is not None:
            return ReplicaStatus(rec, "exited", f"exit code {child.returncode}")
        if not pid_alive(rec.pid):
            return ReplicaStatus(rec, "exited", "process not running")
        if http_ok(f"{rec.http_url}/v2/health/ready"):
            return ReplicaStatus(rec, "ready")
        if http_ok(f"{rec.http_url}/v2/health/live"):
            return ReplicaStatus(rec, "unready", "live but not ready")
        return ReplicaStatus(rec, "starting", "not answering yet")

    # --- lifecycle ---------------------------------------------------------------------
    def up(self, replicas: int) -> list[ReplicaRecord]:
        """Bring the fleet to at least `replicas` running replicas; return all of them once ready."""
        if replicas < 1:
            raise FleetRequestError(f"--replicas must be >= 1, got {replicas}")
        with lock_for(self.opts.state_path):
            state = self.state()
            dead = [r for r in state.replicas if not pid_alive(r.pid)]
            for rec in dead:  # leftovers of a crashed or rebooted fleet
                state.replicas.remove(rec)
            missing = replicas - len(state.replicas)
            launches = [self._launch(state) for _ in range(max(0, missing))]
            self._await_ready(launches, state)
            write_state(self.opts.state_path, state)
            return list(state.replicas)

    def add(self, zone: str | None = None) -> ReplicaRecord:
        with lock_for(self.opts.state_path):
            state = self.state()
            launch = self._launch(state, zone=zone)
            self._await_ready([launch], state)
            write_state(self.opts.state_path, state)
            return launch.record

    def remove(self, name: str) -> ReplicaRecord:
        with lock_for(self.opts.state_path):
            state = self.state()
            rec = self._require(state, name)
            self._stop(rec)
            state.replicas.remove(rec)
            write_state(self.opts.state_path, state)
            return rec

    def replace(self, name: str) -> ReplicaRecord:
        """Start a new replica in the same zone, wait until it is ready, then stop the old one."""
        with lock_for(self.opts.state_path):
            state = self.state()
            old = self._require(state, name)
            launch = self._launch(state, zone=old.zone, instance_counts=dict(old.instance_counts))
            self._await_ready([launch], state)
            state.replicas.remove(old)
            write_state(self.opts.state_path, state)  # new one visible before the old one stops
            self._stop(old)
            return launch.record

    def down(self) -> list[ReplicaRecord]:
        with lock_for(self.opts.state_path):
            state = self.state()
            for rec in state.replicas:
                self._signal(rec, signal.SIGTERM)
            deadline = time.monotonic() + self.opts.stop_timeout_s
            for rec in state.replicas:
                self._wait_exit(rec, deadline)
            stopped = list(state.replicas)
            state.replicas.clear()
            write_state(self.opts.state_path, state)
            return stopped

    # --- live reconfiguration -------------------------------------------------------------
    def set_instance_count(self, name: str, model: str, count: int) -> ReplicaRecord:
        """Change a model's instance count on a running replica through Triton's model load API."""
        if count < 1 or count > 64:
            raise FleetRequestError(f"instance count must be in 1..64, got {count}")
        with lock_for(self.opts.state_path):
            state = self.state()
            rec = self._require(state, name)
            if model not in rec.models:
                raise FleetRequestError(
                    f"replica {name} does not serve model {model!r}; it serves {rec.models}"
                )
            self._load_model(rec, model, count, cache_enabled=not rec.cache_off)
            rec.instance_counts[model] = count
            write_state(self.opts.state_path, state)
            return rec

    def set_faults(self, name: str, faults: Faults) -> ReplicaRecord:
        """Switch faults on a running replica; cache_off reloads the cached models without a restart."""
        with lock_for(self.opts.state_path):
            state = self.state()
            rec = self._require(state, name)
            try:
                write_faults(rec.faults_path, faults)
            except ValueError as exc:
                raise FleetRequestError(f"invalid fault for {name}: {exc}") from None
            if faults.cache_off != rec.cache_off:
                for model in (m for m in rec.models if m in CACHED_MODELS):
                    count = rec.instance_counts.get(model, self.opts.instance_count)
                    self._load_model(rec, model, count, cache_enabled=not faults.cache_off)
                rec.cache_off = faults.cache_off
            write_state(self.opts.state_path, state)
            return rec

    # --- internals ----------------------------------------------------------------------
    @property
    def device(self) -> str:
        if self._device is None:
            self._device = detect_device(self.opts.device)
        return self._device

    def _require(self, state: FleetState, name: str) -> ReplicaRecord:
        rec = state.by_name(name)
        if rec is None:
            names = [r.name for r in state.replicas] or ["(none)"]
            raise FleetRequestError(f"no replica named {name!r}; the fleet has: {', '.join(names)}")
        return rec

    def _free_slot(self, state: FleetState) -> int:
        used = {r.slot for r in state.replicas}
        for slot in range(0, 1000):
            if slot in used:
                continue
            base = self.opts.base_port + PORTS_PER_SLOT * slot
            if base + PORTS_PER_SLOT > 65535:
                break
            if all(port_free(self.opts.host, base + i) for i in range(PORTS_PER_SLOT)):
                return slot
        raise FleetError(f"no free port slot of {PORTS_PER_SLOT} ports from {self.opts.base_port} upward")

    def _launch(
        self, state: FleetState, zone: str | None = None, instance_counts: dict | None = None
    ) -> _Launch:
        """Render the repository and start one tritonserver; it is added to `state` immediately."""
        if zone is not None and zone not in self.opts.zones:
            raise FleetRequestError(f"unknown zone {zone!r}; configured zones: {', '.join(self.opts.zones)}")
        slot = self._free_slot(state)
        name = f"replica-{slot}"
        workdir = self.opts.fleet_dir / name
        workdir.mkdir(parents=True, exist_ok=True)
        base = self.opts.base_port + PORTS_PER_SLOT * slot
        counts = {m: self.opts.instance_count for m in self.opts.models}
        counts.update(instance_counts or {})
        rec = ReplicaRecord(
            name=name,
            zone=zone or pick_zone(self.opts.zones, state.replicas),
            region=self.opts.region,
            slot=slot,
            host=self.opts.host,
            http_port=base,
            grpc_port=base + 1,
            metrics_port=base + 2,
            pid=None,
            models=list(self.opts.models),
            workdir=str(workdir),
            device=self.device,
            instance_counts=counts,
        )
        rec.faults_path.unlink(missing_ok=True)  # a new replica starts healthy
        repo = render_repository(
            workdir / "model_repository",
            self.opts.models,
            device=rec.device,
            instance_count=self.opts.instance_count,
            instance_counts=counts,  # a replacement keeps its predecessor's live counts
            chat_max_running=self.opts.chat_max_running,
            chat_kv_cache_tokens=self.opts.chat_kv_cache_tokens,
        )
        install = find_triton(self.opts.fleet_dir, self.opts.tritonserver_path)
        args = [
            str(install.binary),
            f"--model-repository={repo}",
            f"--backend-directory={install.backend_dir}",
            f"--http-address={rec.host}",
            f"--grpc-address={rec.host}",
            f"--metrics-address={rec.host}",
            f"--http-port={rec.http_port}",
            f"--grpc-port={rec.grpc_port}",
            f"--metrics-port={rec.metrics_port}",
            # Latency histograms (nv_inference_first_response_histogram_ms): p99 per replica and
            # model, which the capacity fit, the SLO panels and the routing policy read.
            "--metrics-config=histogram_latencies=true",
            "--model-control-mode=explicit",
            "--strict-readiness=true",
            "--log-verbose=0",
            *[f"--load-model={m}" for m in self.opts.models],
        ]
        if install.cache_dir is not None and self.opts.response_cache_size_bytes > 0:
            args += [
                f"--cache-directory={install.cache_dir}",
                f"--cache-config=local,size={self.opts.response_cache_size_bytes}",
            ]
        env = triton_environment(install, {FAULTS_FILE_ENV: str(rec.faults_path)})
        log = open(rec.log_path, "ab")  # noqa: SIM115 - handed to the child
        try:
            proc = subprocess.Popen(
                args,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                cwd=workdir,
            )
        finally:
            log.close()
        rec.pid = proc.pid
        self._children[proc.pid] = proc
        state.replicas.append(rec)
        return _Launch(rec, proc)

    def _await_ready(self, launches: list[_Launch], state: FleetState) -> None:
        """Wait for every launch; on any failure stop the failed ones, drop them and raise."""
        deadline = time.monotonic() + self.opts.ready_timeout_s
        pending = list(launches)
        while pending and time.monotonic() < deadline:
            for launch in list(pending):
                rec = launch.record
                if launch.process is not None and launch.process.poll() is not None:
                    launch.error = f"exited with code {launch.process.returncode} during start-up"
                    pending.remove(launch)
                elif http_ok(f"{rec.http_url}/v2/health/ready", timeout_s=0.5):
                    pending.remove(launch)
            if pending:
                time.sleep(0.25)
        for launch in pending:
            launch.error = f"not ready after {self.opts.ready_timeout_s:.0f} s"
        failed = [launch for launch in launches if launch.error]
        for launch in failed:
            self._stop(launch.record)
            state.replicas.remove(launch.record)
        if failed:
            write_state(self.opts.state_path, state)
            msgs = [
                f"replica {f.record.name} {f.error}; log {f.record.log_path}:\n{log_tail(f.record.log_path, errors_first=True)}"
                for f in failed
            ]
            raise FleetError("\n".join(msgs))

    def _signal(self, rec: ReplicaRecord, sig: int) -> None:
        if rec.pid and pid_alive(rec.pid):
            try:
                os.killpg(rec.pid, sig)  # the replica leads its own session: stubs go too
            except ProcessLookupError:
                pass
            except PermissionError:
                os.kill(rec.pid, sig)

    def _wait_exit(self, rec: ReplicaRecord, deadline: float) -> None:
        child = self._children.pop(rec.pid or -1, None)
        while time.monotonic() < deadline:
            if child is not None and child.poll() is not None:
                break
            if child is None and not pid_alive(rec.pid):
                break
            time.sleep(0.1)
        else:
            self._signal(rec, signal.SIGKILL)
            if child is not None:
                child.wait(timeout=5)

    def _stop(self, rec: ReplicaRecord) -> None:
        self._signal(rec, signal.SIGTERM)
        self._wait_exit(rec, time.monotonic() + self.opts.stop_timeout_s)

    def _load_model(self, rec: ReplicaRecord, model: str, count: int, cache_enabled: bool) -> None:
        cfg = model_config_json(
            model,
            device=rec.device,
            instance_count=count,
            cache_enabled=cache_enabled,
            chat_max_running=self.opts.chat_max_running,
            chat_kv_cache_tokens=self.opts.chat_kv_cache_tokens,
        )
        body = json.dumps({"parameters": {"config": json.dumps(cfg)}}).encode()
        req = urllib.request.Request(
            f"{rec.http_url}/v2/repository/models/{model}/load",
            data=body,
            method="POST",
            headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(req, timeout=self.opts.ready_timeout_s):
                pass
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode(errors="replace")
            raise FleetError(
                f"replica {rec.name}: loading {model} with {count} instance(s) failed: {detail}"
            ) from None
        except (urllib.error.URLError, OSError) as exc:
            raise FleetUnavailable(f"replica {rec.name} at {rec.http_url} is unreachable: {exc}") from None
