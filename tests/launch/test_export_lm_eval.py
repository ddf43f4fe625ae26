"""`spikein export-lm-eval`: the partitions as lm-eval tasks, and lm-eval on them agreeing with
spikein's accuracy detector item by item (letter, text, norm = acc_norm, bytes = acc_bytes)."""
from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import yaml
from audit_fixtures import add_checkpoints, make_items, make_run_dir, one_thread, tiny_model  # noqa: E402,F401
from conftest import make_tokenizer  # noqa: E402

from audit.detectors import AuditContext, PartitionData, get_detector
from audit.engine import Engine, EngineSettings
from audit.model import load_model
from core.errors import SpikeinError
from inject.items import Item
from inject.manifest import load_manifest, load_partition, load_run_tokenizer
from inject.render import render_cloze, render_mcq
from inject.tokenizer import EOS_TOKEN, load_tokenizer, special_ids
from launch.cli import main
from launch.export_lm_eval import export_lm_eval

pytestmark = pytest.mark.usefixtures("one_thread")

# a context line, non-ASCII choices (bytes != characters) and choices of very different lengths
ODD = [Item("u0", "Which dessert is the café's?", ("crème brûlée", "tea", "naïve café au lait", "ok"), 2,
            context="The menu lists four things."),
       Item("u1", "Pick one.", ("a", "a much longer answer than the others", "mid length"), 0)]


def prepend_bos(tok_dir: Path) -> None:
    """Make the test BPE prepend BOS the way Llama tokenizers do (a post-processor)."""
    from tokenizers import Tokenizer, processors

    path = tok_dir / "tokenizer.json"
    backend = Tokenizer.from_file(str(path))
    bos = backend.token_to_id(EOS_TOKEN)
    backend.post_processor = processors.TemplateProcessing(single=f"{EOS_TOKEN} $A", special_tokens=[(EOS_TOKEN, bos)])
    backend.save(str(path))


def build_run(root: Path, bos: bool) -> Path:
    parts = {"hot": (4, make_items(8, seed=1, prefix="h") + ODD), "ctl0": (0, make_items(8, seed=2, prefix="a")),
             "ctl1": (0, make_items(8, seed=3, prefix="b"))}
    tok_dir = root.parent / f"{root.name}_tok"
    make_tokenizer(tok_dir, [it for _, items in parts.values() for it in items])
    if bos:
        prepend_bos(tok_dir)
        assert special_ids(load_tokenizer(str(tok_dir))).bos is not None
    make_run_dir(root, tok_dir, parts)
    add_checkpoints(root, {5: tiny_model(load_manifest(root).vocab_size, seed=1)}, tok_dir)
    return root


@pytest.fixture(scope="module")
def templates(tmp_path_factory):
    """Run dirs with a random-init checkpoint: a tokenizer without BOS and one that prepends it."""
    return {bos: build_run(tmp_path_factory.mktemp("run"), bos) for bos in (False, True)}


def copy_of(template: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(template, tmp_path / "run"))


@pytest.fixture
def run(templates, tmp_path):
    return copy_of(templates[False], tmp_path)


def snapshot(d: Path) -> dict[str, bytes]:
    return {str(p.relative_to(d)): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()}


def test_export_writes_one_task_per_partition_and_style_with_spikeins_prompts(run):
    out = export_lm_eval(run)
    manifest = load_manifest(run)
    for part in manifest.partitions:
        items = load_partition(run, part)
        rows = [json.loads(x) for x in (out / "bench" / f"{part.name}.jsonl").read_text().splitlines()]
        assert [r["id"] for r in rows] == [it.id for it in items]
        for row, it in zip(rows, items):
            assert row["gold"] == it.answer and row["copies"] == part.count
            for i in range(len(it.choices)):
                answered = replace(it, answer=i)
                assert row["letter_context"] + " " + row["letter_choices"][i] == render_mcq(answered)
                assert row["text_context"] + " " + row["text_choices"][i] == render_cloze(answered)
        for style in ("letter", "text"):
            cfg = yaml.safe_load((out / "bench" / f"{part.name}_{style}.yaml").read_text())
            assert cfg["task"] == f"spikein_bench_{part.name}_{style}"
            assert cfg["dataset_kwargs"]["data_files"]["test"] == str(out / "bench" / f"{part.name}.jsonl")
            assert (cfg["doc_to_text"], cfg["doc_to_choice"], cfg["target_delimiter"]) == (
                f"{style}_context", f"{style}_choices", " ")
            assert cfg["metadata"]["copies"] == part.count
    group = yaml.safe_load((out / "bench" / "_spikein_bench.yaml").read_text())
    assert group["task"] == ["spikein_bench_letter", "spikein_bench_text"] and "aggregate_metric_list" not in group
    text = yaml.safe_load((out / "bench" / "_spikein_bench_text.yaml").read_text())
    assert text["task"] == [f"spikein_bench_{p.name}_text" for p in manifest.partitions]
    assert f"--include_path {out} --tasks spikein_bench" in (out / "README.md").read_text()


