"""The daily retention unit: what it runs, when, and with callrec.service's hardening."""

from __future__ import annotations

from pathlib import Path

CONFIG = Path(__file__).resolve().parents[3] / "config"
# Settings of a long-running service that a oneshot job has no use for.
SERVICE_ONLY = {
    "Type", "NotifyAccess", "TimeoutStartSec", "ExecStartPre", "ExecStart", "KillSignal",
    "TimeoutStopSec", "Restart", "RestartSec", "ReadWritePaths", "ReadOnlyPaths",
    "ExecReload", "WatchdogSec",
    # serve's control socket folder: a job with it would remove it when it ends.
    "RuntimeDirectory", "RuntimeDirectoryMode",
}  # fmt: skip


def _settings(name: str, section: str) -> list[tuple[str, str]]:
    found, inside = [], False
    for raw in (CONFIG / name).read_text().splitlines():
        line = raw.strip()
        if line.startswith("["):
            inside = line == f"[{section}]"
        elif inside and line and not line.startswith("#"):
            key, _, value = line.partition("=")
            found.append((key, value))
    return found


def test_the_retention_job_is_hardened_like_the_recorder() -> None:
    job = _settings("callrec-retention.service", "Service")
    recorder = _settings("callrec.service", "Service")
    missing = [s for s in recorder if s[0] not in SERVICE_ONLY and s not in job]
    assert missing == []
    assert ("Type", "oneshot") in job
    assert [v for k, v in job if k == "ExecStart"] == [
        "/opt/callrec/bin/callrec subject erase --carry-out --config /etc/callrec/callrec.toml",
        "/opt/callrec/bin/callrec retention run --config /etc/callrec/callrec.toml",
    ]
    writable = dict(job)["ReadWritePaths"].split()
    assert set(dict(recorder)["ReadWritePaths"].split()) <= set(writable)
    assert "/var/lib/callrec" in writable  # the SQLite catalogue


def test_the_timer_runs_the_job_daily_and_catches_up() -> None:
    timer = dict(_settings("callrec-retention.timer", "Timer"))
    assert timer["OnCalendar"] == "daily"
    assert timer["Persistent"] == "true"
    assert timer["Unit"] == "callrec-retention.service"
    assert dict(_settings("callrec-retention.timer", "Install"))["WantedBy"] == "timers.target"
