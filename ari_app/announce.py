"""Prompts played to a caller just before the hang-up: not-available, recording-unavailable.

No consent depends on them, but a caller who hears silence before the line
drops has been let down, and the admin must be able to see it: a prompt that
could not be played is named in the call's audit line
(``announcement_failure``: which prompt, and why) and counted by
``callrec_prompt_playbacks_failed_total{prompt=...}``.

What Asterisk 22 does with a prompt it cannot play (trace 06): a missing
sound file ends the playback at once as ``failed``; a media URI it does not
understand starts a playback that never reports an end. A caller hanging up
ends a playback as ``failed`` too (trace 02): that is the caller's choice,
not a broken prompt, so a ``failed`` end is judged only once a hang-up had
:data:`HANGUP_SETTLE` seconds to arrive.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from ari_app.context import prompt_seconds
from ari_app.ending import CallEnding
from callrec.ari.client import AriClient
from callrec.errors import AriError
from callrec.prompts.names import PromptRef

# How long a failed playback waits for the hang-up that may have caused it.
HANGUP_SETTLE = 0.5
# A playback may end this long after its prompt's own length.
END_MARGIN = 2.0


async def announce(
    client: AriClient,
    ending: CallEnding,
    channel_id: str,
    prompt: PromptRef,
    playback_id: str,
    finished: Callable[[], str | None],
    done: asyncio.Event,
) -> str | None:
    """Play ``prompt`` to the caller and wait for its end: why it failed, or None.

    ``done`` is set and ``finished()`` gives the playback's last state once
    its ``PlaybackFinished`` arrived (the session's event handler does both).
    A hang-up while it plays ends the wait with :class:`CallHangup`, as
    every wait of the call flow does.
    """
    try:
        await ending.until(
            client.play(channel_id, prompt.media, playback_id=playback_id, lang=prompt.language)
        )
    except AriError as exc:
        return f"Asterisk refused the playback: {exc}"
    limit = prompt_seconds(prompt.path_wav) + END_MARGIN
    try:
        await ending.until(asyncio.wait_for(done.wait(), limit))
    except TimeoutError:
        return f"the playback did not end within {limit:g} s"
    if finished() != "failed":
        return None
    try:  # a hang-up (or anything else that ends the call) comes within moments
        await asyncio.wait_for(ending.wait(), HANGUP_SETTLE)
    except TimeoutError:
        return "playback failed"
    return None
