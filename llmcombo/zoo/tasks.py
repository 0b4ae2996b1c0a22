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
"""

from __future__ import annotations

import random
import re
import unicodedata
from dataclasses import dataclass, field
from typing import Callable, Iterable

from llmcombo.datasets import Example, normalize_answer
from llmcombo.errors import UserError

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
# shared noise: fillers, typos, accents
# ---------------------------------------------------------------------------------------------

_ACCENTS = {
    "salon": "salón", "calefaccion": "calefacción", "habitacion": "habitación", "jardin": "jardín",
    "television": "televisión", "lampara": "lámpara", "iluminacion": "iluminación",
    "que": "qué", "como": "cómo", "cuantos": "cuántos", "cuanto": "cuánto", "hara": "hará",
    "llovera": "lloverá", "nevara": "nevará", "prevision": "previsión", "sabado": "sábado",
    "miercoles": "miércoles", "malaga": "málaga", "cadiz": "cádiz", "cordoba": "córdoba",
    "leon": "león", "sebastian": "sebastián", "podrias": "podrías", "gustaria": "gustaría",
    "maxima": "máxima",
}
_KEEP = re.compile(r"^\d+$")


def _typo(rng: random.Random, word: str) -> str:
    if len(word) < 4 or _KEEP.match(word):
        return word
    i = rng.randrange(1, len(word) - 1)
    kind = rng.randrange(4)
    if kind == 0:  # drop a letter
        return word[:i] + word[i + 1:]
    if kind == 1:  # swap two letters
        return word[:i] + word[i + 1] + word[i] + word[i + 2:]
    if kind == 2:  # double a letter
        return word[:i] + word[i] + word[i:]
    near = {"a": "s", "e": "r", "i": "o", "o": "i", "u": "y", "n": "m", "m": "n", "s": "a",
            "r": "t", "t": "r", "l": "k", "c": "x", "d": "f"}
    return word[:i] + near.get(word[i], word[i]) + word[i + 1:]


def _noise(rng: random.Random, text: str, protect: Iterable[str] = ()) -> str:
    """Accents sometimes, one typo sometimes, capital first letter sometimes."""
    words = text.split()
    if rng.random() < 0.12:
        words = [_ACCENTS.get(w, w) for w in words]
    if rng.random() < 0.15:
        protected = set(protect)
        candidates = [i for i, w in enumerate(words) if len(w) >= 4 and w not in protected]
        if candidates:
            i = rng.choice(candidates)
            words[i] = _typo(rng, words[i])
    text = " ".join(words)
    if rng.random() < 0.08:
        text = text[:1].upper() + text[1:]
    return text


def _wrap(rng: random.Random, core: str, prefixes, suffixes, p_prefix=0.3, p_suffix=0.25) -> str:
    if rng.random() < p_prefix:
        pre = rng.choice(prefixes)
        core = f"{pre}{',' if rng.random() < 0.3 else ''} {core}"
    if rng.random() < p_suffix:
        core = f"{core} {rng.choice(suffixes)}"
    return core


# ---------------------------------------------------------------------------------------------
# domotica
# ---------------------------------------------------------------------------------------------

# code -> (feminine?, [(text, article)], actions)
_DEVICES = {
    "LUZ": [("luz", "la"), ("luces", "las"), ("lampara", "la"), ("iluminacion", "la")],
    "LED": [("led", "el"), ("leds", "los"), ("tira led", "la"), ("tira de leds", "la")],
    "CALEF": [("calefaccion", "la"), ("calefa", "la"), ("radiador", "el")],
    "AIRE": [("aire", "el"), ("aire acondicionado", "el"), ("clima", "el"), ("climatizador", "el")],
    "PERSIANA": [("persiana", "la"), ("persianas", "las"), ("estor", "el")],
    "VENT": [("ventilador", "el"), ("ventilador de techo", "el")],
    "ENCHUFE": [("enchufe", "el"), ("enchufe inteligente", "el")],
    "TV": [("tele", "la"), ("television", "la"), ("tv", "la")],
}
_DEVICE_ACTIONS = {
    "LUZ": ["ON", "OFF"], "LED": ["ON", "OFF"], "VENT": ["ON", "OFF"], "ENCHUFE": ["ON", "OFF"],
    "TV": ["ON", "OFF"], "PERSIANA": ["UP", "DOWN"],
    "CALEF": ["ON", "OFF", "SET"], "AIRE": ["ON", "OFF", "SET"],
}
_ROOMS = {
    "SL": [("salon", "el"), ("sala", "la"), ("sala de estar", "la")],
    "CO": [("cocina", "la")],
    "DO": [("dormitorio", "el"), ("habitacion", "la"), ("cuarto", "el")],
    "BA": [("baño", "el"), ("bano", "el"), ("aseo", "el")],
    "GA": [("garaje", "el")],
    "DE": [("despacho", "el"), ("oficina", "la"), ("estudio", "el")],
    "PA": [("pasillo", "el")],
    "CM": [("comedor", "el")],
    "TE": [("terraza", "la")],
    "NI": [("cuarto de los niños", "el"), ("habitacion de los niños", "la")],
    "EN": [("entrada", "la"), ("recibidor", "el")],
}
# verb forms per action: imperative, infinitive, subjunctive (tú), participle stem (+o/+a/+os/+as)
_VERBS = {
    "ON": (["enciende", "activa", "prende", "conecta", "pon", "enciendeme"],
           ["encender", "activar", "prender", "conectar", "poner"],
           ["enciendas", "actives", "prendas", "conectes"],
           ["encendid", "activad", "conectad"]),
    "OFF": (["apaga", "desactiva", "desconecta", "quita", "apagame", "corta"],
            ["apagar", "desactivar", "desconectar", "quitar"],
            ["apagues", "desactives", "desconectes", "quites"],
            ["apagad", "desactivad", "desconectad"]),
    "UP": (["sube", "abre", "levanta", "subeme"],
           ["subir", "abrir", "levantar"],
           ["subas", "abras", "levantes"],
           ["subid", "abiert", "levantad"]),
    "DOWN": (["baja", "cierra", "echa", "bajame"],
             ["bajar", "cerrar", "echar"],
             ["bajes", "cierres", "eches"],
             ["bajad", "cerrad", "echad"]),
}
# templates for ON/OFF/UP/DOWN: {imp} {inf} {subj} {part} {dev} {room} {room_en}
_DOMOTICA_TEMPLATES = [
    "{imp} {dev} {room}",
    "{imp} {dev} {room} ya",
    "puedes {inf} {dev} {room}",
    "quiero {inf} {dev} {room}",
    "{room_en} {imp} {dev}",
    "deja {dev} {room} {part}",
    "haz el favor de {inf} {dev} {room}",
    "necesito que {subj} {dev} {room}",
    "quiero {dev} {room} {part}",
    "{imp} {dev} que hay {room_en}",
    "podrias {inf} {dev} {room}",
    "te importa {inf} {dev} {room}",
    "quiero que {subj} {dev} {room}",
    "me gustaria {inf} {dev} {room}",
    "hay que {inf} {dev} {room}",
    "{room_en} hay que {inf} {dev}",
]
_SET_TEMPLATES = [
    "pon {dev} {room} a {n} grados",
    "pon {dev} {room} a {n}",
    "ajusta {dev} {room} a {n} grados",
    "programa {dev} {room} a {n} grados",
    "sube {dev} {room} a {n} grados",
    "baja {dev} {room} a {n} grados",
    "quiero {dev} {room} a {n} grados",
    "{room_en} pon {dev} a {n} grados",
    "puedes poner {dev} {room} a {n} grados",
    "temperatura {dev_de} {room} a {n}",
]
_TEMPS = list(range(16, 29))
_DOMOTICA_PREFIXES = ["oye", "hola", "por favor", "casa", "eh", "venga", "oye casa", "escucha"]
_DOMOTICA_SUFFIXES = ["por favor", "porfa", "ahora", "ahora mismo", "gracias", "cuando puedas"]


def _room_phrase(rng: random.Random, text: str, art: str) -> str:
    r = rng.random()
    if r < 0.72:  # correct: del salon / de la cocina
        return f"del {text}" if art == "el" else f"de la {text}"
    if r < 0.82:  # no article
        return f"de {text}"
    if r < 0.92:  # wrong article ("led de la salon")
        return f"de la {text}" if art == "el" else f"del {text}"
    return f"en {'el' if art == 'el' else 'la'} {text}"


def _dev_phrase(rng: random.Random, text: str, art: str) -> str:
    r = rng.random()
    if r < 0.75:
        return f"{art} {text}"
    if r < 0.92:  # dropped article ("activa led de ...")
        return text
    wrong = {"el": "la", "la": "el", "los": "las", "las": "los"}[art]
    return f"{wrong} {text}"


def _participle(stem: str, art: str) -> str:
    ending = {"el": "o", "la": "a", "los": "os", "las": "as"}[art]
    return stem + ending


def _domotica_example(rng: random.Random, holdout: dict) -> tuple[Example, bool]:
    device = rng.choice(sorted(_DEVICES))
    room = rng.choice(sorted(_ROOMS))
    action = rng.choice(_DEVICE_ACTIONS[device])
    dev_text, dev_art = rng.choice(_DEVICES[device])
    room_text, room_art = rng.choice(_ROOMS[room])
    dev = _dev_phrase(rng, dev_text, dev_art)
    room_ph = _room_phrase(rng, room_text, room_art)
    room_en = f"en {'el' if room_art == 'el' else 'la'} {room_text}"
    if action == "SET":
        n = rng.choice(_TEMPS)
        t_id = rng.randrange(len(_SET_TEMPLATES))
        core = _SET_TEMPLATES[t_id].format(
            dev=dev, room=room_ph, room_en=room_en, n=n,
            dev_de=f"de {dev_art} {dev_text}" if dev_art != "el" else f"del {dev_text}")
        expected = f"{device}_{room} SET {n}"
        template_key: tuple = ("set", t_id)
    else:
        imps, infs, subjs, parts = _VERBS[action]
        t_id = rng.randrange(len(_DOMOTICA_TEMPLATES))
        core = _DOMOTICA_TEMPLATES[t_id].format(
            imp=rng.choice(imps), inf=rng.choice(infs), subj=rng.choice(subjs),
            part=_participle(rng.choice(parts), dev_art), dev=dev, room=room_ph, room_en=room_en)
        expected = f"{device}_{room} {action}"
        template_key = (t_id, action)
    text = _wrap(rng, core, _DOMOTICA_PREFIXES, _DOMOTICA_SUFFIXES)
    text = _noise(rng, text)
    held = (device, room) in holdout["pairs"] or template_key in holdout["templates"]
    return Example(" ".join(text.split()), expected), held


def _domotica_holdout(rng: random.Random) -> dict:
    pairs = [(d, r) for d in sorted(_DEVICES) for r in sorted(_ROOMS)]
    templates: list[tuple] = [(t, a) for t in range(len(_DOMOTICA_TEMPLATES)) for a in sorted(_VERBS)]
    templates += [("set", t) for t in range(len(_SET_TEMPLATES))]
    return {"pairs": set(rng.sample(pairs, len(pairs) // 10)),
            "templates": set(rng.sample(templates, len(templates) // 10))}


def _domotica_commands() -> list[str]:
    out = []
    for d in sorted(_DEVICES):
        for r in sorted(_ROOMS):
            for a in _DEVICE_ACTIONS[d]:
                if a == "SET":
                    out += [f"{d}_{r} SET {n}" for n in _TEMPS]
                else:
                    out.append(f"{d}_{r} {a}")
    return out


# ---------------------------------------------------------------------------------------------
# tiempo
# ---------------------------------------------------------------------------------------------

_CITIES = {
    "MADRID": ["madrid"], "BARCELONA": ["barcelona", "bcn"], "SEVILLA": ["sevilla"],
    "VALENCIA": ["valencia"], "BILBAO": ["bilbao"], "MALAGA": ["malaga"],
    "ZARAGOZA": ["zaragoza"], "GRANADA": ["granada"], "CADIZ": ["cadiz"], "CORDOBA": ["cordoba"],
    "SALAMANCA": ["salamanca"], "TOLEDO": ["toledo"], "VIGO": ["vigo"], "OVIEDO": ["oviedo"],
    "MURCIA": ["murcia"], "ALICANTE": ["alicante"], "SAN_SEBASTIAN": ["san sebastian", "donostia"],
    "LAS_PALMAS": ["las palmas"], "A_CORUNA": ["a coruña", "la coruña", "coruña"],
    "LEON": ["leon"], "SANTANDER": ["santander"], "VALLADOLID": ["valladolid"],
    "PAMPLONA": ["pamplona"], "BURGOS": ["burgos"],
}
_DAYS = {
    "HOY": ["hoy", "", "ahora", "esta tarde", "esta noche", "esta mañana", "hoy por la tarde"],
    "MANANA": ["mañana", "manana", "mañana por la mañana", "mañana por la tarde"],
    "PASADO_MANANA": ["pasado mañana", "pasado manana"],
    "FINDE": ["el fin de semana", "este finde", "este fin de semana", "el finde"],
    "LUNES": ["el lunes", "este lunes"], "MARTES": ["el martes", "este martes"],
    "MIERCOLES": ["el miercoles", "este miercoles"], "JUEVES": ["el jueves", "este jueves"],
    "VIERNES": ["el viernes", "este viernes"], "SABADO": ["el sabado", "este sabado"],
    "DOMINGO": ["el domingo", "este domingo"],
}
_WEATHER_TEMPLATES = {
    "TIEMPO": ["que tiempo hace {day} en {city}", "que tiempo hara {day} en {city}",
               "que tiempo va a hacer {day} en {city}", "como esta el tiempo en {city} {day}",
               "dime el tiempo de {city} {day}", "prevision del tiempo en {city} {day}",
               "que tal el tiempo en {city} {day}", "el tiempo en {city} {day}",
               "como sale el dia {day} en {city}"],
    "LLUVIA": ["va a llover {day} en {city}", "llovera en {city} {day}",
               "necesito paraguas {day} en {city}", "hay probabilidad de lluvia en {city} {day}",
               "llueve en {city} {day}", "me llevo paraguas {day} a {city}",
               "va a caer agua en {city} {day}"],
    "TEMP": ["que temperatura hace en {city} {day}", "que temperatura hara {day} en {city}",
             "cuantos grados hace en {city} {day}", "hace frio {day} en {city}",
             "hace calor en {city} {day}", "que temperatura maxima hay en {city} {day}",
             "cuantos grados va a hacer {day} en {city}"],
    "VIENTO": ["hace viento en {city} {day}", "va a hacer viento {day} en {city}",
               "cuanto viento hay en {city} {day}", "sopla mucho el viento en {city} {day}",
               "hay rachas de viento {day} en {city}", "hara viento en {city} {day}"],
    "NIEVE": ["va a nevar en {city} {day}", "nevara {day} en {city}", "hay nieve en {city} {day}",
              "se espera nieve {day} en {city}", "caera nieve en {city} {day}"],
}
_TIEMPO_PREFIXES = ["oye", "hola", "por favor", "una pregunta", "oye dime", "me puedes decir",
                    "sabes", "dime"]
_TIEMPO_SUFFIXES = ["por favor", "porfa", "gracias", "o que"]


def _tiempo_example(rng: random.Random, holdout: dict) -> tuple[Example, bool]:
    kind = rng.choice(sorted(_WEATHER_TEMPLATES))
    city = rng.choice(sorted(_CITIES))
    day = rng.choice(sorted(_DAYS))
    t_id = rng.randrange(len(_WEATHER_TEMPLATES[kind]))
    day_text = rng.choice(_DAYS[day])
    if day_text and rng.random() < 0.15:
        day_text = f"para {day_text}"
    core = _WEATHER_TEMPLATES[kind][t_id].format(day=day_text, city=rng.choice(_CITIES[city]))
    text = _wrap(rng, core, _TIEMPO_PREFIXES, _TIEMPO_SUFFIXES)
    if rng.random() < 0.2:
        text = f"¿{text}?"
    text = _noise(rng, text, protect=[w for names in _CITIES.values() for n in names for w in n.split()])
    held = (city, kind) in holdout["pairs"] or (kind, t_id, day) in holdout["templates"]
    return Example(" ".join(text.split()), f"{kind} {city} {day}"), held


def _tiempo_holdout(rng: random.Random) -> dict:
    pairs = [(c, k) for c in sorted(_CITIES) for k in sorted(_WEATHER_TEMPLATES)]
    templates = [(k, t, d) for k in sorted(_WEATHER_TEMPLATES)
                 for t in range(len(_WEATHER_TEMPLATES[k])) for d in sorted(_DAYS)]
    return {"pairs": set(rng.sample(pairs, len(pairs) // 10)),
            "templates": set(rng.sample(templates, len(templates) // 10))}


def _tiempo_commands() -> list[str]:
    return [f"{k} {c} {d}" for k in sorted(_WEATHER_TEMPLATES) for c in sorted(_CITIES)
            for d in sorted(_DAYS)]


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
