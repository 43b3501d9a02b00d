"""Russian first names for the fake Avito's customers, drawn by a seeded generator.

The fakes need a handful of plausible names, not a fake-data library: Faker is an extra (``record``: the
anonymizer, which needs its breadth), because installed, its pytest plugin costs every pytest run of a user's
venv about half a second (bench/plugin_cost.py).
"""

from __future__ import annotations

import random

__all__ = ["FIRST_NAMES", "first_name"]

FIRST_NAMES = (
    "Алла", "Вениамин", "Аким", "Оксана", "Анна", "Борис", "Валентина", "Григорий", "Дарья", "Евгений", "Жанна",
    "Зиновий", "Ирина", "Кирилл", "Людмила", "Максим", "Надежда", "Олег", "Полина", "Роман", "Светлана", "Тимур",
    "Ульяна", "Фёдор", "Юлия", "Ярослав", "Екатерина", "Виктор", "Марина", "Николай", "Ольга", "Павел", "Галина",
    "Сергей", "Татьяна", "Артём", "Вера", "Денис", "Елена", "Илья", "Ксения", "Леонид", "Мария", "Никита",
)


def first_name(rng: random.Random) -> str:
    return rng.choice(FIRST_NAMES)
