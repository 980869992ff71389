"""The ``index.html`` of a subject export: one self-contained page a caller can open anywhere.

No script, no font, no image, nothing fetched: the list is plain HTML with
its CSS inline, the audio players point at the WAV files beside the page
(relative links), so it opens offline in any browser and from a USB stick.
Every value from a recording or a log goes through :func:`html.escape`; the
links are names this module made.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from callrec.dpo.export import Export, ExportedCall, ExportedRecording, write_private

INDEX = "index.html"

# What each consent decision meant for the caller, in their words.
DECISIONS: Mapping[str, str] = {
    "implied": "You stayed on the line after the notice: the call was recorded.",
    "granted-dtmf": "You pressed the accept key: the call was recorded.",
    "declined-hangup": "You hung up during the notice: nothing was recorded.",
    "declined-dtmf": "You pressed the opt-out key: the call went on without recording.",
    "declined-timeout": "You pressed no key in time: the call went on without recording.",
}
NO_DECISION = "No decision was taken (the notice could not be played): nothing was recorded."

_CSS = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 70em;
       padding: 0 1em; color: #1a1a1a; background: #fff; line-height: 1.4; }
h1 { font-size: 1.5em; }
table { border-collapse: collapse; width: 100%; }
th, td { border-bottom: 1px solid #ccc; padding: .6em .5em; text-align: left;
         vertical-align: top; }
th { background: #f0f0f0; }
code { font-size: .85em; word-break: break-all; }
audio { width: 16em; max-width: 100%; }
.problem { color: #8a1c1c; }
.note { color: #555; font-size: .9em; }
"""


def write_page(export: Export, title: str) -> None:
    """``index.html`` in the export's folder, listing what was exported."""
    write_private(export.folder / INDEX, render_page(title, export.calls).encode("utf-8"))


def render_page(title: str, calls: Sequence[ExportedCall]) -> str:
    """The whole page for ``calls``, in the order given."""
    made = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    rows = "\n".join(_row(call) for call in calls) or _NOTHING
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Call recordings: {_e(title)}</title>
<style>{_CSS}</style>
</head>
<body>
<h1>Call recordings: {_e(title)}</h1>
<p>Every call from this number that was found, made on {made}. Times are in UTC.
Before each call was connected you heard a notice about recording; what you did then
decided whether the call was recorded. The notice is named with the SHA-256 of its
audio file, which proves which notice it was.</p>
<p class="note">The recordings are the WAV files in this folder; each call's consent
evidence is the JSON file linked beside it.</p>
<table>
<thead><tr><th>Date and time</th><th>Number dialled</th><th>Duration</th>
<th>Your decision</th><th>Notice you heard</th><th>Recording</th></tr></thead>
<tbody>
{rows}
</tbody>
</table>
</body>
</html>
"""


_NOTHING = '<tr><td colspan="6">No calls from this number were found.</td></tr>'


def _row(call: ExportedCall) -> str:
    evidence = call.evidence
    decision = _text(evidence.get("decision")) or call.call.decision
    return (
        "<tr>"
        f"<td>{_when(call.started)}</td>"
        f"<td>{_e(_text(evidence.get('dialled')) or call.call.dialled or '-')}</td>"
        f"<td>{_seconds(call.call.duration)}</td>"
        f"<td>{_e(DECISIONS.get(decision or '', NO_DECISION))}</td>"
        f"<td>{_prompt(evidence.get('prompt'))}</td>"
        f"<td>{_recordings(call)}</td>"
        "</tr>"
    )


def _when(at: datetime | None) -> str:
    if at is None:
        return "unknown"
    utc = at.astimezone(UTC)
    return f'<time datetime="{_e(utc.isoformat())}">{utc.strftime("%Y-%m-%d %H:%M:%S")}</time>'


def _seconds(value: float | None) -> str:
    if value is None:
        return "-"
    whole = round(value)
    return f"{whole // 60}:{whole % 60:02d}"


def _prompt(prompt: object) -> str:
    if not isinstance(prompt, Mapping):
        return "-"
    name, digest = _text(prompt.get("id")), _text(prompt.get("sha256"))
    shown = _e(name or "unknown")
    return shown + (f"<br><code>SHA-256 {_e(digest)}</code>" if digest else "")


def _recordings(call: ExportedCall) -> str:
    parts = [_recording(r) for r in call.recordings]
    if not call.recordings:
        parts.append("not recorded")
    if not any(r.evidence_json == call.evidence_json for r in call.recordings):
        parts.append(_link(call.evidence_json, "consent evidence (JSON)"))
    return "<br>".join(parts)


def _recording(done: ExportedRecording) -> str:
    if done.wav is None:
        return f'<span class="problem">Recording {_e(done.recording_id)}: {_e(done.why)}</span>'
    seconds = "" if done.seconds is None else f"{done.seconds:.2f}"
    player = (
        f'<audio controls preload="metadata" src="{_href(done.wav)}" '
        f'data-seconds="{seconds}"></audio>'
    )
    links = [_link(done.wav, f"WAV, {_seconds(done.seconds)}")]
    if done.evidence_json:
        links.append(_link(done.evidence_json, "consent evidence (JSON)"))
    problem = f'<br><span class="problem">{_e(done.why)}</span>' if done.why else ""
    return f"{player}<br>{' · '.join(links)}{problem}"


def _link(name: str, label: str) -> str:
    return f'<a href="{_href(name)}">{_e(label)}</a>'


def _href(name: str) -> str:
    return _e(quote(name))


def _e(text: str) -> str:
    return html.escape(text, quote=True)


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None
