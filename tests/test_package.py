"""``pip install .``: the wheel holds what the package reads at run time (schema, excerpt)."""

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_the_wheel_validates_params_without_the_source_tree(tmp_path):
    source = tmp_path / "source"
    for name in ("pyproject.toml", "README.md", "src"):
        command = ["cp", "-rL", str(ROOT / name), str(source / name)]
        source.mkdir(exist_ok=True)
        subprocess.run(command, check=True)
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", ".", "--no-deps", "--no-build-isolation",
         "--quiet", "-w", str(tmp_path / "dist")],
        cwd=source, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert built.returncode == 0, built.stderr
    (wheel,) = (tmp_path / "dist").glob("picollm-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    for packaged in ("picollm/schema/params.schema.yaml", "picollm/py.typed",
                     "picollm/data/tinystories_excerpt/train.parquet"):  # fmt: skip
        assert packaged in names
    zipfile.ZipFile(wheel).extractall(tmp_path / "site")
    work = tmp_path / "work"
    work.mkdir()
    (work / "params.yaml").write_text("models:\n  lstm: {type: lstm}\n")
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "site")}
    done = subprocess.run(
        [sys.executable, "-m", "picollm", "validate"],
        cwd=work, env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("params.yaml: ok")
    check = "import picollm; print(picollm.__file__)"
    where = subprocess.run([sys.executable, "-c", check], cwd=work, env=env, capture_output=True,
                           text=True, check=True).stdout  # fmt: skip
    assert where.startswith(str(tmp_path / "site"))
