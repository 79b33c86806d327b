"""The gate's prompt selection (DESIGN §10): fit by tags and relevance, standing instructions, order,
byte budget."""

from __future__ import annotations

from mcpctl.mcplocal.ports import ProjectPrompt
from mcpctl.mcplocal.proxy.prompt_selection import select_prompts

BIG = 10_000


def _names(prompts: tuple[ProjectPrompt, ...]) -> list[str]:
    return [prompt.name for prompt in prompts]


def test_a_tag_matches_an_inflected_word_of_the_task() -> None:
    prompts = [
        ProjectPrompt("deploy-rules", "Always use the blue/green pipeline.", tags=("deploy",)),
        ProjectPrompt("style", "Use four spaces.", tags=("python",)),
    ]
    selection = select_prompts("Deploying the billing service tonight", prompts, BIG)
    assert _names(selection.delivered) == ["deploy-rules"]
    assert selection.omitted == ()


def test_a_tag_of_several_words_needs_all_of_them_in_the_task() -> None:
    prompts = [ProjectPrompt("checks", "Check tests first.", tags=("code-review",))]
    assert select_prompts("review the pull request", prompts, BIG).delivered == ()
    assert _names(select_prompts("do a code review", prompts, BIG).delivered) == ["checks"]


def test_a_prompt_without_matching_tags_fits_by_its_text() -> None:
    prompts = [
        ProjectPrompt("db", "Database migrations are applied with alembic upgrade head."),
        ProjectPrompt("ui", "Buttons are blue."),
    ]
    selection = select_prompts("run the pending migrations", prompts, BIG)
    assert _names(selection.delivered) == ["db"]


def test_name_and_description_count_for_relevance() -> None:
    prompts = [
        ProjectPrompt("onboarding", "Read the README.", description="How newcomers get started"),
        ProjectPrompt("other", "Nothing related."),
    ]
    assert _names(select_prompts("help a newcomer", prompts, BIG).delivered) == ["onboarding"]
    assert _names(select_prompts("onboarding checklist", prompts, BIG).delivered) == ["onboarding"]


def test_standing_instructions_are_delivered_whatever_the_task_higher_priority_first() -> None:
    prompts = [
        ProjectPrompt("never-push-main", "Never push to main.", priority=9),
        ProjectPrompt("almost", "Be brief.", priority=8),
        ProjectPrompt("top", "Answer in English.", priority=10),
    ]
    selection = select_prompts("rename a variable", prompts, BIG)
    assert _names(selection.delivered) == ["top", "never-push-main"]


def test_order_is_standing_then_tag_then_relevance_then_priority_then_name() -> None:
    prompts = [
        ProjectPrompt("b-relevant-low", "git branches and merges", priority=1),
        ProjectPrompt("a-relevant-high", "git branches and merges", priority=7),
        ProjectPrompt("tagged", "Unrelated words entirely.", tags=("merge",), priority=1),
        ProjectPrompt("standing", "Be careful.", priority=9),
        ProjectPrompt("c-relevant-high", "git branches and merges", priority=7),
    ]
    selection = select_prompts("merge the release branch", prompts, BIG)
    assert _names(selection.delivered) == [
        "standing",
        "tagged",
        "a-relevant-high",
        "c-relevant-high",
        "b-relevant-low",
    ]


def test_more_relevant_text_comes_before_higher_priority() -> None:
    prompts = [
        ProjectPrompt("weak", "cache notes", priority=8),
        ProjectPrompt("strong", "cache invalidation: cache keys, cache eviction, cache size", priority=1),
    ]
    assert _names(select_prompts("tune the cache eviction", prompts, BIG).delivered) == ["strong", "weak"]


def test_a_prompt_over_the_budget_is_skipped_and_a_later_smaller_one_still_fits() -> None:
    prompts = [
        ProjectPrompt("first", "x" * 40, tags=("deploy",), priority=7),
        ProjectPrompt("huge", "y" * 100, tags=("deploy",), priority=6),
        ProjectPrompt("small", "z" * 20, tags=("deploy",), priority=5),
        ProjectPrompt("unrelated", "w" * 5),
    ]
    selection = select_prompts("deploy", prompts, 60)
    assert _names(selection.delivered) == ["first", "small"]
    assert selection.omitted == ("huge",)
    assert selection.used_bytes == 60


def test_the_budget_counts_utf8_bytes_not_characters() -> None:
    prompts = [ProjectPrompt("accents", "é" * 10, tags=("deploy",))]
    assert select_prompts("deploy", prompts, 19).delivered == ()
    assert select_prompts("deploy", prompts, 19).omitted == ("accents",)
    assert select_prompts("deploy", prompts, 20).used_bytes == 20


def test_a_standing_instruction_larger_than_the_budget_is_omitted() -> None:
    prompts = [
        ProjectPrompt("rules", "r" * 50, priority=10),
        ProjectPrompt("hint", "h" * 10, tags=("deploy",)),
    ]
    selection = select_prompts("deploy", prompts, 30)
    assert _names(selection.delivered) == ["hint"]
    assert selection.omitted == ("rules",)


def test_no_prompts_and_empty_tasks_are_fine() -> None:
    empty = select_prompts("anything", [], BIG)
    assert (empty.delivered, empty.omitted, empty.used_bytes) == ((), (), 0)
    prompts = [
        ProjectPrompt("standing", "Always.", priority=9),
        ProjectPrompt("tagged", "Sometimes.", tags=("deploy",)),
    ]
    assert _names(select_prompts("", prompts, BIG).delivered) == ["standing"]
    assert _names(select_prompts("   the of and  ", prompts, BIG).delivered) == ["standing"]


def test_selection_is_deterministic() -> None:
    prompts = [ProjectPrompt(f"p{i}", f"git notes number {i}", priority=i % 10) for i in range(30)]
    first = select_prompts("git notes", prompts, 200)
    assert all(select_prompts("git notes", prompts, 200) == first for _ in range(5))
    assert first.delivered and first.omitted
