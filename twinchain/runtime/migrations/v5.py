"""Spec 5's migrations: equipment classes as data and the alarm lifecycle.

* Telemetry: ``MetricIds``, the index of metric ids by name (built from ``Metrics``, the
  lowest id of a name winning), which class registration binds metrics by.
* Equipment: the three built-in classes (``cnc_mill``, ``pump``, ``compressor``) registered as
  Root would, as genesis registers them on a new chain. Their records are frozen here, as the
  release of spec 5 shipped them: a later release may change the class files, never what
  this migration wrote. A class that does not fit the chain (its metrics registered with
  other units or scales there) is skipped, not a failed block.

The Maintenance storage that spec 5 adds (prognoses, acknowledgements, assignees, comments)
is new maps only: nothing to translate.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from twinchain.protocol.classdef import ClassDef, FailureModeDef, MetricDef

if TYPE_CHECKING:
    from twinchain.runtime.runtime import Runtime

# Hand-set like v4's: a read and a write per metric indexed; a class registered costs what
# Equipment.register_class is weighed at.
W_READ = 5_000
W_WRITE = 20_000


def index_metric_names(rt: Runtime) -> int:
    n = rt.telemetry.index_metric_names()
    return W_READ + n * (W_READ + W_WRITE)


def builtin_records() -> list[ClassDef]:
    """The frozen built-in classes as records."""
    return [
        ClassDef(name, description, window_s, [MetricDef(*m) for m in metrics],
                 [FailureModeDef(*f) for f in modes])
        for name, description, window_s, metrics, modes in BUILTIN_CLASSES
    ]  # fmt: skip


def register_builtin_classes(rt: Runtime) -> int:
    from twinchain.runtime.weights import equipment as weights

    eq = rt.equipment
    weight = 0
    for rec in builtin_records():
        weight += (
            weights.W_REGISTER_CLASS
            + weights.W_PER_CLASS_METRIC * len(rec.metrics)
            + weights.W_PER_FAILURE_MODE * len(rec.failure_modes)
        )
        if eq.Classes.contains(rec.name):
            continue
        eq.in_layer(lambda rec=rec: eq.do_register_class(rec, None, root=True))
    return weight


# The built-in classes as spec 5 registers them (twinchain/protocol/classes/*.toml of that
# release, fixed-point; tests/runtime/test_upgrade.py checks they still match the files).
# A metric: (name, unit, scale, kind, id, precision, rated, min, max, max_step, public); a
# failure mode: (name, metric, direction, limit, horizon_s, description).
# fmt: off
BUILTIN_CLASSES: list[tuple[Any, ...]] = [
    (
        'cnc_mill',
        'CNC milling machine, 7.5 kW spindle (built-in simulator class)',
        3600,
        [
            ('temperature', 'degC', 3, 'Gauge', 1, None, 42000, -10000, 67000, 5000, True),
            ('vibration_rms', 'mm/s', 3, 'Gauge', 2, None, 1600, 0, 6400, 4000, True),
            ('power', 'W', 0, 'Gauge', 4, None, 7500, 0, 9750, 9750, False),
            ('spindle_speed', 'rpm', 0, 'Gauge', 6, None, 12000, 0, 13200, 13200, False),
            ('current', 'A', 3, 'Gauge', 15, None, 12301, 0, 15992, 15992, False),
            ('units_produced', 'units', 0, 'Delta', 7, None, 24, 0, 3, None, False),
            ('energy', 'Wh', 0, 'Delta', 5, None, None, 0, 7, None, False),
            ('good_units', 'units', 0, 'Delta', 8, None, None, 0, 3, None, False),
            ('bad_units', 'units', 0, 'Delta', 9, None, None, 0, 3, None, False),
            ('material_used', 'g', 0, 'Delta', 10, None, None, 0, 2550, None, False),
            ('run_time', 's', 0, 'Delta', 11, None, None, 0, 2, None, False),
            ('downtime', 's', 0, 'Delta', 12, None, None, 0, 2, None, False),
            ('co2_emitted', 'g', 0, 'Delta', 13, None, None, 0, 5, None, False),
            ('humidity', '%RH', 2, 'Gauge', 14, None, None, 0, 10000, 2000, True),
        ],
        [
            ('bearing_wear', 'vibration_rms', 'Up', 4500, 172800,
                'Spindle bearing wear: broadband vibration rises to ISO 10816 zone D'),
            ('overheating', 'temperature', 'Up', 62000, 172800,
                'Spindle overheating: 20 K above the rated full-load temperature'),
            ('misalignment', 'vibration_rms', 'Up', 4500, 172800,
                'Shaft misalignment: 1x/2x running-speed vibration rises to ISO 10816 zone D'),
        ],
    ),
    (
        'pump',
        'Centrifugal pump, 15 kW, 400 kPa (built-in simulator class)',
        3600,
        [
            ('temperature', 'degC', 3, 'Gauge', 1, None, 55000, -10000, 80000, 5000, True),
            ('vibration_rms', 'mm/s', 3, 'Gauge', 2, None, 2200, 0, 8800, 5500, True),
            ('pressure', 'kPa', 3, 'Gauge', 3, None, 400000, 0, 500000, 500000, True),
            ('power', 'W', 0, 'Gauge', 4, None, 15000, 0, 19500, 19500, False),
            ('spindle_speed', 'rpm', 0, 'Gauge', 6, None, 2950, 0, 3245, 3245, False),
            ('current', 'A', 3, 'Gauge', 15, None, 24603, 0, 31984, 31984, False),
            ('units_produced', 'units', 0, 'Delta', 7, None, 60, 0, 3, None, False),
            ('energy', 'Wh', 0, 'Delta', 5, None, None, 0, 11, None, False),
            ('good_units', 'units', 0, 'Delta', 8, None, None, 0, 3, None, False),
            ('bad_units', 'units', 0, 'Delta', 9, None, None, 0, 3, None, False),
            ('run_time', 's', 0, 'Delta', 11, None, None, 0, 2, None, False),
            ('downtime', 's', 0, 'Delta', 12, None, None, 0, 2, None, False),
            ('co2_emitted', 'g', 0, 'Delta', 13, None, None, 0, 7, None, False),
            ('humidity', '%RH', 2, 'Gauge', 14, None, None, 0, 10000, 2000, True),
        ],
        [
            ('bearing_wear', 'vibration_rms', 'Up', 7100, 172800,
                'Bearing wear: broadband vibration rises to ISO 10816 zone D'),
            ('overheating', 'temperature', 'Up', 75000, 172800,
                'Overheating: 20 K above the rated full-load temperature'),
            ('misalignment', 'vibration_rms', 'Up', 7100, 172800,
                'Shaft misalignment: 1x/2x running-speed vibration rises to ISO 10816 zone D'),
        ],
    ),
    (
        'compressor',
        'Air compressor, 22 kW, 800 kPa (built-in simulator class)',
        3600,
        [
            ('temperature', 'degC', 3, 'Gauge', 1, None, 78000, -10000, 103000, 5000, True),
            ('vibration_rms', 'mm/s', 3, 'Gauge', 2, None, 2800, 0, 11200, 7000, True),
            ('pressure', 'kPa', 3, 'Gauge', 3, None, 800000, 0, 1000000, 1000000, True),
            ('power', 'W', 0, 'Gauge', 4, None, 22000, 0, 28600, 28600, False),
            ('spindle_speed', 'rpm', 0, 'Gauge', 6, None, 1480, 0, 1628, 1628, False),
            ('current', 'A', 3, 'Gauge', 15, None, 36084, 0, 46910, 46910, False),
            ('units_produced', 'units', 0, 'Delta', 7, None, 90, 0, 3, None, False),
            ('energy', 'Wh', 0, 'Delta', 5, None, None, 0, 14, None, False),
            ('good_units', 'units', 0, 'Delta', 8, None, None, 0, 3, None, False),
            ('bad_units', 'units', 0, 'Delta', 9, None, None, 0, 3, None, False),
            ('run_time', 's', 0, 'Delta', 11, None, None, 0, 2, None, False),
            ('downtime', 's', 0, 'Delta', 12, None, None, 0, 2, None, False),
            ('co2_emitted', 'g', 0, 'Delta', 13, None, None, 0, 8, None, False),
            ('humidity', '%RH', 2, 'Gauge', 14, None, None, 0, 10000, 2000, True),
        ],
        [
            ('bearing_wear', 'vibration_rms', 'Up', 7100, 172800,
                'Bearing wear: broadband vibration rises to ISO 10816 zone D'),
            ('overheating', 'temperature', 'Up', 98000, 172800,
                'Overheating: 20 K above the rated full-load temperature'),
            ('misalignment', 'vibration_rms', 'Up', 7100, 172800,
                'Shaft misalignment: 1x/2x running-speed vibration rises to ISO 10816 zone D'),
        ],
    ),
]
# fmt: on
