"""The typed config groups: one dataclass per group, the only home of defaults.

Every package reads its settings through these: ``launch/config.compose`` turns Hydra's tree
into one :class:`SpikeinConfig` and every stage and worker receives that object. The detector
sections (each detector's ``Config`` as ``audit.<name>``) are added by :func:`config_class`
from the detector registry (``launch/schema.py`` registers the result with Hydra). A worker
process gets the config through :func:`config_to_yaml` and :func:`config_from_yaml`, the only
conversion outside composition.

Each class checks what a type cannot say (ranges, choices, files that must exist) in its own
``validate()``; :func:`validate_config` runs them all on the composed config, plus the few
checks across groups. A choice field is a ``str`` for OmegaConf (which cannot hold
``Literal``) whose allowed values are the ``Literal`` alias named in its comment: the check
and its message read them from there (``core.checks.choices``), and so do the modules that act
on the value.
"""
from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import asdict, dataclass, field, fields, is_dataclass, make_dataclass
from pathlib import Path
from typing import Any, Dict, List, Literal, Mapping, Optional, TypeVar, get_type_hints

from omegaconf import II, MISSING, OmegaConf

from core.checks import at_least, auto_or_positive, choices, is_number, one_of, require
from core.errors import ConfigError

T = TypeVar("T")

# The choice fields' allowed values (the first listed is not necessarily the default)
DataKind = Literal["synthetic", "text", "jsonl", "hub", "tokens"]  # tokens: pre-tokenized, injected by overlay
TokenFormat = Literal["llmc", "nanogpt", "megatron", "numpy", "datatrove", "hf"]  # sources/tokens.py readers
InjectMode = Literal["document", "scattered"]  # document: a copy = the partition; scattered: items one by one
Order = Literal["shuffled", "canonical"]  # seeded random order | as published
Renderer = Literal["mcq", "mcq_noanswer", "cloze", "raw"]  # inject/render.py RENDERERS
OptionRenderer = Literal["mcq", "mcq_noanswer", "cloze"]  # renderers that print the options in the item's order
StreamDtype = Literal["auto", "uint16", "uint32"]  # the stream's token type
Precision = Literal["fp32", "bf16"]  # training
AuditPrecision = Literal["fp32", "bf16", "mixed", "amp"]  # audit/model.py DTYPES
KeepHf = Literal["all", "last"]  # HF exports kept
ZeroStage = Literal[0, 1, 2, 3]  # DeepSpeed ZeRO
LoggerMode = Literal[None, "online", "offline", "disabled"]  # null: $WANDB_MODE, else offline
LauncherKind = Literal["local", "torchrun", "deepspeed", "srun"]  # core/workers/launch.py
NullCheckWhen = Literal["last", "all"]  # audited checkpoints the null check runs on
HubFormat = Literal["mmlu", "arc", "hellaswag"]  # hub benchmark schemas (inject/benchmarks.py HUB_FORMATS)


@dataclass
class ModelConfig:
    name: str = MISSING  # the option's name (runs, W&B)
    pretrained: Optional[str] = None  # hub id or local dir: continual pretraining with from_pretrained
    tokenizer: Optional[str] = None  # hub id or local dir; null: the pretrained model's, or a BPE trained here
    bpe_vocab_size: Optional[int] = None  # only when a BPE is trained here
    trust_remote_code: bool = False  # let transformers run the model repo's code
    config: Optional[Dict[str, Any]] = None  # from-scratch architecture (transformers config kwargs)
    n_params: Optional[int] = None  # total parameters, for dry-run estimates only
    arch: Optional[Dict[str, Any]] = None  # a pretrained model's config kwargs (model_type, sizes): dry-run memory only

    def validate(self, where: str = "model") -> None:
        # a byte-level BPE starts from 256 byte tokens plus EOS; below that the trainer silently keeps 257
        at_least(f"{where}.bpe_vocab_size", self.bpe_vocab_size, 257, optional=True)


@dataclass
class HubCorpusConfig:
    path: Optional[str] = None  # datasets hub id
    name: Optional[str] = None  # dataset config name
    split: str = "train"  # dataset split
    streaming: bool = True  # stream instead of downloading the whole dataset


