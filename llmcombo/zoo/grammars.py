"""The grammars of the zoo's two tasks: the slot tables (devices, rooms, verbs, cities, days,
templates), the shared noise (accents, typos, fillers) and, per task, the seeded generator of one
example, its held-out combinations and the list of every command.

:mod:`llmcombo.zoo.tasks` draws its train, validation and test splits from these generators (the
command grammars are described there); :mod:`llmcombo.zoo.natural` reuses the slot tables for its
out-of-grammar prompts.
"""

from __future__ import annotations

import random
import re
from typing import Iterable

from llmcombo.datasets import Example


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
