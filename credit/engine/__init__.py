"""The database-free core of tax-data credit decisions.

Everything here is pure: tax records and their validation (``records``), the
tax gateway interface and its sandbox (``provider``), file intake
(``importer``), the one feature definition (``features``), decision tables
(``ruleset`` for the table and its validation, ``rules`` for deciding,
``formula`` for the limit language), synthetic data (``synth``, ``history``),
backtests (``backtest``), champion/challenger (``champion``), population
stability (``psi``) and proactive relief (``relief``); ``errors`` places their
failures in the platform's error hierarchy. The service layer persists what
these return; nothing here opens a database or a network connection, so the
same code runs in a request, a job and a notebook.
"""
