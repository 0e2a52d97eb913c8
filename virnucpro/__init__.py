"""virnucpro: VirNucPro's viral-sequence classification, fast, on every GPU."""

__version__ = "0.1.0"
