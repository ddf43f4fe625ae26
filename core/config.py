"""The typed config groups: one dataclass per group, the only home of defaults.

Every package reads its settings through these: ``launch/config.compose`` turns Hydra's tree
into one :class:`SpikeinConfig` and every stage and worker receives that object. The detector
sections (each detector's ``Config`` as ``audit.<name>``) are added by :func:`config_class`
from the detector registry (``launch/schema.py`` registers the result with Hydra); value
checks that a type cannot say live in ``launch/validate.py``. A worker process gets the
config through :func:`config_to_yaml` and :func:`config_from_yaml`, the only conversion
outside composition.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field, make_dataclass
from typing import Any, Dict, List, Mapping, Optional, TypeVar, get_type_hints

from omegaconf import II, MISSING

T = TypeVar("T")


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


@dataclass
class DataConfig:
    kind: str = "synthetic"  # synthetic | text | jsonl | hub | tokens (pre-tokenized, injected by overlay)
    paths: List[str] = field(default_factory=list)  # files or directories (text, jsonl)
    text_field: str = "text"  # jsonl / hub
    hub: HubCorpusConfig = field(default_factory=HubCorpusConfig)  # kind=hub
    max_doc_chars: int = 8000  # longer documents are split at paragraph or line breaks
    max_documents: Optional[int] = None  # cap on documents read (null: all)
    shuffle_seed: int = II("seed")  # document order of the stream
    synthetic: SyntheticWorldConfig = field(default_factory=SyntheticWorldConfig)  # kind=synthetic
    # kind=tokens: a pre-tokenized corpus, read in place (sources/); copies overlaid (inject/overlay.py)
    format: Optional[str] = None  # llmc | nanogpt | megatron | numpy | datatrove | hf
    dtype: Optional[str] = None  # nanogpt / numpy / datatrove token type (null: uint16)
    global_indices: Optional[str] = None  # numpy: OLMo's global_indices file (training row order)
    index_map: Optional[str] = None  # megatron: GPT-NeoX index maps' common prefix (<prefix>_doc_idx.npy, ...); null: stored order
    sample_length: Optional[int] = None  # tokens per stored training sample (Pythia: 2049); null: train.seq_len
    start_step: int = 0  # continue at this step: the first batch reads rows [start_step*B, (start_step+1)*B)
    eos_id: Optional[int] = None  # the EOS wrapped around copies; null: the tokenizer's
    token_cache: bool = False  # text kinds: tokenize once into cache_dir, inject by overlay (rows in shuffle_seed order)
    cache_dir: Optional[str] = None  # the token cache; null: .token_cache beside the run dir


@dataclass
class InjectConfig:
    counts: List[int] = field(default_factory=lambda: [0, 1, 4, 16, 64])  # one partition per entry; 0 = control
    partition_size: Optional[int] = 40  # items per partition (or partition_fraction of the benchmark)
    partition_fraction: Optional[float] = None  # alternative to partition_size (set that one to null)
    mode: str = "document"  # document: a copy = the partition in injected order; scattered: items one by one
    item_order: str = "shuffled"  # shuffled: each partition in a seeded random order (exact null); canonical: file order
    option_order: str = "canonical"  # canonical: choices as published; shuffled: seeded per item (answer remapped)
    renderer: str = "mcq"  # mcq | mcq_noanswer | cloze | raw
    window: List[float] = field(default_factory=lambda: [0.0, 1.0])  # where copies go: fractions of one epoch's trained tokens
    allow_untrained_copies: bool = False  # true: only warn when train.max_steps/max_tokens stops before some copies
    max_injected_share: float = 0.2  # refuse plans whose copies exceed this share of the stream
    separator: str = "\n\n"  # joins item token lists inside a copy
    seed: int = II("seed")  # partitions and copy positions
    workers: int = 2  # tokenizer worker processes
    chunk_documents: int = 256  # documents per worker task
    skip_bad_rows: bool = False  # report and skip malformed benchmark rows instead of failing
    dtype: str = "auto"  # auto | uint16 | uint32 (stream token type)
    exclude_found: bool = False  # true: items found in the corpus (rendering or question) are dropped before partitioning


@dataclass
class BenchmarkConfig:
    """One entry of ``benchmarks``: checked against this, but kept as written (its keys are
    hashed into the data config, so defaults are not filled in)."""

    source: str = MISSING  # hub | mmlu_dir | arc_jsonl | generic | synthetic
    path: Optional[str] = None  # hub id, file or directory
    name: Optional[str] = None  # hub config name; synthetic: people | places
    split: Optional[str] = None  # hub split (loader default: test)
    format: Optional[str] = None  # hub: mmlu | arc | hellaswag; generic: jsonl | json | csv | parquet
    columns: Optional[List[str]] = None  # generic CSV without a header row: the field names
    fields: Optional[Dict[str, Any]] = None  # generic: field mapping (id, question, options/choices, answer...)
    data_files: Optional[Any] = None  # hub: files of a builder dataset
    cache_dir: Optional[str] = None  # hub: datasets cache
    trust_remote_code: bool = False  # hub: refused (datasets scripts are not run)
    answers_file: Optional[str] = None  # generic: labels in a separate line-aligned file (PIQA, Winogrande)
    convert: Optional[str] = None  # generic: a user function module:function (record -> item fields), imported only when named
    skip_bad_rows: Optional[bool] = None  # null: inject.skip_bad_rows
    inject: Optional[Dict[str, Any]] = None  # per-benchmark override of inject keys


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
    precision: str = "fp32"  # fp32 | bf16
    checkpoint_every: Optional[int] = 100  # steps (null: the last step only); a checkpoint is also written at the end
    checkpoint_steps: List[int] = field(default_factory=list)  # extra checkpoint steps, e.g. log-spaced [1, 4, 16, 64]
    save_initial: bool = True  # also export the untrained weights as step_0 (audit baseline)
    keep_last: int = 2  # DeepSpeed states kept (resume needs the newest)
    keep_hf: str = "all"  # all | last: HF exports kept for the audit
    log_every: int = 10  # steps per metrics row (loss averaged over them)
    peak_flops: Dict[str, float] = field(default_factory=lambda: {"cpu": 1.0e12})  # MFU; cuda: from the GPU's name
    seed: int = II("seed")  # weight init and data order
    activation_checkpointing: bool = False  # HF gradient checkpointing: recompute each layer in backward
    loss_chunk_tokens: Optional[int] = None  # chunked fp32 loss (train/loss.py), positions per chunk; null: HF's
    gpu_memory_gb: Optional[float] = None  # dry run: refuse a plan whose estimated peak per GPU exceeds this


@dataclass
class DeepSpeedConfig:
    zero_stage: int = 0  # ZeRO stage 0-3
    torch_adam: bool = True  # torch AdamW: no C++ op build
    fused: bool = False  # torch's fused AdamW kernel (GPUs only)
    backend: str = "gloo"  # gloo (CPU) | nccl (GPU)
    user_json: Optional[str] = None  # a DeepSpeed JSON file to use instead of the generated one
    extra: Dict[str, Any] = field(default_factory=dict)  # merged into the generated JSON


@dataclass
class LoggerConfig:
    project: str = "spikein"  # W&B project
    entity: Optional[str] = None  # W&B entity (team or user)
    mode: Optional[str] = None  # online | offline | disabled; null: $WANDB_MODE, else offline
    group: str = II("experiment_name")  # W&B group (a sweep sets its own)
    tags: List[str] = field(default_factory=list)  # W&B run tags
    init_timeout_s: float = 20.0  # seconds an online start may take before falling back to offline (sync later)


@dataclass
class LauncherConfig:
    kind: str = "local"  # local | torchrun | deepspeed | srun (see core/workers/launch.py)
    nproc_per_node: int = 1  # processes (GPUs) per node
    num_nodes: int = 1  # machines; several: see conf/launcher/*.yaml
    node_rank: int = 0  # this node's rank (torchrun, several nodes)
    master_addr: Optional[str] = None  # null: 127.0.0.1 (one node), the first host (srun, hostfile); set it for torchrun nodes
    master_port: Optional[int] = None  # null: a free port (one node), from $SLURM_JOB_ID (srun)
    hostfile: Optional[str] = None  # deepspeed launcher: "host slots=N" lines; hosts and slots come from it
    include: Optional[str] = None  # deepspeed hostfile: only these hosts/slots ("worker-0@worker-1:0,2")
    exclude: Optional[str] = None  # deepspeed hostfile: all but these hosts/slots ("worker-1:0")


@dataclass
class NullCheckConfig:
    """``audit.null_check``: the controls re-tested in fresh random orders (audit/null_check.py)."""

    draws: int = 0  # fresh random orders per control partition and order detector; 0: off
    checkpoints: str = "last"  # last | all: the audited checkpoints it runs on
    seed: int = II("seed")  # the fresh orders (never the recorded ones: other seed paths)


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
    precision: str = "fp32"  # fp32 | bf16
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


@dataclass
class ReportConfig:
    alpha: float = 0.01  # a partition counts as detected when p < alpha


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
