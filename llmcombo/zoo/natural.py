"""Natural variety: how people really type to a voice assistant (zoo v2).

Used to pretrain the zoo's base (plain orders), to add natural-looking copies of the training
orders to the specialists, and to train the selector. The out-of-grammar name lists below
(``AUG_*``) are disjoint from the hand-written natural prompt set (``tests/data/natural``), so
routing accuracy on that set measures generalisation to unseen cities, devices and rooms (a test
checks it).
"""

from __future__ import annotations

import random

from llmcombo.datasets import Example
from llmcombo.zoo.grammars import _ACCENTS, _CITIES, _DAYS, _DEVICES, _ROOMS, _typo
from llmcombo.zoo.tasks import SEED, TASK_NAMES, get_task


_MORE_ACCENTS = dict(_ACCENTS, **{
    "esta": "está", "estara": "estará", "habra": "habrá", "caera": "caerá", "hara": "hará",
    "apagame": "apágame", "enciendeme": "enciéndeme", "subeme": "súbeme", "bajame": "bájame",
    "cuantos": "cuántos", "cual": "cuál", "donde": "dónde", "cuando": "cuándo", "mas": "más",
    "tambien": "también", "dias": "días", "termica": "térmica", "camara": "cámara",
    "rapido": "rápido",
    "aranjuez": "aranjuez", "merida": "mérida", "aviles": "avilés", "cadiz": "cádiz",
    "alcala": "alcalá", "berlin": "berlín", "mexico": "méxico", "bogota": "bogotá",
    "gandia": "gandía", "salon": "salón", "galeria": "galería",
    "anticiclon": "anticiclón", "sensacion": "sensación", "relampagos": "relámpagos",
    "prevision": "previsión", "pronostico": "pronóstico", "mediodia": "mediodía",
})
_UNACCENT = {"mañana": "manana", "baño": "bano", "niños": "ninos", "coruña": "coruna",
             "año": "ano", "señor": "senor"}
_OPENERS = ["oye", "oye,", "hey", "hola,", "hola", "a ver,", "perdona,", "mira,", "venga,",
            "buenas,", "eh,", "oiga,", "asistente,", "escucha,", "una cosa,", "porfa,"]
_CLOSERS = ["por favor", "porfa", "gracias", "anda", "vale", "please", "cuando puedas",
            "si puedes", "ya", "rapido", "de una vez", "si no te importa"]

# out-of-grammar names (NOT used in natural/*.jsonl)
AUG_CITIES = ["albacete", "ourense", "pontevedra", "guadalajara", "ciudad real", "tarifa", "ronda",
              "merida", "plasencia", "ponferrada", "astorga", "jerez", "algeciras", "elche",
              "cartagena", "lorca", "gandia", "denia", "reus", "manresa", "sabadell", "terrassa",
              "badalona", "getafe", "alcala", "mostoles", "aranjuez", "talavera", "aviles",
              "ferrol", "benavente", "calatayud", "tudela", "vitoria", "irun", "sitges",
              "lanzarote", "menorca", "mallorca", "fuerteventura", "berlin", "oporto", "milan",
              "bruselas", "dublin", "viena", "atenas", "praga", "tokio", "mexico",
              "buenos aires", "bogota", "lima", "asturias", "cantabria", "la rioja", "el pueblo",
              "la sierra", "la costa", "mi ciudad", "aqui", "la capital"]
AUG_DEVICES = [("lavavajillas", "el"), ("microondas", "el"), ("secadora", "la"),
               ("calentador", "el"), ("purificador", "el"), ("humidificador", "el"),
               ("router", "el"), ("impresora", "la"), ("consola", "la"), ("proyector", "el"),
               ("barra de sonido", "la"), ("tostadora", "la"), ("hervidor", "el"),
               ("freidora", "la"), ("nevera", "la"), ("congelador", "el"), ("cerradura", "la"),
               ("timbre", "el"), ("camara", "la"), ("sensor de movimiento", "el"),
               ("aspersores", "los"), ("bomba de agua", "la"), ("foco", "el"), ("plafon", "el"),
               ("flexo", "el"), ("caldera", "la"), ("termostato", "el"), ("bombilla", "la"),
               ("guirnalda", "la"), ("extractor", "el"), ("campana extractora", "la"),
               ("vitroceramica", "la"), ("cortinas", "las"), ("acuario", "el"),
               ("ambientador", "el"), ("portero automatico", "el"), ("deshumidificador", "el"),
               ("altavoces", "los"), ("tocadiscos", "el"), ("ordenador", "el"),
               ("portatil", "el"), ("cargador", "el"), ("mosquitera", "la"), ("porton", "el")]
