"""Tiny random models of every supported family, and a word-level tokenizer, built in code."""

from __future__ import annotations

import torch
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import (
    BertConfig,
    BertModel,
    GPT2Config,
    GPT2LMHeadModel,
    LlamaConfig,
    LlamaForCausalLM,
    MT5Config,
    MT5ForConditionalGeneration,
    PreTrainedTokenizerFast,
    Qwen2Config,
    Qwen2ForCausalLM,
    T5Config,
    T5ForConditionalGeneration,
    XLMRobertaConfig,
    XLMRobertaModel,
)

VOCAB = 128
WORDS = [f"w{i}" for i in range(VOCAB - 4)]


def tiny_tokenizer() -> PreTrainedTokenizerFast:
    vocab = {"<pad>": 0, "</s>": 1, "<unk>": 2, "<s>": 3}
    vocab.update({w: i + 4 for i, w in enumerate(WORDS)})
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="<pad>", eos_token="</s>", unk_token="<unk>", bos_token="<s>"
    )


def _t5(cls, config_cls, **extra):
    config = config_cls(
        vocab_size=VOCAB,
        d_model=32,
        d_kv=8,
        d_ff=64,
        num_layers=2,
        num_decoder_layers=2,
        num_heads=4,
        relative_attention_num_buckets=8,
        relative_attention_max_distance=16,
        pad_token_id=0,
        eos_token_id=1,
        decoder_start_token_id=0,
        dropout_rate=0.0,
        **extra,
    )
    return cls(config)


# Llama and Qwen2 share their block layout; one tiny shape serves both.
LLAMA_SHAPE = {
    "vocab_size": VOCAB,
    "hidden_size": 32,
    "intermediate_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "max_position_embeddings": 64,
    "bos_token_id": 3,
    "eos_token_id": 1,
    "pad_token_id": 0,
}

BUILDERS = {
    "t5": lambda: _t5(T5ForConditionalGeneration, T5Config),
    "mt5": lambda: _t5(
        MT5ForConditionalGeneration, MT5Config, feed_forward_proj="gated-gelu", tie_word_embeddings=False
    ),
    "bert": lambda: BertModel(
        BertConfig(
            vocab_size=VOCAB,
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=4,
            intermediate_size=64,
            max_position_embeddings=64,
            hidden_dropout_prob=0.0,
            attention_probs_dropout_prob=0.0,
        ),
        add_pooling_layer=False,
    ),
    "xlm-roberta": lambda: XLMRobertaModel(
        XLMRobertaConfig(
            vocab_size=VOCAB,
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=4,
            intermediate_size=64,
            max_position_embeddings=70,
            pad_token_id=0,
            hidden_dropout_prob=0.0,
            attention_probs_dropout_prob=0.0,
        ),
        add_pooling_layer=False,
    ),
    "gpt2": lambda: GPT2LMHeadModel(
        GPT2Config(
            vocab_size=VOCAB,
            n_embd=32,
            n_layer=2,
            n_head=4,
            n_positions=64,
            resid_pdrop=0.0,
            embd_pdrop=0.0,
            attn_pdrop=0.0,
            bos_token_id=3,
            eos_token_id=1,
            pad_token_id=0,
        )
    ),
    "llama": lambda: LlamaForCausalLM(LlamaConfig(**LLAMA_SHAPE)),
    "qwen2": lambda: Qwen2ForCausalLM(Qwen2Config(**LLAMA_SHAPE)),
}
ARCHS = list(BUILDERS)
FAMILY = {
    "t5": "encoder_decoder",
    "mt5": "encoder_decoder",
    "bert": "encoder",
    "xlm-roberta": "encoder",
    "gpt2": "decoder",
    "llama": "decoder",
    "qwen2": "decoder",
}


def tiny_base(arch: str, seed: int = 0):
    torch.manual_seed(seed)
    model = BUILDERS[arch]()
    model.config._name_or_path = f"tiny-{arch}"
    return model.eval()


def batch(rows: list[int], seed: int = 1, low: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded random ids with the given row lengths."""
    g = torch.Generator().manual_seed(seed)
    width = max(rows)
    ids = torch.zeros(len(rows), width, dtype=torch.long)
    mask = torch.zeros(len(rows), width, dtype=torch.long)
    for i, n in enumerate(rows):
        ids[i, :n] = torch.randint(low, VOCAB, (n,), generator=g)
        mask[i, :n] = 1
    return ids, mask
