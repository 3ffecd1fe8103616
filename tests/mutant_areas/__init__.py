"""Mutant tables by protocol area; ``tests.mutants`` merges them (see its ``_all_mutants``)."""