AUG_ROOMS = [("buhardilla", "la"), ("trastero", "el"), ("lavadero", "el"), ("patio", "el"),
             ("bodega", "la"), ("gimnasio", "el"), ("cuarto de invitados", "el"),
             ("salita", "la"), ("vestidor", "el"), ("sala de juegos", "la"),
             ("biblioteca", "la"), ("hall", "el"), ("escalera", "la"), ("galeria", "la"),
             ("azotea", "la"), ("taller", "el"), ("cuarto de lavar", "el"),
             ("habitacion grande", "la"), ("cuarto del bebe", "el"), ("planta de arriba", "la"),
             ("planta baja", "la"), ("casa de la playa", "la"), ("caseta", "la")]
AUG_WEATHER = ["va a haber chubascos", "habra borrasca", "hay anticiclon",
               "que sensacion termica hay", "va a estar despejado", "habra nubes",
               "hay ola de frio", "hay polen", "va a haber relampagos", "hay temporal",
               "como esta el oleaje", "hace bochorno", "va a haber truenos",
               "a que hora se pone el sol", "como esta la marea", "va a chispear",
               "cae una tromba de agua", "hay riesgo de inundaciones", "hay mucha contaminacion"]
AUG_DAYS = ["el mes que viene", "en verano", "en primavera", "en otoño", "el dia de reyes",
            "en semana santa", "el puente de mayo", "a mediodia", "de madrugada",
            "dentro de dos dias", "el 3 de marzo", "a las cinco", "en dos horas",
            "esta tarde noche", "toda la semana", "en los proximos dias", "el dia 20"]

_DOMOTICA_NATURAL = [
    "{on} {dev}", "{off} {dev}", "{on} {dev} {room}", "{off} {dev} {room}",
    "puedes {on_inf} {dev}", "me {on_cl} {dev}", "me {off_cl} {dev}", "pon {dev} en marcha",
    "para {dev}", "quiero {on_inf} {dev} {room}", "sube el volumen {dev_de}",
    "baja la potencia {dev_de}", "programa {dev} para las {h}", "esta encendid{o} {dev}",
    "{dev} esta apagad{o}", "{dev} {room}, {on_imp_la}", "activa el modo eco {dev_de}",
    "pon {dev} al {pct} por ciento", "sube {dev} un poco", "baja {dev} un poco",
    "hace {weather_adj}, {on} {gdev} {groom}", "hace {weather_adj}, {off} {gdev}",
    "que temperatura hay {groom_en}", "a cuantos grados esta {groom_art}",
    "{on} {gdev} {room}", "{off} {gdev} {room}", "{on} todas las luces {groom}",
    "{off} {gdev}", "{on} {gdev}", "pon {gdev} a {n} grados", "{off} todo {groom}",
    "deja {dev} encendid{o} toda la noche", "apaga {dev} en {m} minutos",
    "cierra {dev} {room}", "abre {dev} {room}", "bloquea {dev}", "reinicia {dev}",
]
_TIEMPO_NATURAL = [
    "que tiempo hace en {ucity}", "que tiempo hara {day} en {ucity}", "va a llover en {ucity}",
    "llovera {day} en {ucity}", "hace frio en {ucity} {day}", "hara calor en {ucity}",
    "va a nevar {day}", "que tiempo hace {day}", "que tiempo hace", "va a llover {day}",
    "necesito paraguas {day}", "necesito el abrigo {day}", "hace frio fuera",
    "que temperatura hace {day}", "cuantos grados hay en {ucity}", "como estara el tiempo {day}",
    "{aug_weather} {day}", "{aug_weather} en {ucity}", "{aug_weather} en {gcity}",
    "que tiempo hara en {gcity} {uday}", "va a llover en {gcity} {uday}",
    "hace sol {day}", "va a hacer sol en {ucity}", "estara nublado {day}",
    "que tal el dia {day}", "llueve", "nieva en {ucity}", "hay viento {day}",
    "hara bueno {day} en {ucity}", "que prevision hay para {day}", "el tiempo para {uday}",
    "pronostico de {ucity}", "temperatura en {ucity}", "lluvia {day}",
    "puedo salir sin paraguas {day}", "me llevo chaqueta a {ucity}",
    "saldra el sol {day}", "va a hacer buen dia {day}", "cuando para de llover en {ucity}",
    "va a hacer calor {uday}", "hay alerta por lluvias en {ucity}",
]
_WEATHER_ADJ = ["frio", "calor", "mucho frio", "mucho calor", "un frio que pela", "bochorno"]
_GENERIC_ON = (["enciende", "activa", "prende", "conecta", "pon", "arranca", "enchufa"],
               ["encender", "activar", "poner", "conectar", "arrancar"],
               ["enciendes", "activas", "pones", "conectas"])
