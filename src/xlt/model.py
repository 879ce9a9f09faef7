"""The object users hold: a frozen base model plus a bank of representations, run under plans."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from transformers import AutoConfig, AutoTokenizer, PretrainedConfig, PreTrainedModel, PreTrainedTokenizerBase

from xlt.assembly import Assembled, assemble
from xlt.batching import IGNORE_INDEX
from xlt.errors import PlanError, XLTError, brief
from xlt.fingerprint import Fingerprint
from xlt.hosts import host_class, host_for
from xlt.hosts.base import HostOutput
from xlt.languages import get_language
from xlt.plan import Plan
from xlt.reps.base import RepConfig, RepInfo, Representation, Role, check_name
from xlt.reps.context import BuildContext
from xlt.reps.heads import Head, HeadConfig
from xlt.reps.identity import check_fits, default_name, provenance
from xlt.reps.registry import kind_of_config
from xlt.routing import ResolvedPlan, Route, resolve
from xlt.runtime import Runtime

PlanLike = Plan | str | Sequence[str] | None
# generate() builds these from the plan; a caller's own would bypass the routed representations
_ROUTED_GENERATE_KWARGS = ("inputs", "input_ids", "inputs_embeds", "encoder_outputs", "position_ids")


@dataclass
class XLTOutput:
    """``logits``: LM logits (text-to-text) or head logits (encoders); ``hidden_states``: the last layer at
    the input's own positions (prompt positions removed); ``loss`` when labels were given."""

    logits: torch.Tensor | None = None
    loss: torch.Tensor | None = None
    hidden_states: torch.Tensor | None = None
    encoder_hidden_states: torch.Tensor | None = None