@dataclass
class SyntheticWorldConfig:
    seed: int = II("seed")  # the world's entities and facts
    n_people: int = 1500  # fictional people (the people benchmark asks about them)
    n_places: int = 300  # fictional places (the places benchmark)
    n_orgs: int = 300  # fictional organisations (corpus only)
    practice_questions: int = 2000  # in-domain MCQ practice text about held-out entities

    def validate(self, where: str = "data.synthetic") -> None:
        for key in ("n_people", "n_places", "n_orgs", "practice_questions"):
            at_least(f"{where}.{key}", getattr(self, key), 0)


@dataclass
class DataConfig:
    kind: str = "synthetic"  # DataKind
    paths: List[str] = field(default_factory=list)  # files or directories (text, jsonl)
    text_field: str = "text"  # jsonl / hub
    hub: HubCorpusConfig = field(default_factory=HubCorpusConfig)  # kind=hub
    max_doc_chars: int = 8000  # longer documents are split at paragraph or line breaks
    max_documents: Optional[int] = None  # cap on documents read (null: all)
    shuffle_seed: int = II("seed")  # document order of the stream
    synthetic: SyntheticWorldConfig = field(default_factory=SyntheticWorldConfig)  # kind=synthetic
    # kind=tokens: a pre-tokenized corpus, read in place (sources/); copies overlaid (inject/overlay.py)
    format: Optional[str] = None  # TokenFormat
    dtype: Optional[str] = None  # nanogpt / numpy / datatrove token type (null: uint16)
    global_indices: Optional[str] = None  # numpy: OLMo's global_indices file (training row order)
    index_map: Optional[str] = None  # megatron: GPT-NeoX index maps' common prefix (<prefix>_doc_idx.npy, ...); null: stored order
    sample_length: Optional[int] = None  # tokens per stored training sample (Pythia: 2049); null: train.seq_len
    start_step: int = 0  # continue at this step: the first batch reads rows [start_step*B, (start_step+1)*B)
    eos_id: Optional[int] = None  # the EOS wrapped around copies; null: the tokenizer's
    token_cache: bool = False  # text kinds: tokenize once into cache_dir, inject by overlay (rows in shuffle_seed order)
    cache_dir: Optional[str] = None  # the token cache; null: .token_cache beside the run dir

    def validate(self, where: str = "data") -> None:
        one_of(f"{where}.kind", self.kind, choices(DataKind))
        at_least(f"{where}.max_doc_chars", self.max_doc_chars, 0)
        at_least(f"{where}.max_documents", self.max_documents, 1, optional=True)
        self.synthetic.validate(f"{where}.synthetic")
        if self.kind == "tokens":
            one_of(f"{where}.format", self.format, choices(TokenFormat))
            at_least(f"{where}.sample_length", self.sample_length, 2, optional=True)
            at_least(f"{where}.start_step", self.start_step, 0)