_GENERIC_OFF = (["apaga", "desactiva", "desconecta", "quita", "para", "desenchufa"],
                ["apagar", "desactivar", "desconectar", "parar"],
                ["apagas", "desactivas", "desconectas", "quitas"])


def _art_phrase(text: str, art: str) -> str:
    return f"{art} {text}"


def _de_phrase(text: str, art: str) -> str:
    return {"el": f"del {text}", "la": f"de la {text}", "los": f"de los {text}",
            "las": f"de las {text}"}[art]


def naturalize(rng: random.Random, text: str, question: bool | None = None) -> str:
    """A prompt as people type it: openers/closers, accents added or dropped, a typo, capitals,
    ¿?/¡!/. punctuation. ``question``: wrap in ¿? (None: guess from the first word)."""
    words = text.split()
    if rng.random() < 0.35:  # interrogatives only at the start ("que" is mostly a conjunction)
        words = [_MORE_ACCENTS.get(w, w) if (i == 0 or w not in ("que", "como", "cuando",
                                                               "donde", "esta", "mas"))
                 else w for i, w in enumerate(words)]
    elif rng.random() < 0.15:
        words = [_UNACCENT.get(w, w) for w in words]
    if rng.random() < 0.2:
        cand = [i for i, w in enumerate(words) if len(w) >= 4 and not w.isdigit()]
        if cand:
            i = rng.choice(cand)
            words[i] = _typo(rng, words[i])
    text = " ".join(words)
    if question is None:
        question = bool(words[:1]) and words[0].strip("¿") in (
            "que", "qué", "va", "hara", "hará", "hace", "como", "cómo", "cuantos", "cuántos",
            "llovera", "lloverá", "nevara", "nevará", "hay", "habra", "habrá", "esta", "está",
            "puedes", "podrias", "podrías", "necesito", "llueve", "nieva", "a", "cuanto", "me")
    r = rng.random()
    if "¿" in text or text.endswith(("?", "!")):
        pass
    elif question:
        if r < 0.45:
            text = f"¿{text}?"
        elif r < 0.6:
            text = f"{text}?"
    else:
        if r < 0.1:
            text = f"¡{text}!"
        elif r < 0.2:
            text = f"{text}!"
        elif r < 0.3:
            text = f"{text}."
    if rng.random() < 0.25:
        opener = rng.choice(_OPENERS)
        text = f"{opener} {text}"
    if rng.random() < 0.15:
        closer = rng.choice(_CLOSERS)
        if text[-1:] in "?!.":
            text = f"{text[:-1]}, {closer}{text[-1]}"
        else:
            text = f"{text} {closer}"
    r = rng.random()
    if r < 0.45:
        text = text[:1].upper() + text[1:] if not text.startswith(("¿", "¡")) else \
            text[:1] + text[1:2].upper() + text[2:]
    elif r < 0.52:
        text = text.upper()
    elif r < 0.57:
        text = " ".join(w[:1].upper() + w[1:] for w in text.split())
    if rng.random() < 0.3:  # proper nouns with a capital
        for c in AUG_CITIES + [n for names in _CITIES.values() for n in names]:
            if f" {c}" in f" {text}":
                text = text.replace(c, " ".join(x[:1].upper() + x[1:] for x in c.split()))
    return " ".join(text.split())


