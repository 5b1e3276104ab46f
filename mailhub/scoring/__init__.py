"""HR scoring's side that reads the database: per-official counts for a period, gathered from
the usage ledger and the meetings table with a few GROUP BY queries (:mod:`.counts`).

The arithmetic (working days, the model, points) is pure and lives in
:mod:`policies.scoring`; this package only turns stored rows into its inputs.
"""