@dataclass
class InjectConfig:
    counts: List[int] = field(default_factory=lambda: [0, 1, 4, 16, 64])  # one partition per entry; 0 = control
    partition_size: Optional[int] = 40  # items per partition (or partition_fraction of the benchmark)
    partition_fraction: Optional[float] = None  # alternative to partition_size (set that one to null)
    mode: str = "document"  # InjectMode: document: a copy = the partition in injected order; scattered: items one by one
    item_order: str = "shuffled"  # Order: shuffled: each partition in a seeded random order (exact null); canonical: file order
    option_order: str = "canonical"  # Order: canonical: choices as published; shuffled: seeded per item (answer remapped)
    renderer: str = "mcq"  # Renderer
    window: List[float] = field(default_factory=lambda: [0.0, 1.0])  # where copies go: fractions of one epoch's trained tokens
    allow_untrained_copies: bool = False  # true: only warn when train.max_steps/max_tokens stops before some copies
    max_injected_share: float = 0.2  # refuse plans whose copies exceed this share of the stream
    separator: str = "\n\n"  # joins item token lists inside a copy
    seed: int = II("seed")  # partitions and copy positions
    workers: int = 2  # tokenizer worker processes
    chunk_documents: int = 256  # documents per worker task
    skip_bad_rows: bool = False  # report and skip malformed benchmark rows instead of failing
    dtype: str = "auto"  # StreamDtype (auto: uint16 when the vocabulary fits)
    exclude_found: bool = False  # true: items found in the corpus (rendering or question) are dropped before partitioning

    def validate(self, where: str = "inject") -> None:
        require(len(self.counts) > 0, f"{where}.counts", self.counts, "expected a non-empty list of copy counts")
        for i, n in enumerate(self.counts):
            at_least(f"{where}.counts[{i}]", n, 0)
        at_least(f"{where}.partition_size", self.partition_size, 1, optional=True)
        fraction = self.partition_fraction
        require(fraction is None or (is_number(fraction) and 0 < fraction <= 1), f"{where}.partition_fraction",
                fraction, "expected a number in (0, 1] or null")
        require((self.partition_size is None) != (fraction is None), f"{where}.partition_size", self.partition_size,
                f"set exactly one of {where}.partition_size and {where}.partition_fraction (the other null)")
        one_of(f"{where}.mode", self.mode, choices(InjectMode))
        one_of(f"{where}.item_order", self.item_order, choices(Order))
        one_of(f"{where}.option_order", self.option_order, choices(Order))
        one_of(f"{where}.renderer", self.renderer, choices(Renderer))
        window = self.window
        require(len(window) == 2 and 0 <= window[0] < window[1] <= 1, f"{where}.window", window,
                "expected [start, end] with 0 <= start < end <= 1")
        share = self.max_injected_share
        require(is_number(share) and 0 < share <= 1, f"{where}.max_injected_share", share,
                "expected a number in (0, 1]")
        at_least(f"{where}.workers", self.workers, 1)
        at_least(f"{where}.chunk_documents", self.chunk_documents, 1)
        one_of(f"{where}.dtype", self.dtype, choices(StreamDtype))
        if self.option_order == "shuffled" and self.renderer not in choices(OptionRenderer):
            raise ConfigError(f"{where}.option_order=shuffled needs a renderer that prints the options "
                              f"({', '.join(choices(OptionRenderer))}); {where}.renderer={self.renderer} "
                              "injects the original record")


@dataclass
class BenchmarkConfig:
    """One entry of ``benchmarks``: the settings every source has. Each source's class below
    adds its own; an entry is checked against its source's class, but kept as written (its
    keys are hashed into the data config, so defaults are not filled in)."""

    source: str = MISSING  # a key of BENCHMARK_SOURCES: hub | mmlu_dir | arc_jsonl | generic | synthetic
    skip_bad_rows: Optional[bool] = None  # null: inject.skip_bad_rows
    inject: Optional[Dict[str, Any]] = None  # per-benchmark override of inject keys

    def validate(self, where: str, inject: InjectConfig) -> None:
        """This benchmark's own settings, and its plan: ``inject`` with the override applied."""
        self.check_settings(where)
        override = dict(self.inject or {})
        unknown = sorted(set(override) - {f.name for f in fields(InjectConfig)})
        require(not unknown, f"{where}.inject", override, f"unknown inject key(s) {', '.join(unknown)}")
        benchmark_plan(inject, {"inject": override}).validate(f"{where}.inject")

    def check_settings(self, where: str) -> None:
        """The source's own settings (also run as the benchmark loads; its rows are checked then)."""


@dataclass
class HubBenchmark(BenchmarkConfig):
    """``source: hub``: a Hugging Face dataset (or local files in a hub schema)."""

    path: Optional[str] = None  # hub id
    name: Optional[str] = None  # hub config name
    split: Optional[str] = "test"  # hub split
    format: Optional[str] = None  # HubFormat
    data_files: Optional[Any] = None  # files of a builder dataset
    cache_dir: Optional[str] = None  # datasets cache
    trust_remote_code: bool = False  # refused (datasets scripts are not run)

    def check_settings(self, where: str) -> None:
        one_of(f"{where}.format", self.format, choices(HubFormat))
        require(not self.trust_remote_code, f"{where}.trust_remote_code", self.trust_remote_code,
                "not supported (datasets scripts are not run); use a revision with data files (parquet)")


