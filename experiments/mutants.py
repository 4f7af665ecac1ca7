"""Mutation testing: does the test suite catch realistic bugs in the code the results depend on?

    python -m experiments.mutants                 # every mutation; about 10 minutes on 2 cores
    python -m experiments.mutants --only cd-k-minus-one holm-uncapped
    python -m experiments.mutants --list

Each mutation is one small text edit (``old`` -> ``new``) to one file: a bug someone could
plausibly write. The script copies ``pretrain/``, ``experiments/``, ``tests/``, ``docs/``,
``checkpoints/reference/``, ``README.md`` and ``pyproject.toml`` to a temporary folder, and for every
mutation applies the edit there, runs the tests listed for it (with ``PYTHONPATH`` at the copy), and
restores the file (also on Ctrl-C; the copy is deleted at the end). The checkout itself is never
written to, so other work can go on in it meanwhile. A mutation is

- ``caught`` when its tests fail on the mutated code,
- ``survived`` when they pass: a bug the tests would let through,
- ``stale`` when its ``old`` text is no longer in the file exactly once (the code changed: update it),
- ``invalid`` when its tests already fail on the unmutated code (nothing is learnt from the mutation).

Writes the table to ``experiments/results/mutants.md`` (``--output``) and exits 1 unless every
mutation is caught. It runs outside CI: each mutation costs a test run.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from pretrain.checkpoint import check_writable, write_text
from pretrain.cli import ArgumentParser, positive_int, run_main
from pretrain.errors import PretrainError

ROOT = Path(__file__).resolve().parents[1]
COPIED = ("pretrain", "experiments", "tests", "docs", "checkpoints/reference", "README.md", "pyproject.toml")


@dataclass(frozen=True)
class Mutation:
    name: str
    file: str
    old: str
    new: str
    tests: tuple[str, ...]
    what: str
    area: str


MUTATIONS = [
    # ------------------------------------------------------------------ the 8 survivors of the first audit
    Mutation(
        "cd-k-minus-one",
        "pretrain/layers/rbm.py",
        "        for step in range(self.cd_k):\n",
        "        for step in range(max(self.cd_k - 1, 1)):\n",
        ("tests/test_rbm.py::test_cd_k_runs_exactly_k_gibbs_steps_of_hintons_chain",),
        "CD-k runs k-1 Gibbs steps",
        "objectives",
    ),
    Mutation(
        "mask-inverted",
        "pretrain/layers/autoencoder.py",
        "keep = torch.rand(x.shape, device=x.device, generator=self.generator) >= self.noise_level",
        "keep = torch.rand(x.shape, device=x.device, generator=self.generator) < self.noise_level",
        ("tests/test_greedy.py::test_denoising_encoder_sees_the_corrupted_input_and_the_target_stays_clean",),
        "denoising mask keeps a noise_level fraction and zeroes the rest",
        "objectives",
    ),
    Mutation(
        "no-restore-best",
        "pretrain/finetuning.py",
        "        model.load_state_dict(best_state)\n",
        "        pass\n",
        ("tests/test_finetune.py::test_early_stopping_restores_the_best_evaluations_weights_bit_for_bit",),
        "early stopping never restores the best weights",
        "fine-tuning",
    ),
    Mutation(
        "best-state-aliased",
        "pretrain/finetuning.py",
        "best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}",
        "best_state = {k: v.detach() for k, v in model.state_dict().items()}",
        ("tests/test_finetune.py::test_early_stopping_restores_the_best_evaluations_weights_bit_for_bit",),
        "the best-weights snapshot aliases the live parameters",
        "fine-tuning",
    ),
    Mutation(
        "holm-uncapped",
        "experiments/stats.py",
        "running = max(running, min(1.0, (m - rank) * p))",
        "running = max(running, (m - rank) * p)",
        (
            "tests/test_stats.py",
            "tests/test_comparison.py::test_summary_mean_interval_p_and_holm_against_hand_computed_values",
        ),
        "Holm-adjusted p not capped at 1",
        "statistics",
    ),
    Mutation(
        "summary-raw-p",
        "experiments/comparison.py",
        'd["p_holm"] = adjusted',
        'd["p_holm"] = d["p"]',
        ("tests/test_comparison.py::test_summary_mean_interval_p_and_holm_against_hand_computed_values",),
        "the summary stores the raw p as p_holm",
        "statistics",
    ),
    Mutation(
        "dead-rank-traceback",
        "pretrain/distributed.py",
        '    return PretrainError(\n        f"rank {rank()}/{world_size()}: {what} failed;',
        '    return RuntimeError(\n        f"rank {rank()}/{world_size()}: {what} failed;',
        ("tests/test_distributed.py::test_killing_one_rank_fails_the_run_with_a_clear_error",),
        "a dead rank's error is a traceback, not the one-line message",
        "distributed",
    ),
    Mutation(
        "npz-over-256",
        "pretrain/data.py",
        'scaling = {"divide_by": 255.0 if x.dtype == torch.uint8 else 1.0}',
        'scaling = {"divide_by": 256.0 if x.dtype == torch.uint8 else 1.0}',
        ("tests/test_data.py",),
        "uint8 .npz/.pt pixels divided by 256",
        "data",
    ),
    Mutation(
        "idx-over-256",
        "pretrain/data.py",
        "flat = [d.data.reshape(len(d.data), -1).float().div_(255.0) for d in parts]",
        "flat = [d.data.reshape(len(d.data), -1).float().div_(256.0) for d in parts]",
        ("tests/test_data.py",),
        "MNIST IDX pixels divided by 256",
        "data",
    ),
    # ------------------------------------------------------------------------------------- objectives
    Mutation(
        "ce-gradient-unscaled",
        "pretrain/layers/autoencoder.py",
        "return torch.sigmoid(z).sub_(x).mul_(grad / z.shape[0]), None",
        "return torch.sigmoid(z).sub_(x).mul_(grad), None",
        ("tests/test_greedy.py::test_cross_entropy_matches_torch_in_value_and_gradient",),
        "the cross-entropy gradient is not averaged over the batch",
        "objectives",
    ),
    Mutation(
        "denoising-trains-clean",
        "pretrain/layers/autoencoder.py",
        "return self._loss(self.corrupt(x), x)",
        "return self._loss(x, x)",
        ("tests/test_greedy.py::test_denoising_encoder_sees_the_corrupted_input_and_the_target_stays_clean",),
        "the denoising autoencoder trains on the clean input",
        "objectives",
    ),
    Mutation(
        "rbm-visible-bias-grad-sign",
        "pretrain/layers/rbm.py",
        "torch.sub(v.mean(0), v0.mean(0), out=b.grad)",
        "torch.sub(v0.mean(0), v.mean(0), out=b.grad)",
        ("tests/test_rbm.py::test_cd_gradient_is_the_autograd_gradient_of_the_free_energy_difference",),
        "the RBM's visible-bias gradient has the wrong sign",
        "objectives",
    ),
    Mutation(
        "rbm-free-energy-sign",
        "pretrain/layers/rbm.py",
        "            vis = -(v @ self.visible_bias)\n",
        "            vis = v @ self.visible_bias\n",
        (
            "tests/test_rbm.py::test_exact_likelihood_is_normalised_and_pll_matches_brute_force",
            "tests/test_rbm.py::test_cd_gradient_is_the_autograd_gradient_of_the_free_energy_difference",
        ),
        "the Bernoulli free energy's visible term has the wrong sign",
        "objectives",
    ),
    Mutation(
        "rbm-weight-cost-on-biases",
        "pretrain/layers/rbm.py",
        '{"params": [self.encoder.bias, self.visible_bias], "weight_decay": 0.0},',
        '{"params": [self.encoder.bias, self.visible_bias], "weight_decay": weight_decay},',
        ("tests/test_rbm.py::test_sgd_step_is_hintons_update_with_weight_cost_on_weights_only",),
        "the RBM's weight cost also decays the biases (Hinton's code: weights only)",
        "objectives",
    ),
    # --------------------------------------------------------------------------------- greedy trainer
    Mutation(
        "greedy-no-weight-decay",
        "pretrain/greedy.py",
        "return make_optimizer(layer.param_groups(cfg.weight_decay), cfg.optimizer, lr, cfg.momentum)",
        "return make_optimizer(layer.param_groups(0.0), cfg.optimizer, lr, cfg.momentum)",
        ("tests/test_greedy.py::test_weight_decay_is_l2_at_a_realistic_strength",),
        "--weight-decay is ignored by the greedy trainer",
        "greedy trainer",
    ),
    Mutation(
        "he-fan-out",
        "pretrain/init.py",
        'nn.init.kaiming_normal_(w, mode="fan_in", nonlinearity="relu", generator=g)',
        'nn.init.kaiming_normal_(w, mode="fan_out", nonlinearity="relu", generator=g)',
        ("tests/test_init.py",),
        "he-normal scales by fan_out",
        "initializers",
    ),
    # ------------------------------------------------------------------------------------ fine-tuning
    Mutation(
        "patience-off-by-one",
        "pretrain/finetuning.py",
        "if limit is not None and since_best >= limit:",
        "if limit is not None and since_best > limit:",
        ("tests/test_finetune.py::test_adam_cosine_weight_decay_and_early_stopping_restores_the_best_epoch",),
        "early stopping waits one evaluation more than its patience",
        "fine-tuning",
    ),
    Mutation(
        "stratified-short",
        "pretrain/finetuning.py",
        "        take[order[:left]] += 1\n",
        "        take[order[:left]] += 0\n",
        ("tests/test_finetune.py::test_stratified_subset_keeps_class_proportions_and_depends_only_on_the_seed",),
        "the stratified subset drops the largest-remainder examples (fewer than --labels)",
        "fine-tuning",
    ),
    Mutation(
        "test-scored-on-train",
        "pretrain/finetuning.py",
        "result.test_error_final, result.test_errors = error_rate(model, data.test)",
        "result.test_error_final, result.test_errors = error_rate(model, train)",
        ("tests/test_finetune.py::test_the_test_error_is_counted_on_the_test_split_with_the_restored_weights",),
        "the test error is measured on the training examples",
        "fine-tuning",
    ),
    # ------------------------------------------------------------------------------------------- data
    Mutation(
        "split-overlap",
        "pretrain/data.py",
        "val, train = take(order[:n_val]), take(order[n_held:])",
        "val, train = take(order[:n_val]), take(order[n_val:])",
        ("tests/test_data.py",),
        "the training split also holds the held-out test rows",
        "data",
    ),
    # ------------------------------------------------------------------------------------- statistics
    Mutation(
        "std-biased",
        "experiments/stats.py",
        "return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))",
        "return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / n)",
        ("tests/test_stats.py",),
        "the sample std divides by n",
        "statistics",
    ),
    Mutation(
        "interval-uses-z",
        "experiments/stats.py",
        "t = t_quantile(0.5 + confidence / 2.0, n - 1)",
        "t = 1.959963984540054",
        ("tests/test_stats.py",),
        "the interval uses the normal quantile instead of Student's t",
        "statistics",
    ),
    Mutation(
        "paired-difference-reversed",
        "experiments/stats.py",
        "diffs = [x - y for x, y in zip(a, b) if _ok(x) and _ok(y)]",
        "diffs = [y - x for x, y in zip(a, b) if _ok(x) and _ok(y)]",
        ("tests/test_stats.py",),
        "paired differences are b - a",
        "statistics",
    ),
    # ---------------------------------------------------------------------------------- harness choice
    Mutation(
        "tuning-picks-worst",
        "experiments/harness.py",
        'best = min(ok, key=lambda lr: (cells[lr]["val_error_best"], cells[lr]["val_loss_best"]))',
        'best = max(ok, key=lambda lr: (cells[lr]["val_error_best"], cells[lr]["val_loss_best"]))',
        ("tests/test_tuning.py",),
        "the tuning keeps the rate with the highest validation error",
        "harness",
    ),
    # ------------------------------------------------------------------------------ checkpoint readers
    Mutation(
        "pickle-allowed",
        "pretrain/checkpoint.py",
        'obj = torch.load(path, map_location="cpu", weights_only=True)',
        'obj = torch.load(path, map_location="cpu", weights_only=False)',
        ("tests/test_checkpoint.py", "tests/test_mlp.py"),
        "the checkpoint reader runs pickled code",
        "checkpoints",
    ),
    Mutation(
        "scaling-unchecked",
        "pretrain/data.py",
        "    if not math.isclose(want, have):\n",
        "    if False:\n",
        ("tests/test_mlp.py::test_input_scaling_is_checked_and_unknown_keys_are_refused",),
        "a checkpoint pretrained on /255 pixels accepts data scaled otherwise",
        "checkpoints",
    ),
    Mutation(
        "autoencoder-stack-left-behind",
        "pretrain/autoencoder.py",
        "created_stack = not pre.exists()",
        "created_stack = False",
        ("tests/test_deep_autoencoder.py::test_cli_exit_2_at_any_stage_leaves_nothing_behind",),
        "pretrain.autoencoder leaves <output>.stack.pt behind on exit 2",
        "commands",
    ),
]


def make_copy(dest: Path) -> None:
    for name in COPIED:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        elif src.exists():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)


def pytest(copy: Path, args: list[str], timeout: float, stop_first: bool = True, tail: int = 1500) -> tuple[int, str]:
    """Run pytest with ``args`` in ``copy`` (imports resolve there, not in the checkout); ``(exit code, output)``."""
    env = {**os.environ, "PYTHONPATH": str(copy), "PYTHONDONTWRITEBYTECODE": "1"}
    cmd = [sys.executable, "-m", "pytest", *(["-x"] if stop_first else []), "-q", "-p", "no:cacheprovider", *args]
    try:
        proc = subprocess.run(cmd, cwd=copy, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return -1, "timed out"
    return proc.returncode, (proc.stdout + proc.stderr)[-tail:]


def existing_tests(copy: Path, tests: tuple[str, ...]) -> list[str]:
    """The test files and ``file::function`` ids of ``tests`` that exist in ``copy``."""
    out = []
    for t in tests:
        file, _, func = t.partition("::")
        path = copy / file
        if path.is_file() and (not func or f"def {func}(" in path.read_text()):
            out.append(t)
    return out


def failing(copy: Path, tests: list[str], timeout: float) -> list[str] | None:
    """The ids of ``tests`` that fail on the unmutated copy (one run for all of them); None if pytest could not run."""
    code, tail = pytest(copy, ["-rfE", "--no-header", *tests], timeout, stop_first=False, tail=20_000)
    if code not in (0, 1):
        return None
    return [line.split()[1] for line in tail.splitlines() if line.startswith(("FAILED ", "ERROR "))]


def run(names: list[str] | None, timeout: float, quiet: bool) -> list[dict]:
    chosen = [m for m in MUTATIONS if not names or m.name in names]
    unknown = sorted(set(names or []) - {m.name for m in MUTATIONS})
    if unknown:
        raise PretrainError(f"unknown mutation {', '.join(unknown)}; --list shows them")
    rows: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="mutants-") as tmp:
        copy = Path(tmp)
        make_copy(copy)
        where = subprocess.run(
            [sys.executable, "-c", "import pretrain, experiments; print(pretrain.__file__, experiments.__file__)"],
            cwd=copy,
            env={**os.environ, "PYTHONPATH": str(copy)},
            capture_output=True,
            text=True,
        ).stdout
        if where.count(str(copy)) != 2:
            raise PretrainError(f"the copy's packages do not shadow the installed ones: {where.strip()}")
        runnable = [m for m in chosen if existing_tests(copy, m.tests)]
        every = sorted({t for m in runnable for t in existing_tests(copy, m.tests)})
        broken = failing(copy, every, timeout * 4) if every else []
        if broken is None:
            raise PretrainError("pytest could not run the unmutated tests; run them by hand to see why")
        for m in chosen:
            started = time.perf_counter()
            row = {"name": m.name, "area": m.area, "what": m.what, "file": m.file}
            path = copy / m.file
            tests = existing_tests(copy, m.tests)
            text = path.read_text() if path.is_file() else ""
            if text.count(m.old) != 1:
                row.update(result="stale", detail=f"target text found {text.count(m.old)} times")
            elif not tests:
                row.update(result="stale", detail=f"none of its tests exist: {', '.join(m.tests)}")
            else:
                bad = [
                    b for b in broken if any(b == t or b.startswith(t + "::") or b.startswith(t + "[") for t in tests)
                ]
                if bad:
                    row.update(result="invalid", detail=f"fails unmutated: {bad[0][:140]}")
                else:
                    try:
                        path.write_text(text.replace(m.old, m.new))
                        code, tail = pytest(copy, tests, timeout)
                    finally:
                        path.write_text(text)
                    if path.read_text() != text:
                        raise PretrainError(f"could not restore {m.file} in the copy after {m.name}")
                    failed = [line for line in tail.splitlines() if line.startswith(("FAILED", "ERROR"))]
                    detail = failed[0][:160] if failed else ("timed out" if code == -1 else "")
                    row.update(result="caught" if code != 0 else "survived", detail=detail)
            row["tests"] = " ".join(tests or m.tests)
            row["seconds"] = time.perf_counter() - started
            rows.append(row)
            if not quiet:
                print(f"{row['result']:>8}  {m.name:<30} {row['seconds']:6.1f} s  {row['detail']}", flush=True)
    return rows


def markdown(rows: list[dict], seconds: float) -> str:
    counts = {k: sum(r["result"] == k for r in rows) for k in ("caught", "survived", "stale", "invalid")}
    lines = [
        "# Mutation testing",
        "",
        f"{counts['caught']} of {len(rows)} mutations caught, {counts['survived']} survived, "
        f"{counts['stale']} stale, {counts['invalid']} invalid; {seconds / 60:.1f} min. "
        "Written by `python -m experiments.mutants` (see docs/testing.md).",
        "",
        "| mutation | area | the bug | result | tests run | first failure |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        detail = r["detail"].replace("|", "\\|")
        lines.append(f"| `{r['name']}` | {r['area']} | {r['what']} | {r['result']} | `{r['tests']}` | {detail} |")
    return "\n".join(lines) + "\n"


def build_parser() -> ArgumentParser:
    p = ArgumentParser(
        prog="python -m experiments.mutants",
        description="Apply each listed mutation to a private copy of the code, run its tests, report caught/survived.",
    )
    p.add_argument("--only", nargs="+", default=None, metavar="NAME", help="run only these mutations (default: all)")
    p.add_argument("--list", action="store_true", help="list the mutations and exit")
    p.add_argument("--timeout", type=positive_int, default=300, help="seconds one test run may take")
    p.add_argument("--output", default="experiments/results/mutants.md", help="where the Markdown table goes")
    p.add_argument("--quiet", action="store_true", help="no line per mutation")
    return p


def _interrupt(signum, frame):
    raise KeyboardInterrupt  # so that a kill restores the file and deletes the copy, as Ctrl-C does


def main(argv: list[str] | None = None) -> int:
    a = build_parser().parse_args(argv)
    signal.signal(signal.SIGTERM, _interrupt)

    def go() -> int:
        if a.list:
            for m in MUTATIONS:
                path = ROOT / m.file
                found = path.read_text().count(m.old) if path.is_file() else 0
                print(f"{m.name:<30} {'ok' if found == 1 else 'STALE':<6} {m.file:<32} {m.what}")
            return 0
        check_writable(a.output)
        started = time.perf_counter()
        rows = run(a.only, a.timeout, a.quiet)
        text = markdown(rows, time.perf_counter() - started)
        write_text(a.output, text)
        print(text.splitlines()[2])
        print(f"wrote {a.output}")
        return 0 if all(r["result"] == "caught" for r in rows) else 1

    return run_main("experiments.mutants", go)


if __name__ == "__main__":
    sys.exit(main())
