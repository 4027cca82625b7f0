"""The package's layers: a module may import only from its own layer or the ones below.

Lower layers are the paper's parts (data, model, objectives, training); evaluation,
generation and the analyses build on them; the CLI and the demo sit on top. An import
upwards (say, training importing eval) fails here with the file and the import named.
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "pvvae"
LAYERS = [
    {"config", "data", "model", "_warnings"},  # _warnings: the third-party warning filters
    {"objectives"},
    # inference opens every saved model kind, training checkpoints included
    {"training", "inference"},
    {"eval"},
    {"gen"},
    {"probe"},
    {"study"},
    # the package root re-exports lazily from every layer (pvvae.load_model, pvvae.load_clip)
    {"demo", "cli", "__main__", "__init__"},
]
RANK = {name: i for i, layer in enumerate(LAYERS) for name in layer}


def _imports(path: Path) -> list[str]:
    """The ``pvvae.*`` modules ``path`` imports (absolute imports, anywhere in the file)."""
    names = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
        elif isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
    return [n for n in names if n.startswith("pvvae.")]


def _part(path: Path) -> str:
    rel = path.relative_to(SRC).parts
    return rel[0] if len(rel) > 1 else rel[0].removesuffix(".py")


def test_every_part_has_a_layer():
    parts = {_part(p) for p in SRC.rglob("*.py")}
    assert parts <= set(RANK), f"add {sorted(parts - set(RANK))} to LAYERS"


def test_no_import_goes_up_a_layer():
    upward = []
    for path in sorted(SRC.rglob("*.py")):
        part = _part(path)
        for module in _imports(path):
            target = module.split(".")[1]
            if target in RANK and RANK[target] > RANK[part]:
                upward.append(f"{path.relative_to(SRC)} imports {module}")
    assert not upward, "imports from a higher layer:\n" + "\n".join(upward)


def test_the_check_sees_an_upward_import(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from pvvae.eval.recon import run_recon\n")
    assert _imports(bad) == ["pvvae.eval.recon"]