@dataclass
class MmluDirBenchmark(BenchmarkConfig):
    """``source: mmlu_dir``: header-less MMLU CSVs."""

    path: Optional[str] = None  # the directory of <subject>_test.csv files


@dataclass
class ArcJsonlBenchmark(BenchmarkConfig):
    """``source: arc_jsonl``: an ARC JSONL file."""

    path: Optional[str] = None  # the JSONL file


@dataclass
class GenericBenchmark(BenchmarkConfig):
    """``source: generic``: any JSONL/JSON/CSV/parquet file plus a field mapping or a user function."""

    path: Optional[str] = None  # the file
    format: Optional[str] = None  # jsonl | json | csv | parquet (null: from the suffix; checked as the file loads)
    columns: Optional[List[str]] = None  # CSV without a header row: the field names
    fields: Optional[Dict[str, Any]] = None  # field mapping (id, question, options/choices, answer...)
    answers_file: Optional[str] = None  # labels in a separate line-aligned file (PIQA, Winogrande)
    convert: Optional[str] = None  # a user function module:function (record -> item fields), imported only when named

@dataclass
class SyntheticBenchmark(BenchmarkConfig):
    """``source: synthetic``: a benchmark of the built-in synthetic world (data.synthetic)."""

    name: Optional[str] = None  # people | places (null: the entry's name)


BENCHMARK_SOURCES: Dict[str, type[BenchmarkConfig]] = {
    "hub": HubBenchmark, "mmlu_dir": MmluDirBenchmark, "arc_jsonl": ArcJsonlBenchmark,
    "generic": GenericBenchmark, "synthetic": SyntheticBenchmark,
}


def benchmark_spec(where: str, spec: Any) -> BenchmarkConfig:
    """Entry ``spec`` of ``benchmarks`` as its source's class (types checked, unknown keys
    refused); the entry itself stays as written."""
    from omegaconf.errors import OmegaConfBaseException

    require(isinstance(spec, Mapping), where, spec, "expected a mapping with at least `source`")
    one_of(f"{where}.source", spec.get("source"), BENCHMARK_SOURCES)
    try:
        typed = OmegaConf.merge(OmegaConf.structured(BENCHMARK_SOURCES[spec["source"]]), _plain(spec))
        return OmegaConf.to_object(typed)  # type: ignore[return-value]
    except OmegaConfBaseException as e:
        raise ConfigError(f"{where}.{e.full_key}: {str(e.msg).splitlines()[0]}") from None


def benchmark_plan(inject: Any, spec: Mapping[str, Any] | None) -> InjectConfig:
    """The plan benchmark ``spec`` gets: ``inject`` (the group, typed or a mapping) with the
    entry's ``inject`` override applied. The one place the override is merged."""
    base = asdict(inject) if is_dataclass(inject) and not isinstance(inject, type) else _plain(inject)
    override = _plain((spec or {}).get("inject") or {})
    return InjectConfig(**{**base, **override})


def _plain(node: Any) -> dict[str, Any]:
    return dict(node)  # the typed config holds plain mappings (benchmarks, overrides)


