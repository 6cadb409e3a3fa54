"""What generated conversations look like: the shares and ranges both generators follow (the row-by-row one in
core.seed.generate and the one inside PostgreSQL in core.seed.sql_load), kept once so the two cannot drift."""
from __future__ import annotations

from datetime import timedelta

PENDING_AGE = timedelta(minutes=3)  # younger than this: not yet picked up
FAILED_SHARE = 0.002
OPTED_OUT_SHARE = 0.028
WAITING_AGE = timedelta(days=1)  # a reply younger than this may still await the client
WAITING_SHARE = 0.06
REPLY_MEDIAN_MS, REPLY_SIGMA, REPLY_MIN_MS = 800, 0.45, 120  # lognormal reply time with a realistic slow tail
PROMPT_TOKENS = (150, 320)  # [low, high)
COMPLETION_TOKENS = (30, 90)
START_DELAY_S = (0.2, 5.0)  # claim after creation
FAILED_AFTER_S = 30  # a failure is given up after the retries' time
STOP_AFTER_MIN = (1, 90)  # [low, high) minutes until an opt-out's "STOP"
REPLY_AFTER_MIN = (1, 240)
CLIENT_REPLY_SHARE = 0.5  # completed conversations the client answered
