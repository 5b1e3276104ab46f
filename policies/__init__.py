"""The city's rules, as small pure functions.

A policy takes a :class:`policies.context.PolicyContext` and returns a
:class:`policies.verdict.Verdict` or ``None`` (no opinion). Policies for one SMTP
stage form an ordered list built from configuration (see :mod:`policies.registry`);
:func:`policies.runner.evaluate` runs such a list and fails closed.
"""