@dataclass
class TrainConfig:
    seq_len: int = 256  # tokens per training sequence
    global_batch: int = 16  # sequences per optimizer step (all ranks, all micro-steps)
    micro_batch: int = 8  # sequences per rank per forward
    max_steps: Optional[int] = None  # null: one pass over the stream (or max_tokens)
    max_tokens: Optional[int] = None  # alternative to max_steps; beyond the stream = more epochs
    lr: Any = 1.0e-3  # a number or "auto" (Step Law, from-scratch runs)
    batch_tokens: Any = None  # null, a number or "auto" (Step Law): sets global_batch
    min_lr_ratio: float = 0.1  # cosine floor, as a fraction of lr
    warmup_steps: int = 20  # linear warmup, then cosine decay to min_lr_ratio * lr
    weight_decay: float = 0.1  # matrices only (not norms or biases)
    betas: List[float] = field(default_factory=lambda: [0.9, 0.95])  # AdamW
    eps: float = 1.0e-8  # AdamW
    grad_clip: float = 1.0  # 0: no clipping
    precision: str = "fp32"  # Precision
    checkpoint_every: Optional[int] = 100  # steps (null: the last step only); a checkpoint is also written at the end
    checkpoint_steps: List[int] = field(default_factory=list)  # extra checkpoint steps, e.g. log-spaced [1, 4, 16, 64]
    save_initial: bool = True  # also export the untrained weights as step_0 (audit baseline)
    keep_last: int = 2  # DeepSpeed states kept (resume needs the newest)
    keep_hf: str = "all"  # KeepHf: HF exports kept for the audit (all, or the last only)
    log_every: int = 10  # steps per metrics row (loss averaged over them)
    peak_flops: Dict[str, float] = field(default_factory=lambda: {"cpu": 1.0e12})  # MFU; cuda: from the GPU's name
    seed: int = II("seed")  # weight init and data order
    activation_checkpointing: bool = False  # HF gradient checkpointing: recompute each layer in backward
    loss_chunk_tokens: Optional[int] = None  # chunked fp32 loss (train/loss.py), positions per chunk; null: HF's
    gpu_memory_gb: Optional[float] = None  # dry run: refuse a plan whose estimated peak per GPU exceeds this

    def validate(self, where: str = "train") -> None:
        for key in ("seq_len", "global_batch", "micro_batch", "keep_last", "log_every"):
            at_least(f"{where}.{key}", getattr(self, key), 1)
        for key in ("checkpoint_every", "max_steps", "max_tokens"):
            at_least(f"{where}.{key}", getattr(self, key), 1, optional=True)
        auto_or_positive(f"{where}.lr", self.lr, optional=False)
        auto_or_positive(f"{where}.batch_tokens", self.batch_tokens, optional=True)
        require(0 <= self.min_lr_ratio <= 1, f"{where}.min_lr_ratio", self.min_lr_ratio,
                "expected a number in [0, 1]")
        for key in ("warmup_steps", "weight_decay", "grad_clip"):
            at_least(f"{where}.{key}", getattr(self, key), 0)
        require(len(self.betas) == 2 and all(0 <= b < 1 for b in self.betas), f"{where}.betas", self.betas,
                "expected [beta1, beta2] with 0 <= beta < 1")
        require(self.eps > 0, f"{where}.eps", self.eps, "expected a positive number")
        one_of(f"{where}.precision", self.precision, choices(Precision))
        one_of(f"{where}.keep_hf", self.keep_hf, choices(KeepHf))
        at_least(f"{where}.loss_chunk_tokens", self.loss_chunk_tokens, 1, optional=True)
        gib = self.gpu_memory_gb
        require(gib is None or (is_number(gib) and gib > 0), f"{where}.gpu_memory_gb", gib,
                "expected a positive number of GiB or null")


@dataclass
class DeepSpeedConfig:
    zero_stage: int = 0  # ZeroStage
    torch_adam: bool = True  # torch AdamW: no C++ op build
    fused: bool = False  # torch's fused AdamW kernel (GPUs only)
    backend: str = "gloo"  # gloo (CPU) | nccl (GPU)
    user_json: Optional[str] = None  # a DeepSpeed JSON file to use instead of the generated one
    extra: Dict[str, Any] = field(default_factory=dict)  # merged into the generated JSON

    def validate(self, where: str = "deepspeed") -> None:
        one_of(f"{where}.zero_stage", self.zero_stage, choices(ZeroStage))
        if self.user_json is None:
            return
        path = Path(str(self.user_json))
        require(path.is_file(), f"{where}.user_json", self.user_json, "no such file")
        try:
            json.loads(path.read_text())
        except ValueError as e:
            raise ConfigError(f"{where}.user_json={self.user_json}: not valid JSON ({e})") from None


