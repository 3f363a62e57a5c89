"""Machine-readable terms of use: the RSL 1.0 licence of a work or a verified domain, and the ODRL offer (TDMRep's
``tdm-policy``) of a work kind, with the tariffs in force. Here rather than in ``optout`` because the terms need
the tariffs and ``optout`` may not import ``compensation``; the stances and vocabulary tokens come from
``optout.vocabularies``.
"""
