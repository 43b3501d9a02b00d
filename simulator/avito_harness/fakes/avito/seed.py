"""Demo data for one account: battery-shop items, customers with Russian names, chats with history."""

from __future__ import annotations

import random

from avito_harness.fakes.avito.state import AvitoState
from avito_harness.fakes.names import first_name

__all__ = ["seed_demo_data", "seed_volume", "DEMO_ITEMS"]

DEMO_ITEMS = (
    ("Аккумулятор 12V 60Ah Varta Blue Dynamic", 8900),
    ("Аккумулятор 12V 75Ah Bosch S4", 11500),
    ("Зарядное устройство для АКБ Орион PW325", 3200),
)

_OPENERS = (
    "Здравствуйте! Аккумулятор ещё в наличии?",
    "Добрый день, подойдёт на Kia Rio 2017?",
    "Можно забрать сегодня вечером?",
    "Какая гарантия на аккумулятор?",
)


def seed_demo_data(state: AvitoState, *, seed: int) -> None:
    """Fill ``state`` with a small, deterministic demo world (no webhooks: nobody is subscribed yet)."""
    rng = random.Random(seed)
    items = [state.add_item(title, price) for title, price in DEMO_ITEMS]
    customers = [state.add_customer(first_name(rng)) for _ in range(4)]
    for n, customer in enumerate(customers[:3]):
        chat = state.create_chat(customer.id, item_id=items[n % len(items)].id)
        state.inject(chat.id, "text", text=_OPENERS[n])
        if n == 0:
            state.send_text(chat.id, "Здравствуйте! Да, в наличии. Приезжайте, ждём.")
            state.inject(chat.id, "voice", text="Спасибо, буду через час, оставьте пожалуйста")
        if n == 1:
            state.inject(chat.id, "image")
            state.mark_read(chat.id)
    direct = state.create_chat(customers[3].id, chat_type="u2u")
    state.inject(direct.id, "text", text=_OPENERS[3])
    state.inject(direct.id, "system", text="[Системное сообщение] Покупатель посмотрел ваш номер телефона")


def seed_volume(state: AvitoState, *, chats: int, messages_per_chat: int) -> None:
    """``chats`` more item chats with ``messages_per_chat`` customer messages each, through the account's own
    behaviour (what a bench of the fake's growth loads it with; subscribers get the messages as webhooks)."""
    items = [state.add_item(title, price) for title, price in DEMO_ITEMS]
    for n in range(chats):
        customer = state.add_customer(f"Покупатель {n}")
        chat = state.create_chat(customer.id, item_id=items[n % len(items)].id)
        for k in range(messages_per_chat):
            state.inject(chat.id, "text", text=_OPENERS[k % len(_OPENERS)])
