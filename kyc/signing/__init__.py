"""PDF e-signatures: documents, audit trail, PAdES signing and verification.

The package is a pure library plus a click group (``cli.sign``). Web handlers, the database and
the face check sit outside it and hand in plain values, so every entry point here can run in a
worker process (see ``service.sign`` and ``service.verify``).
"""
