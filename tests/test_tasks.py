"""The two zoo tasks: prompt format, command grammar, normalisation, and honest splits."""

from __future__ import annotations

import re

import pytest

from llmcombo.zoo import tasks
from llmcombo.errors import UserError

DOMOTICA = re.compile(
    r"^(LUZ|LED|CALEF|AIRE|PERSIANA|VENT|ENCHUFE|TV)_(SL|CO|DO|BA|GA|DE|PA|CM|TE|NI|EN) "
    r"(ON|OFF|UP|DOWN|SET (1[6-9]|2[0-8]))$")
TIEMPO = re.compile(r"^(TIEMPO|LLUVIA|TEMP|VIENTO|NIEVE) [A-Z_]+ "
                    r"(HOY|MANANA|PASADO_MANANA|FINDE|LUNES|MARTES|MIERCOLES|JUEVES|VIERNES|"
                    r"SABADO|DOMINGO)$")


def test_prompt_format_is_the_seeds():
    ex = tasks.Example("apaga la luz del salon", "LUZ_SL OFF")
    assert tasks.format_example(ex) == "[ORDEN] apaga la luz del salon [COMANDO] LUZ_SL OFF"
    once = tasks.format_prompt("  apaga   la luz ")
    assert once == "[ORDEN] apaga la luz [COMANDO]"
    assert tasks.format_prompt(once) == once  # idempotent


@pytest.mark.parametrize("generated, command", [
    ("[ORDEN] apaga la luz [COMANDO] luz_sl  off</s>", "LUZ_SL OFF"),
    (" TIEMPO MADRID HOY\n[ORDEN] otra cosa", "TIEMPO MADRID HOY"),
    ("LLM1 [ORDEN]", "LLM1"),
    ("", ""),
])
def test_parse_command_cuts_the_echo_and_the_end_markers(generated, command):
    assert tasks.parse_command(generated) == command


@pytest.mark.parametrize("name, grammar", [("domotica", DOMOTICA), ("tiempo", TIEMPO)])
def test_every_command_follows_its_grammar(name, grammar):
    task = tasks.get_task(name)
    for ex in task.train + task.test:
        assert grammar.match(ex.expected), ex
        assert ex.expected in task.commands
    assert len({e.expected for e in task.train}) > 50  # many rooms, devices, cities, days


@pytest.mark.parametrize("name", tasks.TASK_NAMES)
def test_splits_are_disjoint_sized_and_deterministic(name):
    task = tasks.get_task(name)
    assert (len(task.train), len(task.test)) == (tasks.N_TRAIN, tasks.N_TEST)
    train_keys = {tasks.prompt_key(e.prompt) for e in task.train}
    assert not train_keys & {tasks.prompt_key(e.prompt) for e in task.test}
    again = tasks.make_task(name, n_train=200, n_test=40)
    assert again.train == tasks.make_task(name, n_train=200, n_test=40).train
    other_seed = tasks.make_task(name, seed=7, n_train=200, n_test=40)
    assert other_seed.train != again.train


def test_the_two_tasks_do_not_share_commands():
    dom, tie = tasks.get_task("domotica"), tasks.get_task("tiempo")
    assert not {e.expected for e in dom.train} & {e.expected for e in tie.train}


def test_selector_examples_label_each_task():
    ex = tasks.selector_examples("test")
    assert len(ex) == 2 * tasks.N_TEST
    dom_prompts = {e.prompt for e in tasks.get_task("domotica").test}
    for e in ex:
        assert e.expected == ("LLM1" if e.prompt in dom_prompts else "LLM2")
    assert [e.expected for e in ex[:4]] == ["LLM1", "LLM2", "LLM1", "LLM2"]


def test_unknown_task_and_split_are_user_errors():
    with pytest.raises(UserError, match="unknown task 'domotika'") as info:
        tasks.get_task("domotika")
    assert "domotica" in info.value.hint
    with pytest.raises(UserError, match="unknown split") as info:
        tasks.get_task("tiempo").split("dev")
    assert "validation" in info.value.hint


@pytest.mark.parametrize("name", tasks.TASK_NAMES)
def test_validation_split_is_new_text_and_leaves_train_and_test_alone(name):
    """The validation split (what a search tunes on) shares no prompt with train or test, has
    the test split's mix of held-out combinations, and drawing it changes neither of them."""
    task = tasks.get_task(name)
    assert len(task.validation) == tasks.N_VALIDATION
    keys = [tasks.prompt_key(e.prompt) for e in task.validation]
    assert len(set(keys)) == len(keys)
    others = {tasks.prompt_key(e.prompt) for e in task.train + task.test}
    assert not set(keys) & others
    without = tasks.make_task(name, n_validation=0)
    assert without.validation == []
    assert (without.train, without.test) == (task.train, task.test)
    assert tasks.make_task(name, n_train=200, n_test=40, n_validation=30).validation == \
        tasks.make_task(name, n_train=200, n_test=40, n_validation=30).validation
    assert task.split("validation") is task.validation


def test_validation_split_is_a_registered_split():
    from llmcombo.datasets import task_examples

    assert task_examples("domotica", "validation") == tasks.get_task("domotica").validation