def natural_order(rng: random.Random, task: str) -> str:
    """One out-of-grammar order of ``task`` (unknown devices/rooms/cities/days/kinds, no city or
    no room, status questions, indoor temperature, weather words in home orders...), lower case,
    before :func:`naturalize`."""
    if task == "domotica":
        dev, art = rng.choice(AUG_DEVICES)
        room, rart = rng.choice(AUG_ROOMS)
        gdev_code = rng.choice(sorted(_DEVICES))
        gdev, gart = rng.choice(_DEVICES[gdev_code])
        groom_code = rng.choice(sorted(_ROOMS))
        groom, grart = rng.choice(_ROOMS[groom_code])
        on = _GENERIC_ON
        off = _GENERIC_OFF
        fem = art in ("la", "las")
        plural = art in ("los", "las")
        o = ("a" if fem else "o") + ("s" if plural else "")
        t = rng.choice(_DOMOTICA_NATURAL)
        return " ".join(t.format(
            on=rng.choice(on[0]), off=rng.choice(off[0]), on_inf=rng.choice(on[1]),
            on_cl=rng.choice(on[2]), off_cl=rng.choice(off[2]),
            dev=_art_phrase(dev, art), dev_de=_de_phrase(dev, art),
            room=_de_phrase(room, rart), gdev=_art_phrase(gdev, gart),
            groom=_de_phrase(groom, grart), groom_en=f"en {_art_phrase(groom, grart)}",
            groom_art=_art_phrase(groom, grart),
            on_imp_la="enciendelo" if not fem else "enciendela", o=o,
            h=rng.choice(["las 7", "las ocho", "la noche", "mañana", "las 22:30"]),
            pct=rng.choice([10, 20, 50, 70, 80, 100]), n=rng.choice(range(15, 31)),
            m=rng.choice([5, 10, 15, 30]), weather_adj=rng.choice(_WEATHER_ADJ)).split())
    day_key = rng.choice(sorted(_DAYS))
    day = rng.choice(_DAYS[day_key])
    gcity = rng.choice(rng.choice(list(_CITIES.values())))
    t = rng.choice(_TIEMPO_NATURAL)
    return " ".join(t.format(ucity=rng.choice(AUG_CITIES), gcity=gcity, day=day,
                             uday=rng.choice(AUG_DAYS),
                             aug_weather=rng.choice(AUG_WEATHER)).split())


def natural_examples(task: str, n: int, seed: int = SEED, in_grammar: float = 0.6,
                     split: str = "train") -> list[Example]:
    """``n`` natural-looking prompts of ``task`` with the selector label as ``expected``: a share
    ``in_grammar`` are prompts of ``split`` passed through :func:`naturalize`, the rest
    :func:`natural_order` (out of grammar) passed through it too."""
    rng = random.Random(f"llmcombo-natural:{task}:{seed}:{split}")
    t = get_task(task)
    pool = t.split(split)
    out = []
    for _ in range(n):
        if rng.random() < in_grammar:
            text = naturalize(rng, rng.choice(pool).prompt)
        else:
            text = naturalize(rng, natural_order(rng, task))
        out.append(Example(text, t.label))
    return out


def natural_task_examples(task: str, n: int, seed: int = SEED) -> list[Example]:
    """``n`` training examples of ``task`` (prompt -> command) with naturalized prompts."""
    rng = random.Random(f"llmcombo-natural-task:{task}:{seed}")
    t = get_task(task)
    return [Example(naturalize(rng, e.prompt), e.expected)
            for e in (rng.choice(t.train) for _ in range(n))]


def selector_training_examples(n_natural: int = 3000, seed: int = SEED) -> list[Example]:
    """The selector's training set (zoo v2): the generated training prompts of both tasks plus
    ``n_natural`` natural-looking prompts per task (see :func:`natural_examples`), interleaved."""
    per_task = []
    for name in TASK_NAMES:
        t = get_task(name)
        rows = [Example(e.prompt, t.label) for e in t.train]
        rows += natural_examples(name, n_natural, seed)
        random.Random(f"llmcombo-selector:{name}:{seed}").shuffle(rows)
        per_task.append(rows)
    out: list[Example] = []
    for i in range(max(len(p) for p in per_task)):
        out += [p[i] for p in per_task if i < len(p)]
    return out


