"""The two toy tasks of the zoo, generated procedurally and offline.

Both tasks share one prompt format::

    [ORDEN] apaga la luz del salon [COMANDO] LUZ_SL OFF
    [ORDEN] que tiempo hace mañana en madrid [COMANDO] TIEMPO MADRID MANANA

``domotica``
    Home-automation orders in (sloppy, colloquial) Spanish. Command grammar::

        DEVICE_ROOM ACTION [VALUE]
        DEVICE  LUZ LED CALEF AIRE PERSIANA VENT ENCHUFE TV
        ROOM    SL (salon) CO (cocina) DO (dormitorio) BA (baño) GA (garaje) DE (despacho)
                PA (pasillo) CM (comedor) TE (terraza) NI (cuarto de los niños) EN (entrada)
        ACTION  ON | OFF (switchable devices) ; UP | DOWN (PERSIANA) ; SET N (CALEF, AIRE; N in 16..28)

``tiempo``
    Weather questions. Command grammar::

        TIEMPO|LLUVIA|TEMP|VIENTO|NIEVE  CITY  DAY
        CITY  MADRID BARCELONA ... SAN_SEBASTIAN LAS_PALMAS A_CORUNA (no accents, "_" for spaces)
        DAY   HOY MANANA PASADO_MANANA FINDE LUNES MARTES ... DOMINGO   (no day mentioned: HOY)

Data comes from templates x slots x filler words x typos, drawn with a seeded RNG, so the same seed
gives the same data on every machine. The test split never shares a prompt text with the training
split (compared after removing case, accents and punctuation), and half of it uses *held-out
combinations* (device+room, template+action, city+type, template+day pairs) that never occur in
training, so a model can only score there by composing what it learned.

A *validation* split (what a search tunes on; :mod:`llmcombo.search`) is drawn only after train and
test are complete, from its own seeded random stream, so train and test are exactly what they
would be without it; its prompts are new texts too (no :func:`prompt_key` shared with train or
test), half of them from the held-out combinations, like the test split.

Evaluation is exact match of :func:`normalize_command` of the answer against the expected command.
The selector task labels every domotica prompt ``LLM1`` and every tiempo prompt ``LLM2``.

The grammars themselves (slot tables, noise, one generator per task) are in
:mod:`llmcombo.zoo.grammars`; this module draws the splits from them.
"""

from __future__ import annotations

import random
import re
import unicodedata
from dataclasses import dataclass, field
from typing import Callable

from llmcombo.datasets import Example, normalize_answer
from llmcombo.errors import UserError
from llmcombo.zoo.grammars import (_domotica_commands, _domotica_example, _domotica_holdout,
                                   _tiempo_commands, _tiempo_example, _tiempo_holdout)

SEED = 1234
N_TRAIN = 3000
N_TEST = 300
N_VALIDATION = 300

ORDEN = "[ORDEN]"
COMANDO = "[COMANDO]"
DEFAULT_TEMPLATE = f"{ORDEN} {{input}} {COMANDO}"  # what format_prompt writes
EOS_MARKERS = ("</s>", "<pad>", "<|endoftext|>", "<eos>", ORDEN, "\n")

SELECTOR_LABELS = {"domotica": "LLM1", "tiempo": "LLM2"}
SPLITS = ("train", "validation", "test")


@dataclass
class Task:
    name: str
    description: str
    train: list[Example] = field(default_factory=list)
    test: list[Example] = field(default_factory=list)
    validation: list[Example] = field(default_factory=list)  # for tuning (a search), never test
    label: str = ""  # what the selector answers for this task's prompts
    commands: list[str] = field(default_factory=list)  # every command of the grammar

    def split(self, split: str) -> list[Example]:
        if split not in SPLITS:
            raise UserError(f"unknown split {split!r}", hint="use 'train', 'validation' or 'test'")
        return {"train": self.train, "validation": self.validation, "test": self.test}[split]

    def __repr__(self) -> str:
        return (f"Task({self.name!r}, train={len(self.train)}, validation={len(self.validation)}, "
                f"test={len(self.test)})")


# ---------------------------------------------------------------------------------------------
# prompt format and normalisation
# ---------------------------------------------------------------------------------------------


def format_prompt(text: str) -> str:
    """The model input for an order: ``[ORDEN] text [COMANDO]`` (idempotent)."""
    text = " ".join(str(text).split())
    if text.endswith(COMANDO):
        return text
    if not text.startswith(ORDEN):
        text = f"{ORDEN} {text}"
    return f"{text} {COMANDO}"


def format_example(example: Example) -> str:
    """The full training text of an example (without bos/eos)."""
    return f"{format_prompt(example.prompt)} {example.expected}"


def normalize_command(s: str) -> str:
    """Strip, upper-case, collapse whitespace (the exact-match key of evaluation)."""
    return normalize_answer(s)


def parse_command(generated: str) -> str:
    """The command in a model's output: the text after the last ``[COMANDO]`` (if the prompt was
    echoed), cut at end-of-sequence markers or a newline, then :func:`normalize_command`."""
    text = str(generated)
    if COMANDO in text:
        text = text.rsplit(COMANDO, 1)[1]
    cut = len(text)
    for marker in EOS_MARKERS:
        i = text.find(marker)
        if i != -1:
            cut = min(cut, i)
    return normalize_command(text[:cut])


