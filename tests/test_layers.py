"""The design's layers, enforced: an import may only point down (or sideways within a layer)."""

from __future__ import annotations

import ast
from pathlib import Path

PKG = Path(__file__).resolve().parent.parent / "src" / "selfheal"

LAYERS: dict[str, int] = {
    # 1. faces
    "cli": 1, "api": 1, "bench": 1, "scenarios": 1,
    "replay": 1, "replay_plot": 1,  # `selfheal detect`: the detector over a file, offline
    # 2. runtime
    "engine": 2,
    # 3. adapters
    "platforms": 3, "sources": 3, "store": 3, "reasoners": 3, "notify": 3,
    # 4. ports
    "ports": 4,
    # 5. stages
    "detect": 5, "correlate": 5, "diagnose": 5, "plan": 5, "policy": 5, "verify": 5,
    "scribe": 5, "ledger": 5, "catalogue": 5,
    # 6. model (values, errors, the validated settings object)
    "model": 6, "errors": 6, "config": 6,
    "svg": 6,  # drawing helpers of the pictures, importing nothing of selfheal
}
STANDALONE = {"shop"}  # the demo workload: its own programs, importing nothing of selfheal


def _top(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if parts[0] == "selfheal" and len(parts) > 1 else None


def _imports(path: Path) -> list[tuple[int, str]]:
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            top = _top(node.module)
            if top is None and node.module == "selfheal":
                out += [(node.lineno, a.name) for a in node.names]
            elif top is not None:
                out.append((node.lineno, top))
        elif isinstance(node, ast.Import):
            out += [(node.lineno, t) for a in node.names if (t := _top(a.name)) is not None]
    return out


def test_every_package_has_a_layer() -> None:
    tops = {p.stem if p.is_file() else p.name for p in PKG.iterdir()
            if not p.name.startswith("_") and (p.suffix == ".py" or p.is_dir())
            and p.name not in {"defaults", "py.typed"}}
    unknown = tops - set(LAYERS) - STANDALONE
    assert not unknown, f"give these a layer in tests/test_layers.py: {sorted(unknown)}"


def test_imports_only_point_down() -> None:
    bad = []
    for path in PKG.rglob("*.py"):
        rel = path.relative_to(PKG)
        top = rel.parts[0].removesuffix(".py")
        if top == "__init__":
            continue
        for line, target in _imports(path):
            if target == top:
                continue
            if top in STANDALONE:
                if target not in STANDALONE:
                    bad.append(f"{rel}:{line} standalone {top} imports selfheal.{target}")
                continue
            if target in STANDALONE:
                # The runtime and the faces start the shop; the local platform hosts it and
                # shares its state-folder contract (shop.state).
                if LAYERS[top] > 2 and top != "platforms":
                    bad.append(f"{rel}:{line} {top} uses the demo shop")
                continue
            if LAYERS[target] < LAYERS[top]:
                bad.append(f"{rel}:{line} {top} (layer {LAYERS[top]}) imports {target} "
                           f"(layer {LAYERS[target]})")
    assert not bad, "imports that point up:\n" + "\n".join(bad)
