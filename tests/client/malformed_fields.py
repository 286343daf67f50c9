"""A corpus of malformed RateLimit-Policy and RateLimit values."""

from __future__ import annotations

# Values a broken or hostile server may send. Each must be ignored (item by item where the field is a
# Structured Field list, the whole field where it is not one), never raise.
MALFORMED_POLICY = [
    '"a";q=nan;w=1', '"a";q=inf;w=1', '"a";q=-inf;w=1', '"a";q=5;w=nan', '"a";q=5;w=inf', '"a";q=5;w=0',
    '"a";q=5;w=-1', '"a";q=5;w=0.0', '"a";q=5;w=-0.001', '"a";q=1e3;w=1', '"a";q=5;w=1e-300',
    '"a";q=5;w=' + "9" * 309, '"a";q=' + "9" * 16 + ";w=1", '"a";q="5";w=1', '"a";q=?1;w=1', '"a";q=5;w=:AQ==:',
    '"a";q=5;w=(1 2)', '("a" "b");q=5;w=1', '"a";q=5.5.5;w=1', '"a";q=5;w=1;', "\x00", "\u00b2", "²;q=5",
    '"a";q=²;w=1', '"a";q=5;w=1,', ",", '"a";;q=5', '"unterminated;q=5;w=1', "q=5;w=1", ";;;", "",
]  # fmt: skip
MALFORMED_REMAINING = [
    '"a";r=nan;t=1', '"a";r=inf;t=1', '"a";r=1;t=nan', '"a";r=1;t=inf', '"a";r=1;t=-1', '"a";r=-1;t=1',
    '"a";r=1;t=' + "9" * 309, '"a";r=' + "9" * 16, '"a";r=1.5e2', '"a";r="1"', '"a";r=?0', '"a";r=1;t=1;',
    "\u00b3", '"a";r=\u00b3', '"a";r=1;t=1,,', '("a");r=1',
]  # fmt: skip