@dataclass
class LoggerConfig:
    project: str = "spikein"  # W&B project
    entity: Optional[str] = None  # W&B entity (team or user)
    mode: Optional[str] = None  # LoggerMode (null: $WANDB_MODE, else offline)
    group: str = II("experiment_name")  # W&B group (a sweep sets its own)
    tags: List[str] = field(default_factory=list)  # W&B run tags
    init_timeout_s: float = 20.0  # seconds an online start may take before falling back to offline (sync later)

    def validate(self, where: str = "logger") -> None:
        one_of(f"{where}.mode", self.mode, choices(LoggerMode))


@dataclass
class LauncherConfig:
    kind: str = "local"  # LauncherKind (see core/workers/launch.py)
    nproc_per_node: int = 1  # processes (GPUs) per node
    num_nodes: int = 1  # machines; several: see conf/launcher/*.yaml
    node_rank: int = 0  # this node's rank (torchrun, several nodes)
    master_addr: Optional[str] = None  # null: 127.0.0.1 (one node), the first host (srun, hostfile); set it for torchrun nodes
    master_port: Optional[int] = None  # null: a free port (one node), from $SLURM_JOB_ID (srun)
    hostfile: Optional[str] = None  # deepspeed launcher: "host slots=N" lines; hosts and slots come from it
    include: Optional[str] = None  # deepspeed hostfile: only these hosts/slots ("worker-0@worker-1:0,2")
    exclude: Optional[str] = None  # deepspeed hostfile: all but these hosts/slots ("worker-1:0")

    def validate(self, where: str = "launcher") -> None:
        one_of(f"{where}.kind", self.kind, choices(LauncherKind))
        at_least(f"{where}.nproc_per_node", self.nproc_per_node, 1)
        at_least(f"{where}.num_nodes", self.num_nodes, 1)
        require(0 <= self.node_rank < self.num_nodes, f"{where}.node_rank", self.node_rank,
                f"expected 0 <= node_rank < {where}.num_nodes ({self.num_nodes})")
        port = self.master_port
        require(port is None or 0 < port < 65536, f"{where}.master_port", port, "expected a port in 1..65535 or null")


@dataclass
class NullCheckConfig:
    """``audit.null_check``: the controls re-tested in fresh random orders (audit/null_check.py)."""

    draws: int = 0  # fresh random orders per control partition and order detector; 0: off
    checkpoints: str = "last"  # NullCheckWhen: the audited checkpoints it runs on
    seed: int = II("seed")  # the fresh orders (never the recorded ones: other seed paths)

    def validate(self, where: str = "audit.null_check") -> None:
        at_least(f"{where}.draws", self.draws, 0)
        one_of(f"{where}.checkpoints", self.checkpoints, choices(NullCheckWhen))


