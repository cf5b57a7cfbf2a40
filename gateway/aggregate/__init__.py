"""Private aggregates: counts, sums and means by group, computed on source values and
released only under a grant's `aggregate` rules (small-cell suppression, differential privacy)."""
