"""Reading past the markup teachers wrap their answers in: Markdown emphasis and LaTeX.

Chat teachers (GPT-3.5/4, Llama, Qwen) write ``The answer is **42**.``, ``**Answer: 42**``,
``$\\boxed{\\frac{3}{4}}$`` or ``\\$1{,}250``. Extraction reads the plain text these stand for:

- ``*`` and ``**`` are emphasis unless they are an operator: glued to an operand on both sides
  (``2**10``, ``3*4``, ``x**2``) or spaced on both sides between operands (``2 ** 10``, ``3 * 4``).
  Emphasis marks are removed; operators stay, so ``2**10`` is still a power whose base and
  exponent are not candidates (extract.py).
- ``_x_`` and ``__x__`` around text are emphasis (never inside a word: ``snake_case`` stays).
- ``~~x~~`` is struck out: the writer withdrew it, so it is removed with its content.
- LaTeX: ``\\frac{a}{b}`` (and ``\\dfrac``, ``\\tfrac``) becomes ``(a)/(b)``, or ``a/b`` for plain
  numbers; ``\\text{x}``, ``\\mathrm{x}`` and ``\\textbf{x}`` become ``x``; ``\\boxed{x}`` and
  ``\\fbox{x}`` stay, as the answer markers they are (`unboxed` opens them, once extract.py has
  found them); ``\\$`` and ``\\%`` are ``$`` and ``%``; ``{,}`` is a
  comma; ``\\times``, ``\\cdot`` are ``*``, ``\\div`` is ``/``; thin spaces, ``\\left``, ``\\right`` and
  the math delimiters ``\\( \\) \\[ \\]`` are dropped.
- Unicode's vulgar fractions are fractions: ``½`` is ``1/2``, ``3½`` the mixed number ``3 1/2``;
  the fraction slash ``⁄`` (``1⁄4``) is ``/``.
- Non-breaking and thin spaces are spaces; between digit groups (``1 250 000``) they are the
  thousands separators they stand for.

Every rule is a single left-to-right scan or a regex without nested repetition: time linear in
the text's length, whatever a model wrote.
"""

from __future__ import annotations

import re

_STARS = re.compile(r"\*+")
_OPERAND_END = re.compile(r"[\w)\]]")
_OPERAND_START = re.compile(r"[\w(\[]|[.\-][0-9]")
_UNDERSCORE_EMPHASIS = re.compile(r"(?<![\w\\])(__?)(?=[^\s_])([^\n_]{1,400}?)(?<=[^\s_])\1(?!\w)")
_STRUCK = re.compile(r"~~[^\n~]{0,400}~~")
_FRAC = re.compile(r"\\[dt]?frac\s*\{([^{}]{1,100})\}\s*\{([^{}]{1,100})\}")
_PLAIN_NUMBER = re.compile(r"\s*-?\d+(?:\.\d+)?\s*")
_WRAPPERS = re.compile(r"\\(?:text|textbf|textit|mathrm|mathbf|operatorname)\s*\{([^{}]{0,400})\}")
_BOXES = re.compile(r"\\(?:boxed|fbox)\s*\{([^{}]{0,400})\}")
_LATEX_WORDS = (
    (re.compile(r"\\[$%]"), lambda m: m.group(0)[1]),
    (re.compile(r"\{,\}"), lambda m: ","),
    (re.compile(r"\\(?:times|cdot)(?![A-Za-z])"), lambda m: "*"),
    (re.compile(r"\\div(?![A-Za-z])"), lambda m: "/"),
    (re.compile(r"\\(?:left|right)(?![A-Za-z])|\\[,;!: ]|\\[()\[\]]"), lambda m: " "),
)
_VULGAR = {
    "½": "1/2", "⅓": "1/3", "⅔": "2/3", "¼": "1/4", "¾": "3/4", "⅕": "1/5", "⅖": "2/5", "⅗": "3/5",
    "⅘": "4/5", "⅙": "1/6", "⅚": "5/6", "⅐": "1/7", "⅛": "1/8", "⅜": "3/8", "⅝": "5/8", "⅞": "7/8",
    "⅑": "1/9", "⅒": "1/10",
}  # fmt: skip
_VULGAR_FRACTION = re.compile(r"(\d?)([" + "".join(_VULGAR) + r"])")
_WIDE_SPACES = re.compile(r"[\u00a0\u2007\u2009\u202f]")
_GROUPED_DIGITS = re.compile(r"(?<=\d)[\u00a0\u2007\u2009\u202f](?=\d{3}(?!\d))")


def _is_operator(text: str, start: int, end: int) -> bool:
    before = text[start - 1] if start > 0 else ""
    after = text[end : end + 2]
    if before and _OPERAND_END.match(before) and _OPERAND_START.match(after):
        return True  # glued on both sides: 2**10, 3*4
    if before == " " and after[:1] == " ":
        left = text[:start].rstrip()[-1:]
        right = text[end:].lstrip()[:2]
        return bool(left and _OPERAND_END.match(left) and _OPERAND_START.match(right))
    return False


def without_emphasis(text: str) -> str:
    """`text` without Markdown's emphasis marks (operators kept; see the module docstring)."""
    if "*" in text:
        pieces, last = [], 0
        for match in _STARS.finditer(text):
            if len(match.group(0)) <= 2 and _is_operator(text, match.start(), match.end()):
                continue
            pieces.append(text[last : match.start()])
            last = match.end()
        pieces.append(text[last:])
        text = "".join(pieces)
    if "~~" in text:
        text = _STRUCK.sub("", text)
    if "_" in text:
        text = _UNDERSCORE_EMPHASIS.sub(r"\2", text)
    return text


def _fraction(match: re.Match[str]) -> str:
    numerator, denominator = match.group(1), match.group(2)
    if _PLAIN_NUMBER.fullmatch(numerator) and _PLAIN_NUMBER.fullmatch(denominator):
        return f"{numerator.strip()}/{denominator.strip()}"
    return f"({numerator})/({denominator})"


def without_latex(text: str) -> str:
    """`text` with the LaTeX commands teachers use around answers replaced by what they mean."""
    if "\\" in text or "{,}" in text:
        for _ in range(3):  # \boxed{\frac{3}{4}}: inner commands first, a few levels deep at most
            replaced = _WRAPPERS.sub(r"\1", _FRAC.sub(_fraction, text))
            if replaced == text:
                break
            text = replaced
        for pattern, replacement in _LATEX_WORDS:
            text = pattern.sub(replacement, text)
    return text


def unboxed(text: str) -> str:
    """`text` with ``\\boxed{x}`` and ``\\fbox{x}`` replaced by ``x``."""
    return _BOXES.sub(r"\1", text) if "\\" in text else text


def plain(text: str) -> str:
    """The text a reader sees: emphasis, LaTeX and odd spaces resolved (module docstring)."""
    if not text.isascii():
        text = _VULGAR_FRACTION.sub(lambda m: (m.group(1) + " " if m.group(1) else "") + _VULGAR[m.group(2)], text)
        text = text.replace("\u2044", "/")
    text = _GROUPED_DIGITS.sub(",", text)
    text = _WIDE_SPACES.sub(" ", text)
    return without_emphasis(without_latex(text))