@dataclass
class AuditBase:
    """``audit`` without the detectors' sections (those come from the registry)."""

    detectors: List[str] = field(default_factory=lambda: ["ordering", "option_shuffle", "accuracy"])  # registered names
    checkpoints: Any = "all"  # all | last | a step | [steps]
    watch: bool = False  # audit each checkpoint as it lands (`run`: while training) until training has finished
    poll_s: float = 30  # watch: seconds between polls of checkpoints/index.json
    watch_idle_s: float = 3600  # watch: give up after this long without a new checkpoint
    model: Optional[str] = None  # hub id or local dir to audit; null: the checkpoints of run_dir
    tokenizer: Optional[str] = None  # with model: tokenizer hub id or dir (null: the model's)
    benchmark: Any = None  # name or list from `benchmarks`; null: all (run: all in the manifest)
    limit: Optional[int] = None  # with model: first N items of each benchmark
    renderer: Optional[str] = None  # null: the manifest's (run) or the inject config's (model)
    precision: str = "fp32"  # AuditPrecision
    device: str = "auto"  # auto | cpu | cuda
    token_budget: int = 8192  # padded tokens per forward pass
    prefix_reuse: bool = True  # shared prefixes run once (one tree row per item)
    progress: bool = True  # progress bars
    context: int = 2048  # sliding windows beyond this many tokens (capped at the model's)
    stride: int = 1024  # later windows count only their last `stride` tokens
    null_check: NullCheckConfig = field(default_factory=NullCheckConfig)  # controls vs fresh random orders
    reference_model: Optional[str] = None  # hub id, local dir, or step_<N> of this run (step_0): paired tests against it
    chunk_tokens: int = 32768  # inputs per independently scored chunk: ranks score whole chunks (rank-free scores)

    def detector(self, name: str) -> Any:
        """``audit.<name>``: the detector's ``Config`` instance (None for a detector without one)."""
        return getattr(self, name, None)

    def validate(self, where: str = "audit") -> None:
        """These settings, and those of each detector in ``detectors`` (its section ``<where>.<name>``)."""
        sections = sorted(f.name for f in fields(self) if f.name not in AUDIT_BASE_FIELDS)
        for name in self.detectors:
            if name not in sections:
                raise ConfigError(f"unknown detector '{name}' in {where}.detectors; choose from: {', '.join(sections)}")
            check = getattr(getattr(self, name), "validate", None)
            if check is not None:  # a detector with settings checks them
                check(f"{where}.{name}")
        spec = self.checkpoints
        steps = spec if isinstance(spec, list) else [spec]
        ok = spec in ("all", "last") or all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in steps)
        require(ok, f"{where}.checkpoints", spec, "expected all, last, a step or a list of steps")
        one_of(f"{where}.precision", self.precision, choices(AuditPrecision))
        require(re.fullmatch(r"auto|cpu|cuda(:\d+)?", str(self.device)) is not None, f"{where}.device", self.device,
                "choose one of: auto, cpu, cuda (or cuda:<index>)")
        for key in ("token_budget", "context", "stride", "chunk_tokens"):
            at_least(f"{where}.{key}", getattr(self, key), 1)
        require(self.poll_s > 0, f"{where}.poll_s", self.poll_s, "expected a positive number of seconds")
        require(self.watch_idle_s > 0, f"{where}.watch_idle_s", self.watch_idle_s,
                "expected a positive number of seconds")
        at_least(f"{where}.limit", self.limit, 1, optional=True)
        self.null_check.validate(f"{where}.null_check")
        ref = self.reference_model
        require(ref is None or not (str(ref).startswith("step_") and self.model), f"{where}.reference_model", ref,
                "a step_<N> reference is a checkpoint of a run; with audit.model give a hub id or model directory")


AUDIT_BASE_FIELDS = frozenset(AuditBase.__dataclass_fields__)


@dataclass
class ReportConfig:
    alpha: float = 0.01  # a partition counts as detected when p < alpha

    def validate(self, where: str = "report") -> None:
        require(is_number(self.alpha) and 0 < self.alpha < 1, f"{where}.alpha", self.alpha, "expected a number in (0, 1)")


def validate_config(cfg: Any) -> None:
    """Raise a ConfigError naming the first key of the composed config (typed: each group its
    class's instance, as ``OmegaConf.to_object`` gives it) whose value cannot work."""
    cfg.inject.validate("inject")
    for name, spec in (cfg.benchmarks or {}).items():  # across groups: each benchmark's plan is inject's
        where = f"benchmarks.{name}"
        benchmark_spec(where, spec).validate(where, cfg.inject)
    cfg.data.validate("data")
    cfg.model.validate("model")
    cfg.train.validate("train")
    cfg.deepspeed.validate("deepspeed")
    cfg.audit.validate("audit")
    cfg.launcher.validate("launcher")
    cfg.logger.validate("logger")
    cfg.report.validate("report")


