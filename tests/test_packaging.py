"""The zoo works after a plain ``pip install``: the sdist and the wheel carry every preset file, weights included.

The slow test builds an sdist from the sources a build reads and a wheel from
that sdist, installs the wheel (``--no-deps``) in a fresh virtual environment,
and from an empty working directory lists and loads every shipped preset and
runs the README demo with it.

The dependencies are not installed again: installing TensorFlow and the rest
from the package index took 137 s in a fresh venv and 190 s inside this test
on the 2-core machine (the test then took 371 s, 100 s of it deleting the
2.7 GB venv), so the new venv sees the current environment's site-packages
through a ``.pth`` file, which appends them to ``sys.path`` after the venv's
own site-packages (the wheel's ``keras_pose`` comes first) without running
the ``.pth`` files inside them (so an editable install's import hook stays
off). The test checks that ``keras_pose`` is imported from the venv.
"""

import json
import os
import shutil
import subprocess
import sys
import tarfile
import time
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PRESETS = ROOT / "keras_pose" / "zoo" / "presets"
SHIPPED = sorted(p.parent.name for p in PRESETS.glob("*/preset.json"))
PRESET_FILES = sorted(p.relative_to(ROOT).as_posix() for p in PRESETS.glob("*/*") if p.is_file())

CHECK = """
import json, sys
import keras_pose
from keras_pose import zoo
names = [r["name"] for r in zoo.list()]
for name in names:
    zoo.load(name)
print(json.dumps({"file": keras_pose.__file__, "names": names, "zoo_dir": str(zoo.zoo_dir()),
                  "project_root": zoo.PROJECT_ROOT and str(zoo.PROJECT_ROOT), "sys_path": sys.path,
                  "meta_path": [repr(f) for f in sys.meta_path]}))
"""


def _run(cmd, cwd, env=None, timeout=900, times=None, step=None):
    start = time.perf_counter()
    res = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert res.returncode == 0, (f"{' '.join(map(str, cmd))} exited {res.returncode}:\n"
                                 f"{res.stdout[-3000:]}\n{res.stderr[-3000:]}")
    if times is not None:
        times[step] = time.perf_counter() - start
    return res


def _build(tmp_path) -> tuple[Path, Path]:
    """(sdist, wheel) built from a copy of the sources a build reads (no artefacts left in the repository)."""
    src = tmp_path / "src"
    src.mkdir()
    for name in ("setup.cfg", "pyproject.toml", "README.md", "MANIFEST.in"):
        if (ROOT / name).is_file():
            shutil.copy(ROOT / name, src / name)
    shutil.copytree(ROOT / "keras_pose", src / "keras_pose", ignore=shutil.ignore_patterns("__pycache__"))
    _run([sys.executable, "-c", "from setuptools import setup; setup()", "-q", "sdist", "-d", tmp_path / "dist"], src)
    sdist = next((tmp_path / "dist").glob("*.tar.gz"))
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-cache-dir", "-q",
          "-w", tmp_path / "dist", sdist], tmp_path)
    return sdist, next((tmp_path / "dist").glob("*.whl"))


def _venv_with_current_dependencies(venv: Path, wheel: Path, times: dict) -> Path:
    """A venv with ``wheel`` installed and the current environment's packages visible after it; its bin folder."""
    _run([sys.executable, "-m", "venv", "--without-pip", venv], venv.parent, times=times, step="venv")
    python = venv / "bin" / "python"
    # the wheel first, while the venv sees nothing else (pip must not find the current keras_pose)
    _run([sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "--no-cache-dir", "-q", wheel],
         venv.parent, times=times, step="pip install --no-deps")
    site_dir = _run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], venv.parent)
    current = [p for p in sys.path if Path(p).name in ("site-packages", "dist-packages") and Path(p).is_dir()]
    assert current, sys.path
    (Path(site_dir.stdout.strip()) / "_current_environment.pth").write_text("\n".join(current) + "\n")
    return venv / "bin"


@pytest.mark.slow
def test_wheel_installed_in_a_fresh_venv_ships_and_loads_the_zoo(tmp_path):
    assert SHIPPED == ["cpm_lsp", "cpm_scratch_lsp", "deeppose_lsp", "deeppose_scratch_lsp", "part_heatmap_lsp",
                       "part_heatmap_scratch_lsp", "softargmax_lsp", "softargmax_scratch_lsp"], SHIPPED
    assert len(PRESET_FILES) >= 5 * 5, PRESET_FILES
    start, times = time.perf_counter(), {}
    sdist, wheel = _build(tmp_path)
    times["sdist + wheel"] = time.perf_counter() - start
    with tarfile.open(sdist) as t:
        in_sdist = {n.split("/", 1)[1] for n in t.getnames() if "/" in n}
    assert set(PRESET_FILES) <= in_sdist, sorted(set(PRESET_FILES) - in_sdist)
    with zipfile.ZipFile(wheel) as z:
        in_wheel = set(z.namelist())
    assert set(PRESET_FILES) <= in_wheel, sorted(set(PRESET_FILES) - in_wheel)
    print(f"\n{wheel.name}: {wheel.stat().st_size:,} bytes; sdist {sdist.stat().st_size:,} bytes")

    venv = tmp_path / "venv"
    bindir = _venv_with_current_dependencies(venv, wheel, times)
    work = tmp_path / "work"  # an empty working directory: nothing of the repository on sys.path
    work.mkdir()
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "KERAS_POSE_ZOO", "VIRTUAL_ENV", "PYTHONHOME")}
    env.update(KERAS_HOME=str(tmp_path / "keras_home"), TF_CPP_MIN_LOG_LEVEL="3",
               PATH=f"{bindir}{os.pathsep}{env.get('PATH', '')}")
    res = _run([bindir / "python", "-c", CHECK], work, env, times=times, step="list + load all")
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert Path(out["file"]).resolve().is_relative_to(venv.resolve()), out["file"]  # the wheel's, not /work/main's
    # the repository itself is not on the path (the current environment's site-packages may live inside it, as
    # CI's .ci-venv does; they hold no keras_pose but the editable install's hook, which stays off)
    assert not any(p and Path(p).resolve() == ROOT.resolve() for p in out["sys_path"]), out["sys_path"]
    assert not any("editable" in f.lower() for f in out["meta_path"]), out["meta_path"]
    assert out["names"] == SHIPPED and out["project_root"] is None
    assert Path(out["zoo_dir"]).resolve().is_relative_to(venv.resolve())
    assert not (tmp_path / "keras_home" / "keras_pose").exists()  # bundled weights: nothing downloaded or cached

    # the README's demo (the sample photo), with a from-scratch preset
    _run([bindir / "keras-pose", "predict", "--model", "cpm_scratch_lsp", "--out", "predictions"], work, env,
         times=times, step="predict")
    pred = json.loads((work / "predictions" / "grace_hopper.json").read_text())
    assert len(pred["keypoints"]) == 14 and (work / "predictions" / "grace_hopper.png").stat().st_size > 0

    # docs/zoo.md exists only in a source checkout: an installed zoo-card asks for --table
    res = subprocess.run([bindir / "keras-pose", "zoo-card", "cpm_scratch_lsp"], cwd=work, env=env,
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 2 and "--table" in res.stderr, (res.returncode, res.stderr[-2000:])
    print("packaging test steps (s): " + ", ".join(f"{k} {v:.0f}" for k, v in times.items()))
