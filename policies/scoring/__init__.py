"""HR usage scores: how fully an official or a unit uses the city mail system.

Pure rules only; nothing here reads the ledger, the clock or a file.

- :mod:`policies.scoring.calendar` — which days count: working days of a period (weekends and
  the configured holidays left out) and, from employment dates and transfers, the unit each
  counted day belongs to;
- :mod:`policies.scoring.model` — the scoring model (indicators, weights, targets, deductions),
  validated from configuration, and :data:`~policies.scoring.model.DEFAULT_MODEL`;
- :mod:`policies.scoring.formula` — the score from per-indicator counts: capped rates, weights
  of indicators that do not apply spread over the others, capped deductions, and a Vietnamese
  explanation of every number.

The counts themselves come from the usage ledger's recorded verdicts (STYLE: scoring reads those
records instead of calling policies again); gathering them is not this package's job.
"""
