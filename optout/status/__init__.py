"""The maintained status projection: every registered key's, refused URL prefix's and work kind's status per
purpose as validity intervals, kept in the transaction of each event that changes it, and the change feed."""
