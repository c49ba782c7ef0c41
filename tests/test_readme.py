"""The README's Python example runs as written."""

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


@pytest.mark.slow
def test_readme_python_example_runs(tmp_path, monkeypatch):
    block = re.search(r"```python\n(.*?)```", README.read_text(), re.S)
    assert block is not None
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(block.group(1), "README.md", "exec"), namespace)  # noqa: S102
    assert namespace["latent"].shape == (2100, 10)
    assert "X_geneae" in namespace["adata"].obsm
    assert {"geneae", "pca"} <= set(namespace["scores"])
    assert (tmp_path / "runs" / "pbmc" / "weights.safetensors").exists()
