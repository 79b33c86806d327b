"""Which of a project's prompts the gate delivers for a task (DESIGN §10, begin_session).

Rules, in order:
- Task and prompts are compared as terms (`tokens.terms`: lowercase, stopwords out, Snowball stems,
  the same thesaurus as tool ranking).
- A prompt *fits* the task when one of its tags matches (every term of the tag occurs in the task, so
  `deploy` matches "deploying", `code-review` needs both words), or when BM25 (bm25s) over its name,
  description and text scores the task above 0.
- A prompt with priority ≥ 9 is a standing instruction: it is delivered whatever the task says.
- Order: standing instructions first, then the fitting prompts by (tag match, BM25 relevance,
  priority) highest first; within each, ties by name.
- Budget: prompts are taken in that order while the UTF-8 size of their texts, added up, stays within
  `budget_bytes`. A prompt that does not fit is skipped (and named in `omitted`); a later, smaller one
  may still fit. Standing instructions count against the budget like the rest: they come first, so
  only one larger than what is left is omitted.
- Prompts that fit nothing are in neither `delivered` nor `omitted`. No prompts or an empty task is
  not an error: an empty task fits no prompt, so only standing instructions are delivered.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from mcpctl.mcplocal.ports import ProjectPrompt
from mcpctl.mcplocal.proxy.tokens import terms, terms_of

STANDING_PRIORITY = 9


@dataclass(frozen=True)
class PromptSelection:
    delivered: tuple[ProjectPrompt, ...]  # in delivery order
    omitted: tuple[str, ...]  # names of prompts that fit (or stand) but did not fit the budget
    used_bytes: int  # UTF-8 size of the delivered texts


def select_prompts(task: str, prompts: Sequence[ProjectPrompt], budget_bytes: int) -> PromptSelection:
    """The prompts to deliver for `task` within `budget_bytes`, by the rules of this module."""
    task_terms = set(terms(task))
    relevance = _relevance(sorted(task_terms), prompts)
    ranked: list[tuple[tuple[int, int, float, int], str, ProjectPrompt]] = []
    for prompt, score in zip(prompts, relevance, strict=True):
        tagged = any(_tag_matches(tag, task_terms) for tag in prompt.tags)
        standing = prompt.priority >= STANDING_PRIORITY
        if standing or tagged or score > 0:
            ranked.append(((-int(standing), -int(tagged), -score, -prompt.priority), prompt.name, prompt))
    ranked.sort(key=lambda entry: (entry[0], entry[1]))
    delivered: list[ProjectPrompt] = []
    omitted: list[str] = []
    used = 0
    for _, _, prompt in ranked:
        size = len(prompt.text.encode())
        if used + size <= budget_bytes:
            delivered.append(prompt)
            used += size
        else:
            omitted.append(prompt.name)
    return PromptSelection(tuple(delivered), tuple(omitted), used)


def _tag_matches(tag: str, task_terms: set[str]) -> bool:
    tag_terms = terms(tag)
    return bool(tag_terms) and all(term in task_terms for term in tag_terms)


def _relevance(task_terms: list[str], prompts: Sequence[ProjectPrompt]) -> list[float]:
    """BM25 score of the task against each prompt's name, description and text."""
    if not prompts or not task_terms:
        return [0.0] * len(prompts)
    # here, not at the top: bm25s and numpy are ~100 ms of import time that only a project with
    # prompts to select needs (every other cold start of mcpd and mcplocal skips them)
    import bm25s  # type: ignore[import-untyped]  # no stubs or py.typed
    import numpy as np

    retriever = bm25s.BM25()
    retriever.index(
        [terms_of([prompt.name, prompt.description or "", prompt.text]) for prompt in prompts],
        show_progress=False,
    )
    known = [term for term in task_terms if term in retriever.vocab_dict]
    if not known:
        return [0.0] * len(prompts)
    return [float(score) for score in np.asarray(retriever.get_scores(known))]
