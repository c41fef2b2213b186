"""Nova scheduler shims that ask Nova Steward which hosts fit and how well.

`filters.StewardFilter` and `weighers.StewardWeigher` each make one HTTP call
per scheduling request (docs/callout.md); neither ever raises into Nova.
"""
