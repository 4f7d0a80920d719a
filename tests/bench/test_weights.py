"""The weight generator (``make weights``): a quick run measures on a real chain and writes
one weights module per pallet, with the machine and date in its header, defining exactly the
names the runtime's committed modules define."""

from __future__ import annotations

import datetime
import importlib
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # bench/ is a top-level package beside twinchain/
    sys.path.insert(0, str(ROOT))

from bench.weights.__main__ import generate  # noqa: E402
from bench.weights.catalogue import CATALOGUE  # noqa: E402
from bench.weights.render import MIN_CALL_WEIGHT, charge  # noqa: E402

WEIGHTS = ROOT / "twinchain" / "runtime" / "weights"


def public(module: ModuleType) -> set[str]:
    return {n for n in vars(module) if not n.startswith("_") and n != "annotations"}


def load(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"generated_{path.stem}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_quick_run_writes_every_pallets_weights(tmp_path: Path) -> None:
    written = generate(tmp_path, quick=True)
    committed = sorted(p.stem for p in WEIGHTS.glob("*.py") if p.stem != "__init__")
    assert sorted(written) == sorted(p.stem for p in tmp_path.glob("*.py")) == committed
    today = datetime.date.today().isoformat()
    for pallet in committed:
        generated = load(tmp_path / f"{pallet}.py")
        current = importlib.import_module(f"twinchain.runtime.weights.{pallet}")
        assert public(generated) == public(current) == {w.name for w in CATALOGUE[pallet]}
        for name in public(generated):
            value = getattr(generated, name)
            assert type(value) is int and value == written[pallet][name] and value >= 1
        text = (tmp_path / f"{pallet}.py").read_text()
        assert "Machine: " in text and "one core" in text and f"Date: {today}" in text
        assert text.count("# Measured: ") == len(CATALOGUE[pallet])


def test_committed_weights_say_where_they_come_from() -> None:
    for path in WEIGHTS.glob("*.py"):
        if path.stem == "__init__":
            continue
        doc = importlib.import_module(f"twinchain.runtime.weights.{path.stem}").__doc__ or ""
        assert "Machine: " in doc and "Date: " in doc
        assert "make weights" in doc and "SPEC_VERSION" in doc and "golden" in doc


def test_a_weight_is_its_cost_with_margin_in_two_significant_digits() -> None:
    assert charge(100_000, False) == 150_000
    assert charge(93_123, False) == 140_000  # 139,684.5 rounded up
    assert charge(-5_000, False) == charge(10, False) == MIN_CALL_WEIGHT  # noise, not free
    assert charge(0.4, True) == 1 and charge(13.4, True) == 21
