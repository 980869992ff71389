"""The data-protection officer's tools: what happens to recordings after the call.

- :mod:`.access`: the access log, one hash-chained line for every decrypt,
  subject export and erasure, hold, release and retention deletion.
- :mod:`.subjects`: one caller's calls and recordings (by the pseudonym of
  their number), from the catalogue or, without one, the audit log.
- :mod:`.export` and :mod:`.page`: the folder handed to a caller (Art. 15).
- :mod:`.retention`: deleting what has expired; held recordings never
  (:mod:`.holds` puts and lifts the holds).
- :mod:`.erasure` and :mod:`.scrub`: erasing a caller (Art. 17): their
  recordings, and their personal fields in the audit log, chain intact.
- :mod:`.desk` opens what every command needs (config, catalogue, access
  log, who is acting); :mod:`.reason` checks ``--reason``; :mod:`.settings`
  reads ``[audit]`` and ``[retention]``.

The commands are in ``callrec/cli/subject_cmds.py`` and
``callrec/cli/retention_cmds.py``; docs/OPERATIONS.md ("Data-protection
officer's tasks") tells a DPO how to use them.
"""