@dataclass
class SpikeinConfig:
    """The whole composed tree (field order is the order of config.yaml and of W&B's config)."""

    experiment_name: str = "demo"  # names run_dir and the W&B group
    run_dir: str = "runs/${experiment_name}"  # every stage's input and output
    seed: int = 1234  # the seed every ${seed} interpolation reads
    overwrite: bool = False  # rebuild a stage whose output came from another config
    dry_run: bool = False  # print the resolved plan and budget, touch nothing
    sweep_dir: Optional[str] = None  # `spikein report sweep_dir=...`: aggregate a sweep
    benchmarks: Dict[str, Any] = field(default_factory=dict)  # name -> BenchmarkConfig entry, kept as written
    model: ModelConfig = field(default_factory=ModelConfig)  # the model trained (and its tokenizer)
    data: DataConfig = field(default_factory=DataConfig)  # the pretraining corpus
    inject: InjectConfig = field(default_factory=InjectConfig)  # partitions and copies
    train: TrainConfig = field(default_factory=TrainConfig)  # continual pretraining
    deepspeed: DeepSpeedConfig = field(default_factory=DeepSpeedConfig)  # the DeepSpeed engine
    audit: AuditBase = field(default_factory=AuditBase)  # detectors (each one's section: config_class)
    logger: LoggerConfig = field(default_factory=LoggerConfig)  # W&B
    launcher: LauncherConfig = field(default_factory=LauncherConfig)  # how worker processes start
    report: ReportConfig = field(default_factory=ReportConfig)  # the report's thresholds


def config_class(detector_configs: Mapping[str, type]) -> type[SpikeinConfig]:
    """:class:`SpikeinConfig` whose ``audit`` also holds ``<name>: Config`` per detector
    (``detector_configs``: the registry's name -> ``Config``, sorted by name)."""
    sections = [(name, cls, field(default_factory=cls)) for name, cls in sorted(detector_configs.items())]
    audit = make_dataclass("AuditConfig", sections, bases=(AuditBase,))
    top = make_dataclass("SpikeinConfig", [("audit", audit, field(default_factory=audit))], bases=(SpikeinConfig,))
    return top


def with_values(cfg: T, values: Mapping[str, Any]) -> T:
    """``cfg`` with the dotted keys of ``values`` replaced (``{"audit.watch": True}``); a
    new object, the sections it does not touch shared with ``cfg``."""
    for dotted, value in values.items():
        cfg = _replaced(cfg, dotted.split("."), value)
    return cfg


def _replaced(node: Any, path: list[str], value: Any) -> Any:
    head, *rest = path
    new = _replaced(node[head] if isinstance(node, dict) else getattr(node, head), rest, value) if rest else value
    return {**node, head: new} if isinstance(node, dict) else dataclasses.replace(node, **{head: new})


def config_to_yaml(cfg: SpikeinConfig | Mapping[str, Any]) -> str:
    """The resolved config (or its plain form, e.g. redacted) as YAML: config.yaml, a worker's config file."""
    from omegaconf import OmegaConf

    return OmegaConf.to_yaml(dict(cfg) if isinstance(cfg, Mapping) else dataclasses.asdict(cfg))


def config_from_yaml(text: str | Mapping[str, Any], cls: type[T]) -> T:
    """What :func:`config_to_yaml` wrote (or its plain form) typed again as ``cls`` (a
    :func:`config_class`). A run's config.yaml from another version reads too: keys this
    checkout does not declare are dropped, keys it added take their defaults."""
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    from core.errors import ConfigError

    try:
        plain = OmegaConf.to_container(OmegaConf.create(text)) if isinstance(text, str) else dict(text)
        merged = OmegaConf.merge(OmegaConf.structured(cls), _declared_only(plain, cls))
        return OmegaConf.to_object(merged)  # type: ignore[return-value]
    except (OmegaConfBaseException, ValueError) as e:
        raise ConfigError(f"unreadable config: {str(e).splitlines()[0]}") from None


def _declared_only(node: Any, cls: type) -> Any:
    """``node`` without the keys the dataclass ``cls`` (recursively) does not declare."""
    if not isinstance(node, Mapping):
        return node
    hints = get_type_hints(cls)
    out = {}
    for key, value in node.items():
        if key in hints:
            sub = hints[key]
            out[key] = _declared_only(value, sub) if isinstance(sub, type) and dataclasses.is_dataclass(sub) else value
    return out


def typed_section(cls: type[T], section: Any) -> T:
    """A config group as its dataclass: the typed section (``cfg.launcher``) passes through;
    a plain dict (tests, settings written by hand) is built into one."""
    return section if isinstance(section, cls) else cls(**dict(section))
