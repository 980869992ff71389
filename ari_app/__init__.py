"""The callrec Stasis application: the ARI front end.

``app.App`` runs one Stasis application against one Asterisk (life cycle,
reconnects, shutdown); ``session.CallSession`` takes one caller through the
disclosure, the consent decision, the destination and the recording tap;
``demo`` drives the whole thing against the built-in ARI simulator.
"""
