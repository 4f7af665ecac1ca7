"""The mutation-testing script's bookkeeping (running the mutations themselves is too slow for CI; a mutation
whose target text a refactoring moved shows up as stale when the script runs, not as a failure here)."""

from __future__ import annotations

import pytest

from experiments import mutants
from pretrain.errors import PretrainError


def test_a_stale_mutation_is_reported_never_skipped(monkeypatch):
    gone = mutants.Mutation("gone", "pretrain/data.py", "not in the file", "x", ("tests/test_data.py",), "", "")
    no_tests = mutants.Mutation("no-tests", "pretrain/data.py", "NAMED = (", "NAMED = [", ("tests/nope.py",), "", "")
    monkeypatch.setattr(mutants, "MUTATIONS", [gone, no_tests])
    rows = mutants.run(None, timeout=60, quiet=True)
    assert [(r["name"], r["result"]) for r in rows] == [("gone", "stale"), ("no-tests", "stale")]
    text = mutants.markdown(rows, 1.0)
    assert "0 of 2 mutations caught, 0 survived, 2 stale, 0 invalid" in text and "| `gone` |" in text
    with pytest.raises(PretrainError, match="unknown mutation"):
        mutants.run(["nope"], timeout=60, quiet=True)