class XLTModel(nn.Module):
    """A frozen Hugging Face model with composable language and task representations.

    >>> model = XLTModel(base, tokenizer)
    >>> model.add_language("sk", PromptConfig())                       # 'sk/prompt'
    >>> model.add_task("nli", BottleneckConfig())                      # 'nli/bottleneck'
    >>> model(input_ids, attention_mask, plan="sk/prompt+nli/bottleneck")
    >>> model.generate(input_ids, attention_mask, plans=[...one plan per row...])
    """

    def __init__(
        self,
        base: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase | None = None,
        *,
        name: str | None = None,
    ) -> None:
        super().__init__()
        self.base = base
        self.tokenizer = tokenizer
        self.host = host_for(base)
        base.requires_grad_(False)
        keep_head_untied(base)
        self.fingerprint = Fingerprint.of(base.config, name)
        self.reps = nn.ModuleDict()
        self.runtime = Runtime(base, self.host)
        self.train(base.training)

    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str | Path,
        *,
        dtype: torch.dtype | None = None,
        tokenizer: bool = True,
        **kwargs: Any,
    ) -> XLTModel:
        """Load a hub id or local directory with the Auto class its family needs (kwargs go to
        ``from_pretrained``, e.g. ``local_files_only=True``)."""
        config = AutoConfig.from_pretrained(name_or_path, **kwargs)
        host = host_class(config.model_type)
        host.check_dtype(dtype if dtype is not None else kwargs.get("torch_dtype"))
        auto: Any = host.auto_class(config)
        extra = {"dtype": dtype} if dtype is not None else {}
        base = auto.from_pretrained(name_or_path, config=config, **extra, **kwargs)
        raw, _ = PretrainedConfig.get_config_dict(name_or_path, **kwargs)
        keep_head_untied(base, declared_untied=raw.get("tie_word_embeddings") is False)
        tok = AutoTokenizer.from_pretrained(name_or_path, **kwargs) if tokenizer else None
        return cls(base, tok, name=str(name_or_path))

    # the bank ----------------------------------------------------------------------------------------
    def add(
        self,
        config: RepConfig,
        *,
        role: Role | str,
        language: str | None = None,
        task: str | None = None,
        name: str | None = None,
        head: HeadConfig | None = None,
        language_name: str | None = None,
    ) -> Representation:
        """Create a representation for this base model and put it in the bank (frozen until trained)."""
        kind = kind_of_config(config)
        role = Role.parse(role)
        for key, value in (("language", language), ("task", task), ("language_name", language_name)):
            if value is not None and not isinstance(value, str):
                raise XLTError(f"{key}= must be a string, got {brief(value)} ({type(value).__name__})")
        if head is not None and not isinstance(head, HeadConfig):
            raise XLTError(f"head= must be a HeadConfig, got {type(head).__name__} (use HeadConfig(type=..., ...))")
        name = check_name(name if name is not None else default_name(role, language, task, kind.name))
        if name in self.reps:
            raise XLTError(f"rep '{name}' already exists in this model (remove it first, or pass another name=)")
        info = RepInfo(name, kind.name, role, language, task, self.fingerprint, provenance())
        if head is not None:
            self.host.check_head(name, role, head)
        if language_name is None and language is not None:
            try:
                language_name = get_language(language).name
            except XLTError as exc:
                if getattr(config, "init", None) == "text" and not getattr(config, "init_text", None):
                    raise XLTError(f"{exc}; or pass language_name= for the prompt's init text") from None
                language_name = None
        ctx = BuildContext(self.base, self.host, self.tokenizer, language_name, task)
        self.host.check_kind(config, name)
        body = kind.build(config, ctx)
        head_module = Head(head, ctx.hidden_size).to(self.device) if head is not None else None
        rep = Representation(info, config, body, head_module)
        return self.attach(rep)

    def add_language(self, language: str, config: RepConfig, **kwargs: Any) -> Representation:
        return self.add(config, role=Role.LANGUAGE, language=language, **kwargs)

    def add_task(self, task: str, config: RepConfig, head: HeadConfig | None = None, **kwargs: Any) -> Representation:
        return self.add(config, role=Role.TASK, task=task, head=head, **kwargs)

    def compose(self, name: str, weights: dict[str, float], *, language: str | None = None) -> Representation:
        """A new representation whose weights are the ``weights``-weighted average of those of existing ones
        (same kind, config and head; the weights are normalised to sum to 1), put in the bank under ``name``.

        For a language with no corpus: compose its representation from related languages' (a weight-space
        average of the kind AdapterSoup, Chronopoulou et al. 2023, takes of domain adapters)."""
        if not weights or any(
            isinstance(w, bool) or not isinstance(w, int | float) or not math.isfinite(w) or w < 0
            for w in weights.values()
        ):
            raise XLTError(f"compose({name!r}) needs non-negative weights of existing reps, got {weights!r}")
        total = float(sum(weights.values()))
        if total <= 0:
            raise XLTError(f"compose({name!r}): the weights sum to 0; give at least one positive weight")
        sources = [self.rep(source) for source in weights]
        first = sources[0]
        # How a rep was initialised does not change what its weights mean; every other option does.
        initial = {"init", "init_text", "init_std", "init_special_tokens", "seed"}
        shape_of = lambda r: {k: v for k, v in r.config.to_dict().items() if k not in initial}  # noqa: E731
        for rep in sources[1:]:
            if rep.kind != first.kind or shape_of(rep) != shape_of(first):
                raise XLTError(
                    f"compose({name!r}): {rep.name} ({rep.kind}) and {first.name} ({first.kind}) differ in kind or "
                    "config; compose representations of one kind and config"
                )
        head = first.head.config if first.head is not None else None
        rep = self.add(first.config, role=first.role, language=language, task=first.info.task, name=name, head=head)
        state = {key: torch.zeros_like(value, dtype=torch.float32) for key, value in rep.state_dict().items()}
        for source, weight in zip(sources, weights.values(), strict=True):
            theirs = source.state_dict()
            if theirs.keys() != state.keys() or any(theirs[k].shape != state[k].shape for k in state):
                self.remove(name)
                raise XLTError(f"compose({name!r}): {source.name}'s weights do not match {first.name}'s in shape")
            for key in state:
                state[key] += theirs[key].float() * (weight / total)
        rep.load_state_dict({k: v.to(rep.state_dict()[k].dtype) for k, v in state.items()})
        return rep

    def attach(self, rep: Representation, *, allow_other_base: bool = False) -> Representation:
        """Put an already built representation (e.g. loaded from disk) in the bank, after checking it fits."""
        if not isinstance(rep, Representation):
            raise XLTError(f"attach takes a Representation, got {type(rep).__name__} (build one with add())")
        check_name(rep.name)
        if rep.name in self.reps:
            raise XLTError(f"rep '{rep.name}' already exists in this model (remove it first, or rename it)")
        check_fits(rep.info.fingerprint, self.fingerprint, rep.name, allow_other_base)
        self.host.check_kind(rep.config, rep.name)
        if rep.head is not None:
            self.host.check_head(rep.name, rep.role, rep.head.config)
        rep.requires_grad_(False)
        if rep.entry == "blocks":
            self.runtime.install_sites()
            if getattr(rep.body, "invertible", None) is not None:
                self.runtime.install_embeddings()
        elif rep.entry == "linears":
            targets = {t.key: t.module for t in self.host.lora_targets(self.base, rep.config.target_modules)}  # type: ignore[attr-defined]
            self.runtime.install_linears({key: targets[key] for key in rep.body.deltas})  # type: ignore[attr-defined]
        rep.train(self.training)
        self.reps[rep.name] = rep.to(self.device)
        return rep

    def save_rep(self, name: str, directory: str | Path) -> Path:
        """Write one rep as ``xlt_rep.json`` + ``rep.safetensors`` (atomically)."""
        from xlt.formats.native import save_rep

        return save_rep(self.rep(name), directory)

    def load_rep(
        self, directory: str | Path, *, name: str | None = None, allow_other_base: bool = False
    ) -> Representation:
        """Load a rep saved by :meth:`save_rep`; refuses one trained on another base model or shape."""
        from xlt.formats.native import load_rep

        return load_rep(self, directory, name=name, allow_other_base=allow_other_base)

    def remove(self, name: str) -> Representation:
        if name not in self.reps:
            raise XLTError(f"no rep '{name}' in this model (it has: {', '.join(self.reps) or 'none'})")
        rep = self.reps[name]
        del self.reps[name]
        return rep  # type: ignore[return-value]

    def rep(self, name: str) -> Representation:
        if name not in self.reps:
            raise XLTError(f"no rep '{name}' in this model (it has: {', '.join(self.reps) or 'none'})")
        return self.reps[name]  # type: ignore[return-value]

    @property
    def device(self) -> torch.device:
        """Where the base model's weights are (inputs must be there too, as with any Hugging Face model)."""
        return next(self.base.parameters()).device

    # training state ----------------------------------------------------------------------------------
    def train_reps(self, *names: str) -> list[nn.Parameter]:
        """Make exactly these reps trainable (the base and every other rep frozen); returns their params."""
        for name in names:
            self.rep(name)
        params: list[nn.Parameter] = []
        for name, rep in self.reps.items():
            rep.requires_grad_(name in names)
            if name in names:
                params.extend(rep.parameters())
        self.base.requires_grad_(False)
        return params

    def trainable_parameters(self) -> list[nn.Parameter]:
        return [p for p in self.parameters() if p.requires_grad]

    # plans and routes --------------------------------------------------------------------------------
    def resolve(self, plan: PlanLike) -> ResolvedPlan:
        return resolve(Plan.coerce(plan), self.reps)  # type: ignore[arg-type]

    def route(self, batch_size: int, plan: PlanLike = None, plans: Sequence[PlanLike] | None = None) -> Route:
        if plans is not None and plan is not None:
            raise PlanError("pass either plan= (one plan for the batch) or plans= (one per row), not both")
        if plans is None:
            resolved = self.resolve(plan)
            return Route([resolved] * batch_size, self.device)
        if isinstance(plans, str | Plan) or not isinstance(plans, Sequence):
            raise PlanError(
                f"plans= takes one plan per row (a list), got {brief(plans)} ({type(plans).__name__}); for one plan "
                "for every row pass plan="
            )
        if len(plans) != batch_size:
            raise PlanError(f"plans= has {len(plans)} entries for a batch of {batch_size} rows; give one per row")
        cache: dict[Plan, ResolvedPlan] = {}
        resolved_rows = []
        for row, item in enumerate(plans):
            try:
                p = Plan.coerce(item)
            except PlanError as exc:  # which row, in a batch of many
                raise PlanError(f"plans[{row}]: {exc}") from None
            if p not in cache:
                cache[p] = self.resolve(p)
            resolved_rows.append(cache[p])
        route = Route(resolved_rows, self.device)
        if route.heads and route.headless_rows:
            raise PlanError("some rows' plans have a head and some do not; route them in separate batches")
        signatures = {rep.head.config.signature for rep, _ in route.heads}  # type: ignore[union-attr]
        if len(signatures) > 1:
            raise PlanError(f"rows use heads of different shapes {sorted(signatures)}; route them in separate batches")
        return route

    def assemble(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None, route: Route) -> Assembled:
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        embeds = self.host.input_embeddings(self.base)(input_ids)
        groups = [(torch.cat([rep.body() for rep in reps]), rows) for reps, rows in route.prompt_groups]
        return assemble(embeds, attention_mask, groups)

    # compute -----------------------------------------------------------------------------------------
    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        *,
        plan: PlanLike = None,
        plans: Sequence[PlanLike] | None = None,
        labels: torch.Tensor | None = None,
        decoder_input_ids: torch.Tensor | None = None,
        decoder_attention_mask: torch.Tensor | None = None,
        logits: bool = True,
    ) -> XLTOutput:
        """Run one batch. ``plan``: one plan for every row; ``plans``: one per row (a routed batch).

        ``labels``: token ids (text-to-text; -100 is ignored) or head targets (encoders with a task head);
        ``decoder_input_ids`` / ``decoder_attention_mask``: encoder-decoders only. ``logits=False`` with token
        labels: the loss alone (``logits`` is None), computed over the vocabulary in chunks fused with the LM
        head (``xlt.hosts.lm_loss``) and only where a label is, which is what training needs.
        """
        self._check_inputs(input_ids, attention_mask)
        route = self.route(input_ids.shape[0], plan, plans)
        self.host.check_forward(labels, decoder_input_ids, has_head=bool(route.heads))
        self._check_length(input_ids, attention_mask, route)
        self._check_decoder_inputs(input_ids, labels, decoder_input_ids, decoder_attention_mask)
        if labels is not None:
            self._check_labels(input_ids, labels, route)
        kwargs: dict[str, Any] = {} if logits else {"logits": False}
        if decoder_input_ids is not None:
            kwargs["decoder_input_ids"] = decoder_input_ids
        if decoder_attention_mask is not None:
            kwargs["decoder_attention_mask"] = decoder_attention_mask
        with self.runtime.active(route):
            batch = self.assemble(input_ids, attention_mask, route)
            head_labels = labels if route.heads else None
            out = self.host.run(self.base, batch, route, labels=None if route.heads else labels, **kwargs)
            if route.heads:
                return self._heads(out, batch, route, head_labels)
        return XLTOutput(out.logits, out.loss, out.hidden_states, out.encoder_hidden_states)

    def _check_inputs(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None) -> None:
        """The input ids and mask a forward or generation can run: refused here, not deep inside torch."""
        _check_ids("input_ids", input_ids, self.device)
        _check_in_vocab("input_ids", input_ids, self.host.input_embeddings(self.base).num_embeddings, ignore=False)
        if attention_mask is None:
            return
        if not isinstance(attention_mask, torch.Tensor):
            raise XLTError(
                f"attention_mask must be a torch.Tensor shaped like input_ids, got {type(attention_mask).__name__} "
                "(pass the tokenizer's attention_mask, or None)"
            )
        if attention_mask.shape != input_ids.shape:
            raise XLTError(
                f"attention_mask has shape {tuple(attention_mask.shape)} but input_ids {tuple(input_ids.shape)}; "
                "pass the mask the tokenizer returned with these ids"
            )
        if attention_mask.device != input_ids.device:
            raise XLTError(
                f"attention_mask is on {attention_mask.device}, input_ids on {input_ids.device}; move it with "
                ".to(model.device)"
            )
        if bool(((attention_mask != 0) & (attention_mask != 1)).any()):
            raise XLTError("attention_mask holds values other than 0 and 1; pass 1 for real tokens, 0 for padding")

    def _check_decoder_inputs(
        self,
        input_ids: torch.Tensor,
        labels: torch.Tensor | None,
        decoder_input_ids: torch.Tensor | None,
        decoder_attention_mask: torch.Tensor | None,
    ) -> None:
        if decoder_input_ids is not None:
            _check_ids("decoder_input_ids", decoder_input_ids, self.device, rows=input_ids.shape[0])
            _check_in_vocab(
                "decoder_input_ids", decoder_input_ids, self.host.input_embeddings(self.base).num_embeddings, False
            )
        if decoder_attention_mask is None:
            return
        like = decoder_input_ids if decoder_input_ids is not None else labels
        if not isinstance(decoder_attention_mask, torch.Tensor) or (
            like is not None and decoder_attention_mask.shape != like.shape
        ):
            shape = tuple(decoder_attention_mask.shape) if isinstance(decoder_attention_mask, torch.Tensor) else None
            raise XLTError(
                f"decoder_attention_mask (shape {shape}) must be a tensor shaped like the decoder inputs "
                f"{tuple(like.shape) if like is not None else ''}; pass the mask of decoder_input_ids or labels"
            )

    def _check_labels(self, input_ids: torch.Tensor, labels: torch.Tensor, route: Route) -> None:
        """Labels that fit the batch and the output classes; out-of-range ids would fail inside torch's loss."""
        rows, length = input_ids.shape
        _check_label_tensor(labels, rows)
        if route.heads:
            head = route.heads[0][0].head
            assert head is not None
            kind, classes = head.config.type, head.config.num_labels
            check_head_labels(kind, labels, rows, length, classes)
            return
        self.host.check_lm_labels(input_ids, labels)
        if labels.dim() != 2:
            raise XLTError(
                f"labels must be 2-D [batch, target_length] token ids, got shape {tuple(labels.shape)} "
                "(tokenize the targets as a batch)"
            )
        output = self.base.get_output_embeddings()
        vocab = output.weight.shape[0] if output is not None else self.fingerprint.vocab_size
        _check_in_vocab("labels", labels, vocab, ignore=True)

    def _row_lengths(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None, route: Route
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Each row's real tokens and virtual tokens: the positions it takes once assembled."""
        if attention_mask is not None:
            lengths = attention_mask.long().sum(1)
        else:
            lengths = torch.full((input_ids.shape[0],), input_ids.shape[1], device=input_ids.device)
        virtual = torch.zeros_like(lengths)
        for reps, rows in route.prompt_groups:
            n = sum(rep.body().shape[0] for rep in reps)
            if rows is None:
                virtual += n
            else:
                virtual[rows.to(virtual.device)] += n
        return lengths, virtual

    def _assembled_width(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None, route: Route) -> int:
        lengths, virtual = self._row_lengths(input_ids, attention_mask, route)
        return int((lengths + virtual).max())

    def _check_length(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None, route: Route, new_tokens: int = 0
    ) -> None:
        """Absolute-position models have a fixed position table: refuse a prompted row that would overrun it,
        counting the tokens a generation will add."""
        limit = self.host.max_positions(self.base)
        if limit is None:
            return
        lengths, virtual = self._row_lengths(input_ids, attention_mask, route)
        row = int((lengths + virtual).argmax())
        tokens, prompt = int(lengths[row]), int(virtual[row])
        if tokens + prompt + new_tokens <= limit:
            return
        if not new_tokens:
            raise XLTError(
                f"a row of {tokens} tokens plus {prompt} virtual tokens exceeds this model's {limit} positions "
                f"(truncate inputs to {limit - prompt} tokens, or use shorter prompts)"
            )
        raise XLTError(
            f"a row of {tokens} tokens plus {prompt} virtual tokens plus {new_tokens} new tokens exceeds this "
            f"model's {limit} positions (lower max_new_tokens to {max(limit - tokens - prompt, 0)}, truncate "
            "inputs, or use shorter prompts)"
        )

    def _new_tokens(self, width: int, kwargs: dict[str, Any]) -> int:
        """How many tokens Hugging Face ``generate`` will add to an assembled batch ``width`` positions wide."""
        config = kwargs.get("generation_config") or self.base.generation_config
        new = kwargs.get("max_new_tokens", getattr(config, "max_new_tokens", None))
        if new is not None:
            if not isinstance(new, int) or isinstance(new, bool) or new < 1:
                raise XLTError(f"max_new_tokens must be a positive integer, got {brief(new)}")
            return new
        if kwargs.get("max_length") is not None:  # with inputs_embeds, HF counts the input inside max_length
            return max(int(kwargs["max_length"]) - width, 0)
        cap = getattr(self.base.config, "max_position_embeddings", None) or float("inf")
        return int(min(getattr(config, "max_length", None) or 20, cap))

    def _heads(self, out: HostOutput, batch: Assembled, route: Route, labels: torch.Tensor | None) -> XLTOutput:
        hidden = out.hidden_states
        assert hidden is not None
        logits: torch.Tensor | None = None
        for rep, rows in route.heads:
            head = rep.head
            assert head is not None
            if rows is None:
                logits = head(hidden, batch.input_mask)
            else:
                part = head(hidden[rows], batch.input_mask[rows])
                if logits is None:
                    logits = part.new_zeros(hidden.shape[0], *part.shape[1:])
                logits = logits.index_copy(0, rows, part)
        assert logits is not None
        loss = None
        if labels is not None:
            kind = route.heads[0][0].head.config.type  # type: ignore[union-attr]
            loss = head_loss(kind, logits, labels)
        return XLTOutput(logits, loss, hidden, None)

    @torch.no_grad()
    def generate(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        *,
        plan: PlanLike = None,
        plans: Sequence[PlanLike] | None = None,
        **generate_kwargs: Any,
    ) -> torch.Tensor:
        """Hugging Face ``generate`` with every row's plan applied throughout (greedy, beam, sampling).

        Encoder-decoders return the decoder's sequences; decoder-only models return the new tokens only.
        """
        if not self.host.supports_generation:  # refuse before any compute, as every other refusal
            raise self.host.generation_refusal()
        routed = sorted(set(generate_kwargs) & set(_ROUTED_GENERATE_KWARGS))
        if routed:
            raise XLTError(
                f"generate got {routed}, which xlt builds from input_ids and the plan; pass the ids as input_ids "
                "(the first argument) and drop these"
            )
        self._check_inputs(input_ids, attention_mask)
        route = self.route(input_ids.shape[0], plan, plans)
        if route.heads:
            raise PlanError("plans with a head cannot generate; call the model to get head logits")
        if self.host.generation_continues_input:  # else the new tokens take positions of their own (T5's decoder)
            width = self._assembled_width(input_ids, attention_mask, route)
            self._check_length(input_ids, attention_mask, route, self._new_tokens(width, generate_kwargs))
        with self.runtime.active(route):
            batch = self.assemble(input_ids, attention_mask, route)
            return self.host.generate(self.base, batch, route, **generate_kwargs)


def keep_head_untied(base: PreTrainedModel, *, declared_untied: bool = False) -> None:
    """A base whose LM head is its own weight (mT5, mt0, T5 v1.1) keeps it: its config is made to say
    ``tie_word_embeddings=False``, so a later ``tie_weights()`` (resizing, PEFT, dispatch) leaves the head alone.

    transformers 5 forces ``tie_word_embeddings=True`` on T5 and mT5 configs, whatever the checkpoint says; it
    still loads a checkpoint's differing head untied, but the next ``tie_weights()`` would replace it with the
    input embeddings. ``declared_untied``: the checkpoint's config.json says untied; a head the loader tied
    anyway (transformers 5 ties a saved head equal to the embeddings) becomes a parameter of its own with the
    same values, as transformers 4 loads it."""
    output, inputs = base.get_output_embeddings(), base.get_input_embeddings()
    if output is None or inputs is None or not hasattr(base.config, "tie_word_embeddings"):
        return
    if declared_untied and output.weight is inputs.weight:
        output.weight = nn.Parameter(inputs.weight.detach().clone(), requires_grad=False)
    if output.weight is not inputs.weight:
        base.config.tie_word_embeddings = False


def _check_ids(name: str, ids: object, device: torch.device, rows: int | None = None) -> None:
    if not isinstance(ids, torch.Tensor):
        raise XLTError(
            f"{name} must be a torch.Tensor of token ids [batch, length], got {type(ids).__name__} "
            "(tokenize with return_tensors='pt')"
        )
    if ids.dim() != 2:
        raise XLTError(
            f"{name} must be 2-D [batch, length], got shape {tuple(ids.shape)} (add a batch dimension with "
            ".unsqueeze(0))"
        )
    if ids.dtype == torch.bool or ids.is_floating_point() or ids.is_complex():
        raise XLTError(f"{name} must hold integer token ids, got dtype {ids.dtype} (convert them with .long())")
    if ids.numel() == 0:
        raise XLTError(f"{name} is empty (shape {tuple(ids.shape)}); give at least one row of one token")
    if rows is not None and ids.shape[0] != rows:
        raise XLTError(f"{name} has {ids.shape[0]} rows for a batch of {rows}; give one row per input row")
    if ids.device != device:
        raise XLTError(f"{name} is on {ids.device} and the model on {device}; move it with .to(model.device)")


def _check_in_vocab(name: str, ids: torch.Tensor, size: int, ignore: bool) -> None:
    """Ids in ``[0, size)`` (and -100 where ``ignore``); an index error inside torch would name neither."""
    bad = (ids < 0) | (ids >= size)
    if ignore:
        bad &= ids != IGNORE_INDEX
    if not bool(bad.any()):
        return
    value = int(ids[bad][0])
    allowed = f"0..{size - 1}" + (f" or {IGNORE_INDEX} (ignored)" if ignore else "")
    raise XLTError(
        f"{name} holds id {value}, outside this model's {size} ids ({allowed}); tokenize with this model's tokenizer"
    )


def _check_label_tensor(labels: object, rows: int) -> None:
    if not isinstance(labels, torch.Tensor):
        raise XLTError(f"labels must be a torch.Tensor, got {type(labels).__name__} (wrap them with torch.tensor)")
    if labels.dtype == torch.bool or labels.is_floating_point() or labels.is_complex():
        raise XLTError(f"labels must be integer ids, got dtype {labels.dtype} (convert them with .long())")
    if labels.dim() == 0 or labels.shape[0] != rows:
        got = labels.shape[0] if labels.dim() else "no"
        raise XLTError(f"labels have {got} rows for a batch of {rows} inputs; give one label row per input row")


def check_head_labels(kind: str, labels: torch.Tensor, rows: int, length: int, classes: int) -> None:
    """Labels a ``kind`` head's loss can read: the shape it expects and class ids in range (-100 ignored)."""
    _check_label_tensor(labels, rows)
    shape = {"sequence": (rows,), "token": (rows, length), "span": (rows, 2)}[kind]
    if tuple(labels.shape) != shape:
        what = {
            "sequence": "[batch] class ids",
            "token": "[batch, input_len] class ids",
            "span": "[batch, 2] start and end positions",
        }[kind]
        raise XLTError(f"a {kind} head takes labels of shape {shape} ({what}), got {tuple(labels.shape)}")
    limit = length if kind == "span" else classes
    bad = ((labels < 0) | (labels >= limit)) & (labels != IGNORE_INDEX)
    if bool(bad.any()):
        value = int(labels[bad][0])
        unit = "positions of the input" if kind == "span" else "classes (num_labels)"
        raise XLTError(
            f"{kind} head label {value} is out of range: the head has {limit} {unit}, so labels must lie in "
            f"0..{limit - 1} (or {IGNORE_INDEX} to ignore); fix the labels or the head's num_labels"
        )


def head_loss(kind: str, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    if kind not in ("sequence", "token", "span"):
        raise XLTError(f"head_loss kind must be 'sequence', 'token' or 'span', got {brief(kind)}")
    length = logits.shape[1] if logits.dim() > 1 else 0
    check_head_labels(kind, labels, logits.shape[0], length, logits.shape[-1])
    logits = logits.float()
    if kind == "sequence":
        return F.cross_entropy(logits, labels.to(logits.device))
    if kind == "token":
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1), ignore_index=-100)
    start, end = logits[..., 0], logits[..., 1]
    return (F.cross_entropy(start, labels[:, 0]) + F.cross_entropy(end, labels[:, 1])) / 2
