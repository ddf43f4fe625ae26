import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from core.config import with_values
from core.errors import SpikeinError
from inject.manifest import load_manifest, load_partition, load_run_tokenizer, open_stream
from inject.render import get_renderer
from inject.stage import run_inject
from inject.verify import verify_run_data
from tests.inject_fixtures import inject_config


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def build(tmp_path_factory, name: str, *overrides: str):
    """One inject run (it verifies every copy against the partition files)."""
    cfg = inject_config(tmp_path_factory.mktemp(name), *overrides)
    run_inject(cfg)
    return cfg, Path(cfg.run_dir)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    return build(tmp_path_factory, "inject")


def test_copies_hold_exactly_the_rendered_items(built):
    _, run = built
    m = load_manifest(run)
    stream = open_stream(run, m)
    tok = load_run_tokenizer(run, m)
    render = get_renderer(m.benchmarks[0].renderer)
    for part in m.partitions:
        copies = m.copies_of(part.benchmark, part.name)
        assert len(copies) == part.count
        expected_text = m.separator.join(render(it) for it in load_partition(run, part))
        for c in copies:  # decoded independently of the token-level verifier
            assert tok.decode(stream[c.start:c.end].tolist()) == expected_text


def test_item_text_occurs_count_times_and_controls_never(built):
    _, run = built
    m = load_manifest(run)
    tok = load_run_tokenizer(run, m)
    text = tok.decode(open_stream(run, m).tolist())
    render = get_renderer(m.benchmarks[0].renderer)
    for part in m.partitions:
        for it in load_partition(run, part):
            assert text.count(render(it)) == part.count, (part.name, it.id)


def test_partitions_are_disjoint_and_in_injected_order(built):
    cfg, run = built
    m = load_manifest(run)
    assert cfg.inject.option_order == "shuffled"  # the demo recipe's, composed by default (schema: canonical)
    assert m.benchmarks[0].item_order == "shuffled" and m.benchmarks[0].option_order == "shuffled"
    ids = [[it.id for it in load_partition(run, p)] for p in m.partitions]
    flat = [i for p in ids for i in p]
    assert len(flat) == len(set(flat)) == 8 * 3
    for part, p in zip(m.partitions, ids):  # file order = injected order, a seeded shuffle
        rows = [json.loads(x) for x in (run / "data" / part.file).read_text().splitlines()]
        assert [r["index"] for r in rows] == part.item_indices == [int(i[1:]) for i in p]  # id q<k>: line k
        assert p != sorted(p, key=lambda s: int(s[1:]))  # controls too
    assert [p.count for p in m.partitions] == [0, 1, 3]


def test_rerun_reuses_and_changed_config_refuses(built, capsys):
    cfg, run = built
    before = (run / "data" / "stream.bin").stat().st_mtime_ns
    run_inject(cfg)
    assert "up to date" in capsys.readouterr().out
    assert (run / "data" / "stream.bin").stat().st_mtime_ns == before
    changed = with_values(cfg, {"inject.counts": [0, 2, 3]})
    with pytest.raises(SpikeinError, match="inject.counts"):
        run_inject(changed)


def test_same_config_same_bytes_and_workers_do_not_matter(built, tmp_path):
    cfg, run = built
    again = inject_config(tmp_path, "inject.workers=2", "inject.chunk_documents=7")
    run_inject(again)
    assert _sha(Path(again.run_dir) / "data/stream.bin") == _sha(run / "data/stream.bin")
    m1, m2 = load_manifest(run), load_manifest(again.run_dir)
    assert m1.copies == m2.copies and m1.tokenizer_hash == m2.tokenizer_hash


def test_verify_fails_on_a_changed_byte_naming_the_copy(built, tmp_path):
    import shutil
    _, run = built
    work = tmp_path / "run"
    shutil.copytree(run, work)
    m = load_manifest(work)
    c = m.copies[0]
    stream = np.memmap(work / "data/stream.bin", dtype=m.dtype, mode="r+")
    stream[c.start + 2] = (int(stream[c.start + 2]) + 1) % m.vocab_size
    stream.flush()
    with pytest.raises(SpikeinError, match=f"copy {c.copy} of {c.benchmark}/{c.partition}"):
        verify_run_data(work)


