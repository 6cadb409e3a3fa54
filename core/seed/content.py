"""Believable names, replies and errors for generated conversations."""
from __future__ import annotations

import math
import random

from core.seed import shape

FIRST = ["Marcus", "Jamal", "Luis", "Andre", "Tyrone", "Kevin", "Diego", "Malik", "Chris", "Darnell", "Omar",
         "Jordan", "Isaiah", "Victor", "Tony", "Ray", "Sam", "Devon", "Eli", "Nate", "Aisha", "Maria", "Keisha", "Lena"]
LAST = ["Johnson", "Williams", "Brown", "Garcia", "Martinez", "Davis", "Lopez", "Wilson", "Thomas", "Moore",
        "Jackson", "White", "Harris", "Clark", "Lewis", "Robinson", "Walker", "Young", "King", "Wright"]
SHOP_WORDS = ["Fade", "Crown", "Classic", "Sharp", "Kings", "Uptown", "Golden", "Blade", "Legacy", "Fresh"]
SHOP_KINDS = ["Factory", "Cuts", "Barbershop", "Lounge", "Studio", "& Co.", "Parlor", "Grooming"]
SERVICES = ["skin fade", "haircut", "beard trim", "lineup", "hot towel shave", "kids cut", "taper"]
CLIENT_REPLIES = ["Sounds good, thanks!", "Can I do Saturday morning instead?", "Yes please book me in",
                  "C", "R - can we do next week?", "Thanks man, appreciate it", "What times do you have Friday?",
                  "Will do 👍", "Perfect, see you then", "How much is the beard trim?"]
ERRORS = [
    "openai.APITimeoutError: Request timed out after 30.0s (3 attempts)",
    "openai.RateLimitError: Error code: 429 - Rate limit reached for requests (3 attempts)",
    "openai.InternalServerError: Error code: 502 - upstream connect error (3 attempts)",
    "core.templates.MissingVariable: custom initial_message needs custom_message, which the context does not provide.",
    "openai.APIConnectionError: Connection error. (3 attempts)",
]


# What a model outage looks like: the provider refuses or times out for a while (the demo's failure burst).
OUTAGE_ERRORS = [
    "openai.RateLimitError: Error code: 429 - Rate limit reached for gpt-4o-mini in organization org-demo on "
    "requests per min (RPM): Limit 500, Used 500 (3 attempts)",
    "openai.InternalServerError: Error code: 503 - The server is overloaded or not ready yet. (3 attempts)",
    "openai.APITimeoutError: Request timed out after 30.0s (3 attempts)",
]


def response_ms(rng: random.Random) -> int:
    """A lognormal reply time: median about 0.8 s, with a realistic slow tail."""
    return max(shape.REPLY_MIN_MS, int(rng.lognormvariate(math.log(shape.REPLY_MEDIAN_MS), shape.REPLY_SIGMA)))


def shop_name(rng: random.Random, n: int) -> str:
    return f"{SHOP_WORDS[n % len(SHOP_WORDS)]} {SHOP_KINDS[(n // len(SHOP_WORDS) + n) % len(SHOP_KINDS)]}"


def person(rng: random.Random) -> tuple[str, str]:
    return rng.choice(FIRST), rng.choice(LAST)
