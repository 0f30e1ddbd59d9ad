"""The reference runtime's private machinery. Flavors and tools use the names that
:mod:`orcakit.reference` declares, never these modules (an import-linter contract enforces it)."""
