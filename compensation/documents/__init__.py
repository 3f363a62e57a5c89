"""Documents: files made from what the other parts hold. Statements and invoices as typed rows rendered to CSV,
XLSX or PDF (``exports``); queueing and rendering an export in the background (``services``) and which documents
and exports an actor may read (``selectors``); the staff reports (``reports``) with their admin pages
(``views``). They read the ledger, usage and settlement and write only their own ``Export`` rows.
"""