def prompt_key(text: str) -> str:
    """What makes two prompts "the same" for the train/test split: no case, accents, punctuation."""
    text = unicodedata.normalize("NFKD", text.lower())
    text = "".join(c for c in text if not unicodedata.combining(c))
    text = re.sub(r"[^\w\s]", " ", text)
    return " ".join(text.split())


# ---------------------------------------------------------------------------------------------
# building the tasks
# ---------------------------------------------------------------------------------------------

_GENERATORS: dict[str, tuple[str, Callable, Callable, Callable]] = {
    "domotica": ("Spanish home-automation orders -> device command (LUZ_SL OFF)",
                 _domotica_example, _domotica_holdout, _domotica_commands),
    "tiempo": ("Spanish weather questions -> weather command (TIEMPO MADRID MANANA)",
               _tiempo_example, _tiempo_holdout, _tiempo_commands),
}
TASK_NAMES = tuple(_GENERATORS)


def make_task(name: str, seed: int = SEED, n_train: int = N_TRAIN, n_test: int = N_TEST,
              n_validation: int = N_VALIDATION) -> Task:
    """Generate a task's data. Same ``(name, seed, n_train, n_test)`` -> same train and test data,
    everywhere (whatever ``n_validation``).

    The test split has ``n_test`` prompts: half from held-out combinations (never in training),
    half ordinary prompts whose text (see :func:`prompt_key`) is not in training either. The
    validation split (``n_validation`` prompts, same mix) is drawn afterwards from a separate
    seeded stream and shares no prompt text with train or test.
    """
    if name not in _GENERATORS:
        raise UserError(f"unknown task {name!r}", hint=f"valid tasks: {', '.join(TASK_NAMES)}")
    description, example_fn, holdout_fn, commands_fn = _GENERATORS[name]
    rng = random.Random(f"llmcombo-task:{name}:{seed}")
    holdout = holdout_fn(rng)
    n_comp = n_test // 2
    train: dict[str, Example] = {}
    comp: dict[str, Example] = {}
    iid: dict[str, Example] = {}
    attempts = 0
    limit = 200 * (n_train + n_test)
    while len(train) < n_train or len(comp) < n_comp or len(iid) < n_test - n_comp:
        attempts += 1
        if attempts > limit:  # pragma: no cover - the grammars are far larger than the splits
            raise RuntimeError(f"could not generate enough distinct {name} prompts")
        ex, held = example_fn(rng, holdout)
        key = prompt_key(ex.prompt)
        if key in train or key in comp or key in iid:
            continue
        if held:
            if len(comp) < n_comp:
                comp[key] = ex
        elif len(train) < n_train:
            train[key] = ex
        elif len(iid) < n_test - n_comp:
            iid[key] = ex
    test = list(comp.values()) + list(iid.values())
    random.Random(f"llmcombo-test-order:{name}:{seed}").shuffle(test)
    validation = _draw_validation(name, seed, n_validation, example_fn, holdout,
                                  set(train) | set(comp) | set(iid))
    return Task(name=name, description=description, train=list(train.values()), test=test,
                validation=validation, label=SELECTOR_LABELS[name], commands=commands_fn())


def _draw_validation(name: str, seed: int, n: int, example_fn: Callable, holdout: dict,
                     taken: set[str]) -> list[Example]:
    """``n`` new prompts (half from held-out combinations), from their own random stream: drawing
    them changes nothing in train or test, and none shares a :func:`prompt_key` with them."""
    rng = random.Random(f"llmcombo-task-validation:{name}:{seed}")
    n_comp = n // 2
    comp: dict[str, Example] = {}
    iid: dict[str, Example] = {}
    attempts, limit = 0, 400 * max(1, n)
    while len(comp) < n_comp or len(iid) < n - n_comp:
        attempts += 1
        if attempts > limit:  # pragma: no cover - the grammars are far larger than the splits
            raise RuntimeError(f"could not generate enough distinct {name} validation prompts")
        ex, held = example_fn(rng, holdout)
        key = prompt_key(ex.prompt)
        if key in taken or key in comp or key in iid:
            continue
        if held and len(comp) < n_comp:
            comp[key] = ex
        elif not held and len(iid) < n - n_comp:
            iid[key] = ex
    validation = list(comp.values()) + list(iid.values())
    rng.shuffle(validation)
    return validation


_CACHE: dict[str, Task] = {}


def _tasks() -> dict[str, Task]:
    if not _CACHE:
        for name in TASK_NAMES:
            _CACHE[name] = make_task(name)
    return _CACHE


def get_task(name: str) -> Task:
    """The task called ``name`` (``"domotica"`` or ``"tiempo"``), default seed and sizes."""
    if name not in _GENERATORS:
        raise UserError(f"unknown task {name!r}", hint=f"valid tasks: {', '.join(TASK_NAMES)}")
    return _tasks()[name]


def selector_examples(split: str = "train") -> list[Example]:
    """Prompts of both tasks labelled with the model that should answer them
    (domotica -> ``LLM1``, tiempo -> ``LLM2``), interleaved deterministically."""
    per_task = [[Example(e.prompt, get_task(n).label) for e in get_task(n).split(split)]
                for n in TASK_NAMES]
    out: list[Example] = []
    for i in range(max(len(p) for p in per_task)):
        out += [p[i] for p in per_task if i < len(p)]
    return out


def __getattr__(name: str):  # PEP 562: TASKS is generated on first use
    if name == "TASKS":
        return _tasks()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
