"""How the explorer shows an alert's prognosis: failure mode, probability within the horizon,
remaining useful life P50 with its P10 to P90 band ("beyond" where the worker saw none)."""

from __future__ import annotations

from twinchain.explorer.tabs.maintenance import alert_row, prognosis_text

H = 3_600_000


def alert(**prognosis: int) -> dict[str, object]:
    p = {"mode": "bearing_wear", "horizonMs": 48 * H, "rulP10Ms": 10 * H, "rulP50Ms": 20 * H,
         "rulP90Ms": 30 * H} | prognosis  # fmt: skip
    return {"id": 3, "twin": 1, "kind": "Predicted", "probabilityBp": 9_200, "horizonMs": 48 * H,
            "status": "Open", "state": "ActiveUnacknowledged", "prognosis": p}  # fmt: skip


def test_prognosis_and_its_band() -> None:
    assert prognosis_text(alert()) == "bearing_wear 92.0 % in 48.0 h, RUL 20.0 h (10.0 to 30.0 h)"
    row = alert_row(alert(rulP90Ms=20 * 48 * H))
    assert row["state"] == "active" and row["what"] == "bearing_wear"
    assert row["RUL P50 (P10 to P90)"] == "20.0 h (10.0 to >960)"
    assert row["P(fail)/dev"] == "92.0 %/48.0 h"


def test_deviation_and_plain_prediction() -> None:
    dev = {"id": 1, "twin": 0, "kind": "Deviation", "metric": 1, "deviationBp": 2_200,
           "status": "Cleared", "state": "Cleared", "prognosis": None}  # fmt: skip
    assert prognosis_text(dev) == ""
    assert alert_row(dev)["P(fail)/dev"] == "dev +22.0 %" and alert_row(dev)["state"] == "cleared"
    plain = alert() | {"prognosis": None}
    assert prognosis_text(plain) == "92.0 % in 48.0 h"