def test_verify_finds_a_leaked_control_item(built, tmp_path):
    import shutil

    from inject.render import encode_items
    _, run = built
    work = tmp_path / "run"
    shutil.copytree(run, work)
    m = load_manifest(work)
    control = next(p for p in m.partitions if p.count == 0)
    toks = encode_items(load_run_tokenizer(work, m), load_partition(work, control)[:1], m.benchmarks[0].renderer)[0]
    stream = np.memmap(work / "data/stream.bin", dtype=m.dtype, mode="r+")
    free = max(c.end for c in m.copies) + 5 if max(c.end for c in m.copies) + 5 + len(toks) < m.n_tokens else 0
    stream[free:free + len(toks)] = toks
    stream.flush()
    with pytest.raises(SpikeinError, match="control item toy/x0 item"):
        verify_run_data(work)


def test_scattered_mode_places_each_item_count_times(tmp_path):
    cfg = inject_config(tmp_path, "inject.mode=scattered", "inject.window=[0.5,1.0]")
    run_inject(cfg)
    m = load_manifest(cfg.run_dir)
    for part in m.partitions:
        copies = m.copies_of(part.benchmark, part.name)
        assert len(copies) == part.count * part.n_items
        assert sorted({c.item for c in copies}) == (list(range(part.n_items)) if part.count else [])
    longest_doc = 600  # characters; a token is at least one
    assert m.epoch_tokens == m.n_tokens // 4096 * 4096 < m.n_tokens  # cpu_tiny: 16 x 256 tokens per step
    assert all(0.5 * m.epoch_tokens - longest_doc <= c.start and c.end < m.epoch_tokens for c in m.copies)


@pytest.mark.parametrize("override, message", [
    ("inject.partition_size=30", "partition_size"),
    ("inject.max_injected_share=0.01", "max_injected_share"),
    ("inject.window=[0.5,1.5]", "inject.window"),
    ("inject.counts=[0,-1]", "inject.counts"),
    ("inject.renderer=fancy", "inject.renderer"),
    ("data.paths=[/nonexistent/corpus]", "/nonexistent/corpus"),
])
def test_impossible_plans_fail_cleanly(tmp_path, override, message):
    with pytest.raises(SpikeinError, match=message):  # at compose (value checks) or in the stage
        run_inject(inject_config(tmp_path, override))
    assert not (tmp_path / "run").exists()  # nothing half-written


def test_empty_corpus_fails(tmp_path):
    cfg = inject_config(tmp_path, corpus_docs=0)
    with pytest.raises(SpikeinError, match="the corpus is empty"):
        run_inject(cfg)
    assert not Path(cfg.run_dir).exists()


