"""Soft prompt initialisation: text init is the frozen embeddings of the text's ids repeated cyclically (the
language's English name substituted), vocab init copies rows of the embedding table, random init is
N(0, std)."""

from __future__ import annotations

import pytest
import torch
from tokenizers import Tokenizer, models, pre_tokenizers, processors
from transformers import PreTrainedTokenizerFast

from tiny_models import tiny_base
from xlt import PromptConfig, XLTError, XLTModel

WORDS = ["Generate", "the", "output", "in", "Slovak:", "German:", "Answer", "question", "language:"]
WORDS.append("English:")
SLOVAK = ["Generate", "the", "output", "in", "Slovak:"]


def word_tokenizer(eos: bool = False) -> PreTrainedTokenizerFast:
    vocab = {"<pad>": 0, "</s>": 1, "<unk>": 2}
    vocab.update({w: 10 + 3 * i for i, w in enumerate(WORDS)})  # ids spread over the tiny table
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    if eos:
        eos_token = [("</s>", 1)]
        tok.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=eos_token)
    specials = {"pad_token": "<pad>", "eos_token": "</s>", "unk_token": "<unk>"}
    return PreTrainedTokenizerFast(tokenizer_object=tok, **specials)


def ids_of(*words: str) -> list[int]:
    return [10 + 3 * WORDS.index(w) for w in words]


def table(m: XLTModel) -> torch.Tensor:
    return m.base.get_input_embeddings().weight.detach()


def cyclic(ids: list[int], n: int) -> list[int]:
    return [ids[i % len(ids)] for i in range(n)]


@pytest.mark.parametrize("arch", ["t5", "bert", "gpt2", "qwen2"])
def test_language_prompt_text_init(arch):
    m = XLTModel(tiny_base(arch), word_tokenizer())
    rep = m.add_language("sk", PromptConfig(num_virtual_tokens=12))
    expected = cyclic(ids_of(*SLOVAK), 12)
    assert torch.equal(rep.body.embedding, table(m)[expected])
    # the language's own name, not another one's
    de = m.add_language("de", PromptConfig(num_virtual_tokens=7))
    german = ids_of("Generate", "the", "output", "in", "German:")
    assert torch.equal(de.body.embedding, table(m)[cyclic(german, 7)])
    # rows are copies: training the prompt never touches the frozen table
    before = table(m).clone()
    with torch.no_grad():
        rep.body.embedding.add_(1.0)
    assert torch.equal(table(m), before)


def test_task_prompt_text_init_with_a_language_placeholder():
    m = XLTModel(tiny_base("t5"), word_tokenizer())
    config = PromptConfig(num_virtual_tokens=9, init_text="Answer the question in {Language} language:")
    rep = m.add_task("qa", config, language_name="German")
    ids = [10 + 3 * WORDS.index(w) for w in ["Answer", "the", "question", "in"]] + [2] + ids_of("language:")
    # "German" alone is not a word of this vocabulary ("German:" is): it tokenises to <unk> (2)
    assert torch.equal(rep.body.embedding, table(m)[cyclic(ids, 9)])
    # without a language name the placeholder becomes English
    en = m.add_task("qa2", PromptConfig(num_virtual_tokens=3, init_text="Generate {language}:"))
    assert torch.equal(en.body.embedding, table(m)[ids_of("Generate", "English:", "Generate")])


def test_special_tokens_follow_the_tokenizer():
    m = XLTModel(tiny_base("t5"), word_tokenizer(eos=True))
    with_eos = m.add_language("sk", PromptConfig(num_virtual_tokens=6))
    expected = cyclic([*ids_of(*SLOVAK), 1], 6)
    assert torch.equal(with_eos.body.embedding, table(m)[expected])
    config = PromptConfig(num_virtual_tokens=6, init_special_tokens=False)
    without = m.add_language("sk", config, name="sk/p2")
    assert torch.equal(without.body.embedding, table(m)[cyclic(ids_of(*SLOVAK), 6)])


def test_vocab_init_copies_rows_of_the_table():
    m = XLTModel(tiny_base("gpt2"), None)
    rep = m.add_language("sk", PromptConfig(num_virtual_tokens=20, init="vocab", seed=3))
    t = table(m)
    for row in rep.body.embedding:
        assert (t == row).all(1).any()
    again = m.add_language("sk", PromptConfig(num_virtual_tokens=20, init="vocab", seed=3), name="sk/again")
    other = m.add_language("sk", PromptConfig(num_virtual_tokens=20, init="vocab", seed=4), name="sk/other")
    assert torch.equal(rep.body.embedding, again.body.embedding)
    assert not torch.equal(rep.body.embedding, other.body.embedding)


def test_random_init_has_the_right_std():
    m = XLTModel(tiny_base("bert"), None)
    rep = m.add_language("sk", PromptConfig(num_virtual_tokens=400, init="random", init_std=0.5))
    values = rep.body.embedding.detach()
    assert values.shape == (400, 32)
    assert float(values.std()) == pytest.approx(0.5, rel=0.05)
    assert abs(float(values.mean())) < 0.05
    small = m.add_task("t", PromptConfig(num_virtual_tokens=400, init="random"))
    assert float(small.body.embedding.std()) == pytest.approx(0.02, rel=0.05)


def test_text_init_errors():
    m = XLTModel(tiny_base("t5"), word_tokenizer())
    with pytest.raises(XLTError, match="needs init_text for a task prompt"):
        m.add_task("nli", PromptConfig())
    with pytest.raises(XLTError, match=r"unknown language code 'xx'.*pass language_name="):
        m.add_language("xx", PromptConfig())  # no English name known for 'xx'
    assert m.add_language("xx", PromptConfig(3), language_name="Xish").body.embedding.shape == (3, 32)
    no_tokenizer = XLTModel(tiny_base("t5"), None)
    with pytest.raises(XLTError, match="needs a tokenizer"):
        no_tokenizer.add_language("sk", PromptConfig())
    assert not no_tokenizer.reps
    for bad in ({"num_virtual_tokens": 0}, {"init": "zeros"}):
        with pytest.raises(XLTError):
            PromptConfig(**bad)
