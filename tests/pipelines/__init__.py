"""Pipelines the tests run (module level, so step processes can re-import them by name)."""
