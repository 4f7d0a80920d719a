"""What each pallet's weights module declares: the weight names, what each one charges for,
and how it follows from the measurements of :mod:`bench.weights.measure`.

A rule maps the measurements (``name -> nanoseconds``, see ``measure.run``) to the weight's
raw cost; :func:`bench.weights.render.charge` adds the margin and rounds it. A weight whose
rule takes the largest of several calls charges each of them for the dearest one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

Rule = Callable[[dict[str, float]], float]


@dataclass(frozen=True)
class Weight:
    """One constant of a weights module."""

    name: str
    doc: str
    rule: Rule
    per_unit: bool = False  # a cost per byte, reading, step...: kept to 2 significant digits


def largest(*names: str) -> Rule:
    """The dearest of several measured calls (they share one weight)."""
    return lambda m: max(m[n] for n in names)


def one(name: str) -> Rule:
    return lambda m: m[name]


# Pallet (module name) -> its weights, in the order the module lists them.
CATALOGUE: dict[str, list[Weight]] = {
    "system": [
        Weight(
            "EXTRINSIC_BASE_WEIGHT",
            "charged to every extrinsic on top of its call: decode, signature, nonce, fee",
            one("extrinsic_base"),
        ),
        Weight("W_REMARK", "System.remark, plus W_REMARK_PER_BYTE a byte", one("System.remark")),
        Weight("W_REMARK_PER_BYTE", "a byte of a remark (hashed)", one("remark_byte"), True),
        Weight("W_SET_CHAIN_NAME", "System.set_chain_name", one("System.set_chain_name")),
        Weight(
            "W_SCHEDULE_UPGRADE",
            "System.schedule_upgrade: the version and the schedule read, the schedule written",
            one("System.schedule_upgrade"),
        ),
        Weight(
            "W_CANCEL_UPGRADE",
            "System.cancel_upgrade: the schedule read and removed",
            one("System.cancel_upgrade"),
        ),
    ],
    "timestamp": [
        Weight("W_SET", "the Timestamp.set inherent of every block", one("Timestamp.set")),
    ],
    "authority": [
        Weight(
            "W_SET_AUTHORITIES",
            "Authority.set_authorities: the next set queued",
            one("Authority.set_authorities"),
        ),
        Weight(
            "W_REPORT_EQUIVOCATION",
            "an equivocation report: two signatures checked, the offence recorded",
            one("Authority.report_block_equivocation"),
        ),
    ],
    "balances": [
        Weight(
            "W_TRANSFER",
            "transfer, transfer_keep_alive, force_transfer (to a new account)",
            largest("Balances.transfer", "Balances.force_transfer"),
        ),
        Weight(
            "W_FORCE_SET_BALANCE", "Balances.force_set_balance", one("Balances.force_set_balance")
        ),
    ],
    "multisig": [
        Weight(
            "MULTISIG_OVERHEAD",
            "as_multi and as_multi_threshold_1 on top of the call they dispatch",
            largest("Multisig.as_multi", "Multisig.as_multi_threshold_1"),
        ),
        Weight("W_APPROVE", "Multisig.approve_as_multi", one("Multisig.approve_as_multi")),
        Weight("W_CANCEL", "Multisig.cancel_as_multi", one("Multisig.cancel_as_multi")),
    ],
    "sudo": [
        Weight(
            "SUDO_OVERHEAD",
            "sudo and sudo_as on top of the call they dispatch",
            largest("Sudo.sudo", "Sudo.sudo_as"),
        ),
        Weight("W_SET_KEY", "Sudo.set_key", one("Sudo.set_key")),
    ],
    "roles": [
        Weight(
            "W_GRANT",
            "granting, revoking or renouncing a role",
            largest("Roles.grant", "Roles.revoke", "Roles.force_grant"),
        ),
    ],
    "facility": [
        Weight(
            "W_REGISTER",
            "Facility.register, plus W_PER_CAPABILITY a declared capability",
            one("Facility.register"),
        ),
        Weight("W_PER_CAPABILITY", "a declared capability", one("facility_capability"), True),
        Weight(
            "W_SMALL",
            "a call reading and writing a few values (update, rpc url, rule sets, validators, "
            "suspend)",
            largest(
                "Facility.update",
                "Facility.set_rpc_url",
                "Facility.revoke_certification",
                "Facility.create_rule_set",
                "Facility.propose_validator",
                "Facility.suspend",
            ),
        ),
        Weight(
            "W_AUDIT",
            "an auditor's act: verify, assess, certify, report an incident",
            largest(
                "Facility.verify",
                "Facility.assess_capability",
                "Facility.issue_certification",
                "Facility.report_incident",
            ),
        ),
        Weight(
            "W_COMPLIANCE_BASE",
            "Facility.check_compliance, plus W_PER_CERT a certification held",
            one("Facility.check_compliance"),
        ),
        Weight(
            "W_PER_CERT", "a certification read by a compliance check", one("facility_cert"), True
        ),
    ],
    "equipment": [
        Weight(
            "W_MINT",
            "Equipment.mint, plus W_PER_SPEC_ENTRY a rated value or envelope entry",
            one("Equipment.mint"),
        ),
        Weight(
            "W_PER_SPEC_ENTRY", "a rated value or envelope entry", one("equipment_spec_entry"), True
        ),
        Weight(
            "W_SMALL",
            "a call reading and writing a few values (lifecycle, access, records, location)",
            largest(
                "Equipment.activate",
                "Equipment.grant_access",
                "Equipment.issue_calibration",
                "Equipment.add_document",
                "Equipment.update_location",
                "Equipment.record_service",
            ),
        ),
        Weight("W_TRANSFER", "Equipment.transfer", one("Equipment.transfer")),
        Weight(
            "W_MULTISIG", "Equipment.set_critical_multisig", one("Equipment.set_critical_multisig")
        ),
        Weight(
            "W_REGISTER_CLASS",
            "Equipment.register_class, plus W_PER_CLASS_METRIC a metric and W_PER_FAILURE_MODE "
            "a mode",
            one("Equipment.register_class"),
        ),
        Weight(
            "W_PER_CLASS_METRIC",
            "a metric of the class bound (or registered in Telemetry)",
            one("equipment_class_metric"),
            True,
        ),
        Weight(
            "W_PER_FAILURE_MODE", "a failure mode of the class", one("equipment_class_mode"), True
        ),
    ],
    "telemetry": [
        Weight("W_SUBMIT_BASE", "a submit, on top of its batches", one("telemetry_submit")),
        Weight(
            "W_PER_BATCH",
            "a batch commitment: its signature checked, its records and its window",
            one("telemetry_batch"),
        ),
        Weight(
            "W_PER_SUMMARY",
            "a public summary of a batch: its checks, its window aggregate, its share of the "
            "state root",
            one("telemetry_summary"),
            True,
        ),
        Weight(
            "W_SMALL",
            "a call reading and writing a few values (devices, metrics, capture settings, "
            "disclosure policies and grants, anchored results)",
            largest(
                "Telemetry.bind_device",
                "Telemetry.unbind_device",
                "Telemetry.set_disclosure",
                "Telemetry.disclose",
                "Telemetry.withdraw_disclosure",
                "Telemetry.anchor",
            ),
        ),
        Weight(
            "W_WINDOW_CLOSE",
            "a twin's window close run by on_initialize: its aggregates handed to Benchmark, "
            "Maintenance, Analytics and Simulation (worst case: an order completes, 7 alerts, "
            "a period closes)",
            largest("close_completions", "close_alerts", "close_plain"),
        ),
        Weight("W_CLOSE_QUEUE", "queueing a window close (charged per batch)", one("close_queue")),
        Weight("W_CLOSE_INIT", "on_initialize reading the close queue's bounds", one("close_init")),
    ],
    "benchmark": [
        Weight(
            "W_SMALL",
            "a call reading and writing a few values (class owners, specs, rules, standards)",
            largest(
                "Benchmark.set_class_spec",
                "Benchmark.set_condition_rules",
                "Benchmark.set_standard",
            ),
        ),
        Weight(
            "W_RESET",
            "Benchmark.reset_baseline: four per-metric prefixes of the twin removed",
            one("Benchmark.reset_baseline"),
        ),
    ],
    "maintenance": [
        Weight(
            "W_SMALL",
            "a call reading and writing a few values (thresholds, dismiss_alert, assign, the "
            "alarm lifecycle)",
            largest(
                "Maintenance.set_twin_threshold",
                "Maintenance.dismiss_alert",
                "Maintenance.assign",
                "Maintenance.acknowledge_alert",
                "Maintenance.assign_alert",
                "Maintenance.comment_alert",
            ),
        ),
        Weight(
            "W_ORDER",
            "create, create_from_alert, start, claim_completion, cancel",
            largest(
                "Maintenance.create",
                "Maintenance.start",
                "Maintenance.claim_completion",
                "Maintenance.cancel",
            ),
        ),
        Weight(
            "W_PREDICT",
            "Maintenance.submit_prediction: an alert raised",
            one("Maintenance.submit_prediction"),
        ),
        Weight(
            "W_PROGNOSIS",
            "Maintenance.submit_prognosis: an alert raised with its prognosis",
            one("Maintenance.submit_prognosis"),
        ),
        Weight(
            "W_SCHEDULE_BASE",
            "schedule and set_line, plus W_SCHEDULE_PER_WINDOW a window of the line",
            one("Maintenance.schedule"),
        ),
        Weight(
            "W_SCHEDULE_PER_WINDOW",
            "a scheduled window of the line iterated",
            one("maintenance_line_window"),
            True,
        ),
        Weight(
            "W_COMPLETE",
            "inspect: payment, service record, parts, lifecycle, Analytics, facility",
            one("Maintenance.inspect"),
        ),
        Weight("W_INIT", "on_initialize: the block's expiry queue read", one("expiry_init")),
        Weight(
            "W_EXPIRY_READ",
            "a queued order read (and its queue entry removed)",
            one("expiry_read"),
        ),
        Weight(
            "W_EXPIRE",
            "an order expired: escrow returned, provider stats, indexes",
            one("expiry"),
        ),
    ],
    "analytics": [
        Weight(
            "W_SMALL",
            "a call reading and writing a few values (ideal rate, planned time, rules)",
            largest("Analytics.set_ideal_rate", "Analytics.set_planned_time"),
        ),
        Weight("W_REPORT", "Analytics.anchor_report", one("Analytics.anchor_report")),
        Weight(
            "W_CLAIM",
            "a reward claim, plus W_CLAIM_PER_PERIOD a period read",
            one("Analytics.claim_data_reward"),
        ),
        Weight(
            "W_CLAIM_PER_PERIOD", "a period read by a claim", one("analytics_claim_period"), True
        ),
        Weight("W_INIT", "on_initialize reading the due keys", one("period_init")),
        Weight("W_SWEEP", "one Due entry read and removed", one("period_sweep")),
        Weight(
            "W_CLOSE",
            "one period close in on_initialize: KPI record, facility record, baseline",
            one("period_close"),
        ),
    ],
    "simulation": [
        Weight(
            "W_REGISTER",
            "Simulation.register_model, plus W_PER_PARAM_BYTE a byte of params",
            one("Simulation.register_model"),
        ),
        Weight(
            "W_PER_PARAM_BYTE", "a byte of a model's params", one("simulation_param_byte"), True
        ),
        Weight(
            "W_SMALL",
            "a call reading and writing a few values (deactivate_model, release_bond)",
            largest("Simulation.deactivate_model", "Simulation.release_bond"),
        ),
        Weight(
            "W_ANCHOR",
            "Simulation.anchor_scenario: inputs decoded and checked, the bond reserved",
            one("Simulation.anchor_scenario"),
        ),
        Weight(
            "W_CHALLENGE_BASE",
            "a challenge, plus W_PER_PATH_STEP a unit of the scenario's work",
            one("challenge_base"),
        ),
        Weight(
            "W_PER_PATH_STEP",
            "a unit of work (path x step x schedule) of a challenge's re-run",
            one("challenge_step"),
            True,
        ),
    ],
    "session": [
        Weight(
            "W_SET_KEYS",
            "Session.set_keys: one signature verified, the authority sets read, two entries "
            "written",
            one("Session.set_keys"),
        ),
        Weight(
            "W_PURGE_KEYS",
            "Session.purge_keys: one entry read and up to two removed",
            one("Session.purge_keys"),
        ),
        Weight(
            "W_ENACT_KEY",
            "One queued key made active at a session boundary (Authority.on_initialize)",
            one("session_enact_key"),
            True,
        ),
        Weight(
            "W_READ_KEY",
            "One authority's entry read at a session boundary (its account, then its session key)",
            one("session_read_key"),
            True,
        ),
    ],
    "council": [
        Weight(
            "W_PROPOSE",
            "Council.propose: membership checked, the call decoded and classified, the motion "
            "stored",
            one("Council.propose"),
        ),
        Weight(
            "W_PROPOSE_PER_BYTE",
            "a byte of a proposed call (hashed and stored), per byte of the length bound",
            one("council_proposal_byte"),
            True,
        ),
        Weight(
            "W_VOTE",
            "Council.vote: the motion read and written back with the vote",
            one("Council.vote"),
        ),
        Weight(
            "W_CLOSE",
            "Council.close, on top of the weight bound of the call it may dispatch",
            one("Council.close"),
        ),
        Weight(
            "W_SYNC_MEMBER",
            "Council.sync_member: membership and the open motions' votes updated, plus "
            "W_SYNC_PER_FACILITY a registered facility",
            one("Council.sync_member"),
        ),
        Weight(
            "W_SYNC_PER_FACILITY",
            "a registered facility read by Council.sync_member",
            one("council_facility"),
            True,
        ),
        Weight(
            "W_SET_MOTION_DURATION",
            "Council.set_motion_duration",
            one("Council.set_motion_duration"),
        ),
    ],
}
