"""Nova scheduler shims that ask Nova Steward which hosts fit and how well.

`filters.StewardFilter` asks POST /v1/filter?weigh=true once per scheduling
request and hands the weights to `weighers.StewardWeigher` of the same
request (`handoff`): one HTTP round trip in all. The weigher alone (or after
a failed filter call) makes one POST /v1/weigh. docs/callout.md; neither
ever raises into Nova.
"""
