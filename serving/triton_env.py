"""Locate a tritonserver binary and build the environment it needs to run python-backend models.

By default the binary bundled in the `nvidia-pytriton` wheel is used (server 2.51). Its python
backend needs a backend folder holding libtriton_python.so, triton_python_backend_utils.py and
the stub for the running Python version, and LD_LIBRARY_PATH with this interpreter's libpython
FIRST (otherwise the stub loads Debian's older libpython) and then the wheel's bundled libs.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path

MODEL_PYTHONPATH_ENV = "FLEETPILOT_MODEL_PYTHONPATH"


class TritonNotFound(RuntimeError):
    """No usable tritonserver binary or python backend was found."""


@dataclass(frozen=True)
class TritonInstall:
    binary: Path
    backend_dir: Path  # folder holding python/ (libtriton_python.so + stub)
    cache_dir: Path | None  # folder holding local/ (response cache)
    lib_dirs: tuple[Path, ...]


def _pytriton_root() -> Path:
    """The installed pytriton package folder, found without importing it (its __init__ pulls in
    tritonclient and numpy, which is slow and breaks where numpy 2 is installed)."""
    spec = importlib.util.find_spec("pytriton")
    if spec is None or not spec.submodule_search_locations:
        raise TritonNotFound("nvidia-pytriton is not installed and no tritonserver_path is configured")
    return Path(next(iter(spec.submodule_search_locations))).resolve()


def _build_backend_dir(pytriton_root: Path, target: Path) -> Path:
    """Assemble <target>/python with the backend library and the stub matching this Python."""
    src = pytriton_root / "tritonserver" / "backends" / "python"
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    stub = pytriton_root / "tritonserver" / "python_backend_stubs" / version / "triton_python_backend_stub"
    if not stub.exists():
        raise TritonNotFound(f"no python backend stub for Python {version} in {stub.parent.parent}")
    py_dir = target / "python"
    py_dir.mkdir(parents=True, exist_ok=True)
    for item in src.iterdir():
        dest = py_dir / item.name
        if not dest.exists():
            shutil.copy2(item, dest) if item.is_file() else shutil.copytree(item, dest)
    dest_stub = py_dir / "triton_python_backend_stub"
    if not dest_stub.exists():
        shutil.copy2(stub, dest_stub)
        dest_stub.chmod(0o755)
    return target


def find_triton(work_dir: Path, tritonserver_path: Path | None = None) -> TritonInstall:
    """Return the binary and backend folders, building the backend folder under work_dir once."""
    libpython_dir = Path(sysconfig.get_config_var("LIBDIR") or sys.base_prefix + "/lib")
    if tritonserver_path is not None:
        binary = Path(tritonserver_path)
        if not binary.exists():
            raise TritonNotFound(f"configured tritonserver_path {binary} does not exist")
        root = binary.resolve().parent.parent
        backend_dir = root / "backends"
        if not (backend_dir / "python").exists():
            raise TritonNotFound(f"{binary}: expected the python backend in {backend_dir / 'python'}")
        cache_dir = root / "caches"
        return TritonInstall(binary, backend_dir, cache_dir if cache_dir.exists() else None, (libpython_dir,))
    root = _pytriton_root()
    binary = root / "tritonserver" / "bin" / "tritonserver"
    if not binary.exists():
        raise TritonNotFound(f"the nvidia-pytriton wheel has no tritonserver binary at {binary}")
    backend_dir = _build_backend_dir(root, work_dir / "backends")
    libs = root.parent / "nvidia_pytriton.libs"
    return TritonInstall(binary, backend_dir, root / "tritonserver" / "caches", (libpython_dir, libs))


def triton_environment(install: TritonInstall, extra: dict[str, str] | None = None) -> dict[str, str]:
    """Environment for a tritonserver child: library path order matters (see module doc)."""
    env = dict(os.environ)
    lib_path = [str(p) for p in install.lib_dirs]
    if env.get("LD_LIBRARY_PATH"):
        lib_path.append(env["LD_LIBRARY_PATH"])
    env["LD_LIBRARY_PATH"] = ":".join(lib_path)
    # The stub runs model.py in isolated mode (PYTHONPATH is ignored), so each model.py puts
    # MODEL_PYTHONPATH_ENV on sys.path itself: our site-packages (torch) and the project root.
    # Entries already in MODEL_PYTHONPATH_ENV come first: an overlay for the models alone (for
    # example numpy<2, which Triton 2.51's python backend needs, where the host has numpy 2).
    project_root = str(Path(__file__).resolve().parent.parent)
    overlay = [p for p in env.get(MODEL_PYTHONPATH_ENV, "").split(os.pathsep) if p]
    paths = [*overlay, project_root, sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]]
    env[MODEL_PYTHONPATH_ENV] = os.pathsep.join(dict.fromkeys(paths))
    env.setdefault("OMP_NUM_THREADS", "1")  # several model instances share few cores
    if extra:
        env.update(extra)
    return env
