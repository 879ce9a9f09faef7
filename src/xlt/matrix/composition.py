"""Languages without a corpus: a target's language representation composed from the other languages' (its own
withheld), for configurations with ``compose``."""

from __future__ import annotations

from collections.abc import Iterable

from xlt.errors import XLTError
from xlt.languages import get_language
from xlt.matrix.configurations import Configuration
from xlt.model import XLTModel


def _script(code: str) -> str | None:
    try:
        return get_language(code).script
    except XLTError:
        return None


def composition_weights(target: str, languages: Iterable[str]) -> dict[str, float]:
    """Uniform weights over the languages (never the target) that share the target's script, over all of them
    where none does: script is the relatedness the language registry knows for every language."""
    others = [lang for lang in dict.fromkeys(languages) if lang != target]
    script = _script(target)
    related = [lang for lang in others if script is not None and _script(lang) == script]
    chosen = related or others
    return {lang: 1.0 / len(chosen) for lang in chosen}


def compose_target(model: XLTModel, conf: Configuration, target: str, available: Iterable[str]) -> dict[str, float]:
    """Put ``conf.test_language_rep(target)`` in the bank (replacing an earlier one), averaged from the
    representations of ``available`` languages (those whose representation of ``conf.language`` is built);
    returns the weights by rep name."""
    name = conf.test_language_rep(target)
    if name is None:
        raise XLTError(f"configuration '{conf.name}' has no language representation to compose")
    weights = composition_weights(target, available)
    if not weights:
        raise XLTError(
            f"no other language's {conf.language} representation to compose {target}'s from (add languages with "
            "corpora to the grid)"
        )
    by_rep = {str(conf.language_rep(lang)): weight for lang, weight in weights.items()}
    if name in model.reps:
        model.remove(name)
    model.compose(name, by_rep, language=target)
    return by_rep
