"""Snapshots: the registry's answer at an instant T, per purpose, for everything that is not permitted, as files
plus a manifest signed with the receipt key, so that labs filter offline (issue 14, README "Snapshots").

``files`` fixes the format (names, the membership hash, the writers), ``selectors`` the reads (one consistent read
of the status projection, and who may read snapshots), ``services`` the writes (queueing, building, retention).
"""
