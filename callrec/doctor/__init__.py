"""``callrec doctor``: the checklist an admin runs after install and after every change.

Each check is a small function returning a :class:`~callrec.doctor.result.CheckResult`
(``ok``, ``warn``, ``FAIL`` or ``skip``, a summary, a hint):

- :mod:`.loading`: the config, section by section (``check-config``'s checks)
- :mod:`.pbx`: ARI reachable, Asterisk version and modules, the Stasis app name, clock
- :mod:`.media`: the ExternalMedia round trip (audio really reaches the media address)
- :mod:`.prompts`: every configured prompt in every language and format, with its hash
- :mod:`.storage`: spool writable, room left, ``.crec.part`` leftovers, audit log
- :mod:`.keys`: recipient keys, signing key, pseudonym key readable by its owner only
- :mod:`.fastagi` and :mod:`.procs`: the FastAGI port, free or served by ``callrec serve``
- :mod:`.runner`: all of them in order; :mod:`.result`: rendering for a terminal or JSON

Import the submodule you need; this package imports nothing itself, so the
CLI stays fast for every other command.
"""
