"""Usage: what a lab's training used and what it costs. Tariffs (``tariffs``), manifest parsing (``manifests``),
accepting and processing manifests into outcomes and accruals (``services``, with the PostgreSQL engine in
``sql`` and the forked reader in ``prefetch``), and reads of manifests and outcomes (``selectors``). It ends
where the accrual is posted to the ledger; settling what accrued is ``compensation.settlement``.
"""
