"""qmu_core: models and algorithms behind the qmu book.

A reproduction of Chen & Zhang, "Superior resilience to poisoning and amenability
to unlearning in quantum machine learning", Nat. Commun. (2026),
doi:10.1038/s41467-026-70420-4.
"""

__version__ = "0.1.0"