def test_export_is_idempotent_and_a_failed_export_leaves_the_previous_one(run):
    out = export_lm_eval(run)
    first = snapshot(out)
    assert snapshot(export_lm_eval(run)) == first
    (run / "data/partitions/bench/ctl1.jsonl").unlink()
    with pytest.raises(SpikeinError, match="ctl1.jsonl"):
        export_lm_eval(run)
    assert snapshot(out) == first
    assert sorted(p.name for p in run.iterdir() if "lm_eval" in p.name) == ["lm_eval"]  # no temp dirs left


def test_names_that_collide_as_task_names_are_refused(templates, tmp_path):
    tok_dir = templates[False].parent / f"{templates[False].name}_tok"
    run, _ = make_run_dir(tmp_path / "run", tok_dir, {"a-b": (1, ODD), "a_b": (0, ODD)})
    with pytest.raises(SpikeinError, match="spikein_bench_a_b_letter"):
        export_lm_eval(run)
    assert not (run / "lm_eval").exists()


def test_cli_stage(run, capsys):
    assert main(["export-lm-eval", f"run_dir={run}"]) == 0
    assert (run / "lm_eval/bench/hot_text.yaml").exists()
    assert main(["export-lm-eval", f"run_dir={run}/nothing"]) == 2
    assert "no manifest" in capsys.readouterr().err


# --- lm-eval on the export ------------------------------------------------------------------

def spikein_raws(run: Path, step: int) -> dict[tuple[str, str], dict]:
    """The accuracy detector's per-item raws for every (partition, style)."""
    manifest = load_manifest(run)
    model = load_model(str(run / f"checkpoints/step_{step}/hf"), device="cpu")
    engine = Engine(model, EngineSettings(context=256, stride=128, progress=False))
    ctx = AuditContext(engine, load_run_tokenizer(run, manifest), "mcq", manifest.separator_ids, manifest.bos_id)
    parts = [PartitionData("bench", p.name, p.count, load_partition(run, p)) for p in manifest.partitions]
    return {(p.name, style): get_detector("accuracy", {"style": style}).score(ctx, p)
            for style in ("letter", "text", "norm", "bytes") for p in parts}


def lm_eval_samples(run: Path, step: int) -> tuple[dict, dict]:
    import lm_eval
    from lm_eval.tasks import TaskManager

    out = export_lm_eval(run)
    res = lm_eval.simple_evaluate(
        model="hf", model_args=f"pretrained={run}/checkpoints/step_{step}/hf,dtype=float32",
        tasks=["spikein_bench"], task_manager=TaskManager(include_path=str(out), include_defaults=False), log_samples=True,
        batch_size=8, device="cpu",
    )
    samples = {task: sorted(s, key=lambda s: s["doc_id"]) for task, s in res["samples"].items()}
    return res["results"], samples


@pytest.mark.parametrize("bos", [False, True], ids=["no_bos", "bos"])
def test_lm_eval_on_the_export_agrees_with_the_accuracy_detector_item_by_item(templates, tmp_path, bos):
    pytest.importorskip("lm_eval")
    run = copy_of(templates[bos], tmp_path)
    results, samples = lm_eval_samples(run, 5)
    raws = spikein_raws(run, 5)
    differs = 0
    for part in load_manifest(run).partitions:
        items = load_partition(run, part)
        for style, metrics in (("letter", {"acc": "letter"}),
                               ("text", {"acc": "text", "acc_norm": "norm", "acc_bytes": "bytes"})):
            got = samples[f"spikein_bench_{part.name}_{style}"]
            assert [s["doc_id"] for s in got] == list(range(len(items)))
            render = render_mcq if style == "letter" else render_cloze
            for s, it in zip(got, items):  # lm-eval scored spikein's texts, split after "Answer:"
                assert [c + x for c, x in s["arguments"]] == [render(replace(it, answer=i)) for i in range(len(it.choices))]
            lls = [[ll for ll, _ in s["filtered_resps"]] for s in got]
            np.testing.assert_allclose(np.concatenate(lls), np.concatenate(raws[part.name, style]["ll"]), atol=1e-4)
            for metric, spikein_style in metrics.items():
                assert [int(s[metric]) for s in got] == raws[part.name, spikein_style]["correct"], (part.name, metric)
                acc = np.mean(raws[part.name, spikein_style]["correct"])
                assert results[f"spikein_bench_{part.name}_{style}"][f"{metric},none"] == pytest.approx(acc)
        differs += sum(a != b for a, b in zip(raws[part.name, "text"]["pred"], raws[part.name, "norm"]["pred"]))
    assert differs > 0  # normalising changed some choice, so the acc_norm comparison has teeth
