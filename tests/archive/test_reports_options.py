"""``twinchain node`` report flags: the report service runs only with a key and an archive."""

from __future__ import annotations

from pathlib import Path

import pytest

from twinchain.archive.hosting import GRACE_MS, ArchiveOptions, ArchiveService
from twinchain.archive.reports import ReportService
from twinchain.cli import build_parser
from twinchain.primitives.errors import CliError
from twinchain.primitives.keys import Keypair


def parse(tmp_path: Path, *flags: str) -> list[object]:
    args = build_parser().parse_args(["node", "--dev", "--base-path", str(tmp_path), *flags])
    options = ArchiveOptions()
    services = options.services(args)
    for s in services:
        if isinstance(s, ArchiveService):
            s.store.close()
    return services


def test_report_flags(tmp_path: Path) -> None:
    archive, reports = parse(
        tmp_path, "--archive-facility", "0", "--archive-report-key", "//Alice",
        "--archive-report-delay-ms", "0", "--archive-report-grace-ms", "5000",
        "--archive-report-windows", "12",
    )  # fmt: skip
    assert isinstance(archive, ArchiveService) and isinstance(reports, ReportService)
    assert reports.store is archive.store
    assert reports.key.public == Keypair.from_dev_name("Alice").public
    assert (reports.delay_ms, reports.grace_ms, reports.windows) == (0, 5000, 12)
    (archive,) = parse(tmp_path / "b", "--archive-facility", "0")  # no key: no reports
    _, reports = parse(tmp_path / "c", "--archive-facility", "0", "--archive-report-key", "//A")
    assert isinstance(reports, ReportService)
    # A report a window, one window after its end, waiting 10 min at most for its batches.
    assert (reports.delay_ms, reports.grace_ms, reports.windows) == (None, GRACE_MS, 1)


def test_report_flags_refused(tmp_path: Path) -> None:
    with pytest.raises(CliError, match="needs --archive-facility"):
        parse(tmp_path, "--archive-report-key", "//Alice")
    with pytest.raises(CliError, match="--archive-report-key"):
        parse(tmp_path / "b", "--archive-facility", "0", "--archive-report-key", "nonsense")
    with pytest.raises(SystemExit):  # argparse: a report covers at least one window
        parse(tmp_path / "c", "--archive-facility", "0", "--archive-report-windows", "0")
