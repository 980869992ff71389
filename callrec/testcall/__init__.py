"""Automated SIP test calls against a PBX (``callrec testcall``).

sipp places the calls with scenarios shipped in ``scenarios/``; the caller's
audio is a pcap this package builds from a WAV; afterwards the harness finds
the call's audit line and recording and checks what a data-protection officer
would: recorded or not as the scenario expects, verifies, decrypts, duration,
audio follows what was sent, consent evidence.
"""
