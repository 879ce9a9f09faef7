"""How each task type is seen by each family: span windows and their answers, first-sub-token tags, text-to-text
inputs and targets, generation bounded by the targets, robust parsing of generations."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from task_worlds import TASK_TYPES, task_spec
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "training"))

from training_helpers import model as tiny_model

from xlt import XLTError
from xlt.plan import Plan
from xlt.tasks.data import Example
from xlt.tasks.head_inputs import IGNORE, best_answers, encode_windows, encode_words, tags_from_logits
from xlt.tasks.registry import build_task
from xlt.training.task import TaskFormat, TaskRun, train_task


def word_tokenizer(words: list[str]) -> PreTrainedTokenizerFast:
    vocab = {"<pad>": 0, "</s>": 1, "<unk>": 2}
    vocab.update({w: i + 3 for i, w in enumerate(words)})
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="</s>", unk_token="<unk>")


def piece_tokenizer() -> PreTrainedTokenizerFast:
    """Words split into sub-tokens: "newyork" is "new" + "##york"."""
    vocab = {"[PAD]": 0, "[UNK]": 1, "new": 2, "##york": 3, "is": 4, "big": 5, "ann": 6, "##a": 7, "lives": 8}
    tok = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="[PAD]", unk_token="[UNK]")


# ---- extractive QA on encoders: windows ---------------------------------------------------------------
CONTEXT = "alpha beta,  gamma delta epsilon zeta eta theta iota kappa lambda mu"
WORDS = ["q", "alpha", "beta,", "gamma", "delta", "epsilon", "zeta", "eta", "theta", "iota", "kappa", "lambda", "mu"]


def test_every_part_of_a_long_context_is_in_some_window_and_targets_point_at_the_answer():
    tok = word_tokenizer(WORDS)
    answer = "kappa lambda"
    start = CONTEXT.index(answer)
    batch = encode_windows(tok, ["q"], [CONTEXT], max_length=6, stride=2, answers=[(start, answer)])
    assert len(batch.example) > 2 and set(batch.example) == {0}
    covered = {span for row in batch.offsets for span in row if span is not None}
    assert {CONTEXT[a:b] for a, b in covered} == set(CONTEXT.split())
    assert batch.labels is not None
    hits = [(w, int(s), int(e)) for w, (s, e) in enumerate(batch.labels.tolist()) if (s, e) != (0, 0)]
    assert hits, "some window holds the whole answer"
    for window, s, e in hits:
        a, b = batch.offsets[window][s][0], batch.offsets[window][e][1]  # type: ignore[index]
        assert CONTEXT[a:b] == answer


def test_the_best_answer_across_all_windows_wins_not_the_last_window():
    tok = word_tokenizer(WORDS)
    batch = encode_windows(tok, ["q"], [CONTEXT], max_length=6, stride=2)
    logits = torch.zeros(len(batch.example), batch.input_ids.shape[1], 2)
    first, last = 0, len(batch.example) - 1
    position = next(i for i, span in enumerate(batch.offsets[first]) if span is not None)
    logits[first, position] = 5.0  # a confident answer in the first window
    last_position = max(i for i, span in enumerate(batch.offsets[last]) if span is not None)
    logits[last, last_position] = 1.0  # a weaker one in the last window
    answer = best_answers(logits, batch, [CONTEXT])[0]
    a, b = batch.offsets[first][position]  # type: ignore[misc]
    assert answer == CONTEXT[a:b] == "alpha"


def test_an_answer_is_the_contexts_own_characters_through_the_offsets():
    tok = word_tokenizer(WORDS)
    batch = encode_windows(tok, ["q"], [CONTEXT], max_length=32, stride=0)
    logits = torch.full((1, batch.input_ids.shape[1], 2), -5.0)
    spans = batch.offsets[0]
    start = next(i for i, s in enumerate(spans) if s is not None and CONTEXT[s[0] : s[1]] == "beta,")
    logits[0, start, 0], logits[0, start + 1, 1] = 5.0, 5.0  # "beta," .. "gamma", two spaces between
    assert best_answers(logits, batch, [CONTEXT])[0] == "beta,  gamma"


def test_spans_never_start_in_the_question_nor_run_backwards():
    tok = word_tokenizer(WORDS)
    batch = encode_windows(tok, ["alpha"], ["beta, gamma"], max_length=32, stride=0)
    logits = torch.zeros(1, batch.input_ids.shape[1], 2)
    logits[0, 0] = 100.0  # the question's token: never an answer
    logits[0, 2, 0], logits[0, 1, 1] = 10.0, 10.0  # end before start: not a span
    assert best_answers(logits, batch, ["beta, gamma"])[0] in ("beta,", "gamma", "beta, gamma")


# ---- NER on encoders: first sub-tokens ---------------------------------------------------------------
def test_tags_go_on_first_sub_tokens_and_come_back_per_word():
    tok = piece_tokenizer()
    labels = ["O", "B-LOC", "B-PER"]
    batch = encode_words(
        tok, [["newyork", "is", "big"], ["anna", "lives"]], [["B-LOC", "O", "O"], ["B-PER", "O"]], labels, 16
    )
    assert batch.labels is not None
    assert batch.labels[0].tolist()[:4] == [1, IGNORE, 0, 0]  # new=B-LOC, ##york ignored
    assert batch.labels[1].tolist()[:3] == [2, IGNORE, 0]
    assert batch.words == [[0, 2, 3], [0, 2]]
    logits = torch.zeros(2, batch.input_ids.shape[1], 3)
    logits[0, 0, 1] = logits[0, 1, 2] = 1.0  # the second sub-token's vote is not read
    logits[0, 2, 0] = logits[0, 3, 0] = 1.0
    logits[1, 0, 2] = logits[1, 2, 0] = 1.0
    assert tags_from_logits(logits, batch, [3, 2], labels) == [["B-LOC", "O", "O"], ["B-PER", "O"]]


def test_words_cut_by_max_length_are_predicted_outside_any_entity():
    tok = piece_tokenizer()
    batch = encode_words(tok, [["newyork", "is", "big"]], None, ["O", "B-LOC"], 2)
    logits = torch.zeros(1, batch.input_ids.shape[1], 2)
    logits[0, 0, 1] = 1.0
    assert tags_from_logits(logits, batch, [3], ["O", "B-LOC"]) == [["B-LOC", "O", "O"]]


# ---- text to text ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def specs(tmp_path_factory):
    root = tmp_path_factory.mktemp("task-files")
    return {task: task_spec(root, task, ["en", "sw"]) for task in TASK_TYPES}


@pytest.mark.parametrize("task_type", TASK_TYPES)
@pytest.mark.parametrize("arch", ["mt5", "gpt2"])
def test_text_to_text_targets_are_the_tasks_and_generation_is_bounded_by_them(specs, task_type, arch):
    model = tiny_model(arch)
    task = build_task(task_type, specs[task_type])
    rows = task.examples("en", "train")[:4]
    labels = task.labels("en")
    fmt = TaskFormat(model, task, labels, 64, source="en")
    batch = fmt.collate(rows)
    tok = model.tokenizer
    for row, example in zip(batch["labels"], rows, strict=True):
        target = tok.decode([int(i) for i in row if i != -100], skip_special_tokens=True)
        assert target == tok.decode(
            tok(task.doc_to_target(example), add_special_tokens=False)["input_ids"], skip_special_tokens=True
        )
    longest = max(len(tok(t, add_special_tokens=False)["input_ids"]) for t in task.generation_targets("en", labels))
    assert fmt.max_new_tokens == longest + (1 if tok.eos_token_id is not None else 0) + 1
    predictions, texts = fmt.outputs(rows)
    assert len(predictions) == len(texts) == 4 and all(isinstance(t, str) for t in texts)


def test_the_paper_templates(specs):
    qa, ner, nli, check = (build_task(t, specs[t]) for t in ("qa", "ner", "nli", "checkworthiness"))
    e = Example("c1 c2", "c2", pair="q1")
    assert qa.doc_to_text(e) == "question: q1 context: c1 c2" and qa.doc_to_target(e) == "c2"
    n = Example("John lives", "PER: John", tokens=("John", "lives"), tags=("B-PER", "O"))
    assert ner.doc_to_text(n) == "tag: John lives" and ner.doc_to_target(n) == "PER: John"
    p = Example("It rains.", "entailment", pair="It is wet.")
    assert nli.doc_to_text(p) == 'It rains.\n\nQuestion: Does this imply that "It is wet."? Yes, no, or maybe?'
    assert [nli.verbalize(label) for label in nli.labels("en")] == ["Yes", "Maybe", "No"]
    assert check.doc_to_text(Example("a claim", "1")) == "checkworthiness claim: a claim"
    assert (check.verbalize("1"), check.verbalize("0")) == ("Checkworthy", "Not checkworthy")


def test_generations_are_parsed_with_the_papers_fallbacks(specs):
    nli = build_task("nli", specs["nli"])
    labels = nli.labels("en")
    assert [nli.parse(t, labels) for t in ("Yes", " no.", "Maybe", "MAYBE!", "", "perhaps", "Yes, no")] == [
        "entailment",
        "contradiction",
        "neutral",
        "neutral",
        "neutral",
        "neutral",
        "entailment",
    ]
    check = build_task("checkworthiness", specs["checkworthiness"])
    assert [check.parse(t, ["0", "1"]) for t in ("Checkworthy", "not checkworthy.", "  Not  Checkworthy", "yes")] == [
        "1",
        "0",
        "0",
        None,
    ]
    ner = build_task("ner", specs["ner"])
    assert ner.parse("PER: John Smith$$LOC Paris$$$$ORG: ", []) == ("spans", [("PER", "John Smith")])
    qa = build_task("qa", specs["qa"])
    assert qa.parse("  the answer \n", []) == "the answer"


def test_scores_read_each_tasks_predictions(specs):
    ner = build_task("ner", specs["ner"])
    gold = (("John", "lives", "in", "Rome"), ("B-PER", "O", "O", "B-LOC"))
    assert ner.score([("spans", [("PER", "John"), ("LOC", "Rome")])], [gold])["f1"] == 1.0
    assert ner.score([("spans", [("PER", "John")])], [gold])["recall"] == 0.5
    assert ner.score([("tags", ["B-PER", "O", "O", "O"])], [gold])["precision"] == 1.0
    qa = build_task("qa", specs["qa"])
    assert qa.score(["The Rome"], [("Rome", "in Rome")], "en")["exact_match"] == 1.0
    check = build_task("checkworthiness", specs["checkworthiness"])
    assert check.score(["1", "0", None], ["1", "1", "0"])["f1"] == pytest.approx(2 / 3)


def test_a_generation_task_on_an_encoder_is_refused_before_training(specs, tmp_path):
    model = tiny_model("bert")
    task = build_task("seq2seq", specs["seq2seq"])
    run = TaskRun("seq2seq", "prompt", None, None, tmp_path / "run")
    with pytest.raises(XLTError, match="does not run on encoder models"):
        train_task(model, run, task=task)
    assert not (tmp_path / "run").exists()


# ---- what tokenizers do to awkward inputs -----------------------------------------------------------------
def test_a_long_question_is_clipped_and_the_stride_fits_the_room_it_leaves(specs):
    tok = word_tokenizer(WORDS)
    qa = build_task("qa", specs["qa"])
    long_question = " ".join(["q"] * 30)
    example = Example(
        CONTEXT, "kappa lambda", pair=long_question, answers=("kappa lambda",), starts=(CONTEXT.index("kappa"),)
    )
    for max_length in (12, 16, 64):
        batch = qa.encode(tok, [example], [], max_length, train=True)
        assert batch.input_ids.shape[1] <= max_length
        covered = {CONTEXT[a:b] for row in batch.offsets for span in row if span is not None for a, b in [span]}
        assert covered == set(CONTEXT.split())  # every word of the context is in some window
    with pytest.raises(XLTError, match="no room for a context"):
        qa.encode(tok, [example], [], 2, train=False)


def test_a_word_the_tokenizer_drops_does_not_shift_the_tags_after_it():
    from tokenizers import normalizers

    vocab = {"[PAD]": 0, "[UNK]": 1, "john": 2, "smith": 3, "lives": 4, "paris": 5}
    backend = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]"))
    backend.normalizer = normalizers.BertNormalizer(clean_text=True, lowercase=False)
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok = PreTrainedTokenizerFast(tokenizer_object=backend, pad_token="[PAD]", unk_token="[UNK]")
    words = ["john", "\x7f", "smith", "lives", "paris"]
    gold = ["B-PER", "O", "B-PER", "O", "B-LOC"]
    labels = ["O", "B-PER", "B-LOC"]
    batch = encode_words(tok, [words], [gold], labels, 16)
    assert batch.words == [[0, None, 1, 2, 3]]
    assert batch.labels is not None and batch.labels[0].tolist()[:4] == [1, 1, 0, 2]
    logits = torch.nn.functional.one_hot(batch.labels.clamp_min(0), 3).float()
    assert tags_from_logits(logits, batch, [5], labels) == [gold]


def test_an_answer_never_keeps_the_space_before_it():
    from xlt.tasks.head_inputs import HeadBatch

    context = "alpha beta"
    batch = HeadBatch(torch.zeros(1, 2, dtype=torch.long), torch.ones(1, 2, dtype=torch.long), example=[0])
    batch.offsets = [[(0, 5), (5, 10)]]  # sentencepiece offsets: " beta" includes its space
    logits = torch.zeros(1, 2, 2)
    logits[0, 1] = 5.0
    assert best_answers(logits, batch, [context]) == ["beta"]


def test_a_sentence_without_entities_predicted_without_any_scores_one(specs):
    ner = build_task("ner", specs["ner"])
    gold = (("a", "b"), ("O", "O"))
    assert ner.example_score(("tags", ["O", "O"]), gold) == 1.0
    assert ner.example_score(("spans", []), gold) == 1.0
    assert ner.example_score(("tags", ["B-PER", "O"]), gold) == 0.0
    with pytest.raises(XLTError, match="mix head tags and generated spans"):
        ner.score([("tags", ["O", "O"]), ("spans", [])], [gold, gold])


def test_beam_search_as_the_config_says_with_a_plan_per_row(specs):
    from xlt.reps.prompt import PromptConfig

    model = tiny_model("mt5")
    model.add_language("en", PromptConfig(num_virtual_tokens=2, init="vocab"))
    model.add_language("sw", PromptConfig(num_virtual_tokens=3, init="vocab"))
    task = build_task("qa", specs["qa"])
    rows = task.examples("en", "test")[:4]
    plans = [Plan.of(language=f"{lang}/prompt") for lang in ("en", "sw", "sw", "en")]
    beams = TaskFormat(model, task, [], 64, source="en", num_beams=3)
    routed = beams.outputs(rows, plans=plans)[1]
    alone = [beams.outputs([row], plan=plan)[1][0] for row, plan in zip(rows, plans, strict=True)]
    assert routed == alone
    assert beams.max_new_tokens == TaskFormat(model, task, [], 64, source="en").max_new_tokens


def test_a_span_of_whitespace_alone_is_no_answer():
    from xlt.tasks.head_inputs import HeadBatch

    context = "alpha beta"
    batch = HeadBatch(torch.zeros(2, 2, dtype=torch.long), torch.ones(2, 2, dtype=torch.long), example=[0, 0])
    batch.offsets = [[(5, 6), None], [(6, 10), None]]  # a lone "▁" over the space, then "beta" in another window
    logits = torch.zeros(2, 2, 2)
    logits[0, 0] = 9.0
    logits[1, 0] = 1.0
    assert best_answers(logits, batch, [context]) == ["beta"]