@pytest.mark.slow
def test_cli_errors_are_one_line_and_nonzero(tmp_path):
    spikein = [sys.executable, "-m", "launch.cli"]
    for args, needle in [(["inject", "inject.countz=1"], "unknown config key 'inject.countz'"),
                         (["bogus"], "unknown stage 'bogus'"),
                         (["verify", f"run_dir={tmp_path}/none"], "no manifest")]:
        r = subprocess.run(spikein + args, capture_output=True, text=True)
        assert r.returncode == 2, r.stderr
        lines = [line for line in r.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and needle in lines[0], r.stderr


@pytest.fixture(scope="module")
def built_options(tmp_path_factory):
    return build(tmp_path_factory, "options", "inject.option_order=shuffled")


def test_shuffled_options_stored_as_injected_and_scored_as_injected(built_options):
    from audit.sequences import answer_group
    from inject.render import encode_text, render_mcq

    cfg, run = built_options
    m = load_manifest(run)
    tok = load_run_tokenizer(run, m)
    stream = open_stream(run, m)
    published = [json.loads(x) for x in Path(cfg.benchmarks["toy"]["path"]).read_text().splitlines()]
    moved = 0
    for part in m.partitions:
        rows = [json.loads(x) for x in (run / "data" / part.file).read_text().splitlines()]
        items = load_partition(run, part)
        for row, it in zip(rows, items):
            src = published[row["index"]]
            assert row["choices"] == [src["opts"][k] for k in row["option_order"]]
            assert it.choices[it.answer] == src["opts"][src["gold"]] and row["original_answer"] == src["gold"]
            moved += it.answer != src["gold"]
            group = answer_group(tok, it, "letter", m.bos_id)  # the audit's prompt, correct answer
            assert group.prefix + group.continuations[it.answer] == [m.bos_id] * (m.bos_id is not None) + \
                encode_text(tok, render_mcq(it))
        for c in m.copies_of(part.benchmark, part.name):
            assert tok.decode(stream[c.start:c.end].tolist()) == m.separator.join(render_mcq(it) for it in items)
    assert moved > 8


def test_partition_files_round_trip_the_plan(built_options):
    from inject.stage import plan_benchmarks

    cfg, run = built_options
    m = load_manifest(run)
    assert verify_run_data(run)["copies"] == len(m.copies) == 4  # the stream holds the files' items, as injected
    [(_, parts)] = plan_benchmarks(cfg)
    for planned, part in zip(parts, m.partitions):
        assert load_partition(run, part) == list(planned.items)
        assert part.item_indices == list(planned.indices)


@pytest.mark.parametrize("key, value", [("inject.item_order", "canonical"), ("inject.option_order", "canonical"),
                                        ("train.global_batch", 8)])
def test_orders_and_batch_change_the_data(built, key, value):
    cfg, _ = built
    with pytest.raises(SpikeinError, match=key):
        run_inject(with_values(cfg, {key: value}))


def test_copies_past_max_steps_are_refused_or_with_a_flag_warned_about(tmp_path, capsys):
    cfg = inject_config(tmp_path, "train.max_steps=1")  # 4,096 of ~15,000 tokens trained on
    with pytest.raises(SpikeinError, match=r"copies lie past the 4,096 tokens.*allow_untrained_copies") as e:
        run_inject(cfg)
    assert "\n" not in str(e.value) and not Path(cfg.run_dir).exists()
    run_inject(inject_config(tmp_path, "train.max_steps=1", "inject.allow_untrained_copies=true"))
    assert "inject: warning:" in capsys.readouterr().out
    assert run_inject(inject_config(tmp_path / "fits", "train.max_steps=1", "inject.window=[0.0,0.3]")) == 0


def test_controls_option_orders_never_reach_the_training_data(built_options, tmp_path, monkeypatch):
    """Issue 22: the option-shuffle null is exact only if nothing the model trains on depends on
    a control's recorded order. Give every item that no copy injects (controls and never-partitioned
    items) another order: the stream, manifest and tokenizer must stay byte-identical."""
    import inject.plan as plan

    _, run = built_options
    m = load_manifest(run)
    injected = {(p.benchmark, i) for p in m.partitions if p.count > 0 for i in p.item_indices}
    seeded = plan.option_order_for

    def rotated_unless_injected(seed: int, benchmark: str, index: int, n: int) -> tuple[int, ...]:
        order = seeded(seed, benchmark, index, n)
        return order if (benchmark, index) in injected else order[1:] + order[:1]

    monkeypatch.setattr(plan, "option_order_for", rotated_unless_injected)
    cfg = inject_config(tmp_path, "inject.option_order=shuffled")
    run_inject(cfg)
    other = Path(cfg.run_dir)
    controls = [p.file for p in m.partitions if p.count == 0]
    assert all(_sha(run / "data" / f) != _sha(other / "data" / f) for f in controls)  # the orders did change
    for f in ("stream.bin", "tokenizer/tokenizer.json"):
        assert _sha(run / "data" / f) == _sha(other / "data" / f), f

    def manifest(r: Path) -> dict:  # the config hash differs only by the fixture's corpus path
        return {k: v for k, v in json.loads((r / "data" / "manifest.json").read_text()).items() if k != "config_hash"}

    assert manifest(run) == manifest(other)
