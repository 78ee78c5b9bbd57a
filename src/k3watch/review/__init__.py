"""Regular review of the security logs: schedules and their checklists (``config``), the
periods they cover (``signoff_periods``), review records signed off into a hash chain
(``store``, ``signoff_chain``), the auditor's export (``signoff_export``) and the alert raised
when a review is overdue (``overdue``)."""
