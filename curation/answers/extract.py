"""Finding the final answer in a chain-of-thought rationale.

Where to look (the first rule that applies decides; docs/verification.md has the full account):

1. A separate stage-2 output (zero-shot-CoT's second completion, ``answer_output``): the text
   after the last stage-2 trigger inside it, if it repeats one, else all of it. It always wins:
   nothing the rationale says beats the answer the teacher gave when asked for it.
2. Fine-tune-CoT's student format, ``{rationale} --> {answer} END``: the text after the last
   ``-->``. Only for student-format text: a student's output (``student=True``), or a text whose
   last ``-->`` is followed by a short one-line answer (at most STUDENT_ANSWER_CHARS, no trigger or
   answer marker) and nothing else. A teacher rationale's arrow (``5 --> 6``) is not this format.
3. A stage-2 trigger inside the text (a single completion holding rationale, trigger and answer):
   the text after the last one (triggers.py).
4. Otherwise the last answer marker: ``the (final) answer is``, ``Answer:`` (followed by a short
   line: LABELLED_ANSWER_CHARS; a longer one opens reasoning), a Markdown heading
   ``### Final Answer`` (the lines after it), ``\\boxed{...}`` (its content only), GSM8K's
   ``#### n`` line.
5. No marker: the last candidate of the whole text (for multiple choice, in the last sentence
   naming an option, its last letter, else its first option text); for yes/no the last yes/no
   statement ("Yes.", "No, ...": the word opening a sentence, followed by a stop), else the first
   yes/no word of the last sentence holding one; for free text only a quotation in the last
   sentence that has one.

After a trigger or marker, the first candidate counts. Candidates are read from the plain text
(markup.py: Markdown emphasis and LaTeX resolved), and depend on the answer type:

- number: ``1,080``, ``-3.5``, ``−12`` (any dash glued to a digit and not after an operand is a
  sign; ``x - 10`` is the number 10), ``$18.00``, ``3/4`` (also before a full stop), ``1 1/2``
  (a whole number and a proper fraction), ``50%``, ``2.5e3`` (and Unicode's
  ``½``, ``3½``: markup.py). Not a candidate: a hex, binary or octal literal, the base or
  exponent of a power (``2**10``, ``2^10``), a date (``09/08/2021``), a fraction over zero, a
  number out of range (normalize.py). When the first number after a marker is the first operand
  of an equation in the same sentence (``The answer is 2 × 3 = 6.``; "of" after a percentage or
  fraction is a product when ``=`` follows its operand: ``25% of 80 = 20``), the number after
  its last ``=`` counts. Right
  after a trigger or marker (only there), a whole number in words counts too: ``The answer is
  three.``, ``twenty-five``, ``one hundred and five`` (number_words.py; "one of them" and
  "two-thirds" are no count), and so do a sign in words (``negative 5``) and, where the answer
  ends there or after one more word, a scale word after the number (``1.5 million``, also after
  number words) and a proper fraction joined by "and" (``3 and 1/2``). Shares in words there too:
  "and a half", "and two fifths" add to the whole number before them (``two and a half``, ``8 and
  a half years old``); a whole number agreeing with a smaller share's name is a fraction where
  the answer ends there or goes on with "of" (``one half``, ``two thirds of the pizza``, ``3
  fifths``), and otherwise stands (``5 tenth graders``, ``6 halves``, ``three quarters``).
- multiple choice: an option letter among the options shown, in order of appearance: ``(B)``,
  ``B)``, ``(b)``, ``b)``, ``'B'`` (in quotes or code ticks, opening the answer), a lone ``B``, or a lone ``b``
  followed by punctuation or the end (a lone lowercase letter before a word is a word). A lone
  ``A`` or ``I`` before a lowercase word is the article or pronoun unless that word is a verb or
  conjunction (``A is``, ``A because``). A letter in a function call or formula (``P(A AND B)``,
  ``5C3``) is none. Failing a letter, an option's text (word boundaries; the longest option
  first where two start together, so "24" beats "2" and "money bank" beats "money"; a text two
  options share names neither); failing that, a number equal to exactly one option's value (its
  text as a number; where none is, the one number it holds beside no other digit or operator:
  ``Rs. 500``). Options are read as plain text too (``3½``).
- yes/no: yes, no, true, false (as words), hint phrases such as "(Yes or No)" excluded.
- text: the first sentence of the first line, without a colon or dash opening it (``: ny``,
  ``-ny``; a dash before a digit is a sign); if
  it quotes something (also ``«ny»``), the longest quotation.

Program rationales need none of this: their answer is the value the program returns (see
workers/sandbox/child.py).
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from decimal import Decimal

from curation.answers.markup import plain, unboxed
from curation.answers.normalize import bounded, canonical_decimal, parse_number
from curation.answers.number_words import (
    SHARE_DENOMINATORS,
    SHARE_NUMERATORS,
    SHARE_WORDS,
    leading_number_words,
    share_denominator,
)
from curation.answers.triggers import HINT_WORDS, last_trigger
from curation.models.task import AnswerType

Choice = dict[str, str]

_ARROW = re.compile(r"-->")
LABELLED_ANSWER_CHARS = 100
"""An "Answer:" label followed by a longer line heads reasoning, not an answer."""
STUDENT_ANSWER_CHARS = 80
"""The longest text after ``-->`` that is read as a Fine-tune-CoT answer without knowing the
writer is a student: their answers are numbers, letters, yes or no, a few letters of text."""
_THE_ANSWER_IS = re.compile(
    r"\b(?:final\s+|correct\s+|right\s+|best\s+)?answer\s*(?:is|would\s+be|will\s+be|=)(?![\w'’])", re.IGNORECASE
)
_ANSWER_LABEL = re.compile(r"\banswer\s*[:：]", re.IGNORECASE)
_HASHES = re.compile(r"(?:^|\n)[ \t]*####[ \t]*")
_ANSWER_HEADING = re.compile(r"(?:^|\n)[ \t]*#{1,6}[ \t]*(?:final[ \t]+)?answer\b[^\n]*\n", re.IGNORECASE)
_BOXED = re.compile(r"\\(?:boxed|fbox)\s*\{")
_LEADING_MARKER = re.compile(
    r"^[\s:,.\-]*(?:(?:so|thus|hence)\s*,?\s+)?(?:the\s+)?(?:final\s+|correct\s+)?answer\s*(?:is|:|=)\s*",
    re.IGNORECASE,
)

_SIGNS = "-−–—‐‑﹣－"  # hyphen-minus, minus, en and em dash, hyphens, small and full-width hyphen-minus
_NUMBER = re.compile(
    # Not inside a word, a decimal or a fraction, and not the exponent of a power ("10**10", "2^10").
    r"(?<![\w./])(?<!\*\*)(?<!\*\*\s)(?<!\^)(?<!\^\s)(?<!\^-)(?<!\*\*-)"
    r"(?P<sign>[" + _SIGNS + r"](?=\$|\.?\d))?"  # a sign is glued to its number: "x - 10" has none
    r"(?P<currency>\$\s?)?"
    r"(?!0(?:[xX][0-9a-fA-F]|[bB][01]|[oO][0-7]))"  # 0x1p3 is a hex literal, not the number 0
    # Atomic and possessive: when a lookahead refuses a number, no shorter prefix of it ("2" of
    # "2.5**2") may be taken instead, and a run of thousands of digits costs linear time.
    r"(?P<value>(?>(?:\d++[ ]\d++/\d++(?![.,]\d|\s*/\s*\d)"  # a mixed number: 1 1/2
    r"|\d++(?:\.\d++)?\s*+/\s*+\d++(?:\.\d++)?(?![.,]\d|\s*/\s*\d)"  # 3/4, not 09/08/2021
    r"|\d{1,3}(?:,\d{3})++(?:\.\d++)?"
    r"|\d++(?:\.\d++)?(?!\s*/\s*\d)"
    r"|\.\d++)"
    r"(?:[eE][-+]?\d++)?%?))"  # 1e-5 is one number, so "1e999999999" cannot pass for 1
    r"(?!\s*(?:\*\*|\^))"  # not the base of a power either
)
_MIXED = re.compile(r"(\d+) (\d+)/(\d+)")
_BINARY_BEFORE_SIGN = frozenset(")]%")
_EQUATION_OPERATOR = re.compile(r"[)\]]*\s*(?:\*\*|[-+*/×÷·x−–]|\bplus\b|\bminus\b|\btimes\b)\s*[\d($.]")
# "25% of 80 = 20", "3/4 of 12 = 9": "of" after a percentage or a fraction is a product.
_OF_OPERAND = re.compile(r"\s+of\s+\$?\d[\d,]*(?:\.\d+)?\s*[=≈]", re.IGNORECASE)
_SENTENCE_END = re.compile(r"[.!?](?=\s|$)|[;\n]")
# Right after a marker: "negative 5" / "minus $5" is -5, "1.5 million" is 1500000 ("5 hundredths" is a share,
# "2 thousand-dollar bills" are no scale).
_SIGN_WORD = re.compile(r"[\s\"'“‘(\[:=]*(?:negative|minus)\s+", re.IGNORECASE)
# What may follow a scaled or an "N and a/b" answer: the end of its clause, or one word (a unit)
# and then the end ("1.5 million dollars.", "3 and 1/2 hours."; not "2 thousand dollar bills",
# "3 and 1/2 of them are red").
_ANSWER_END = r"(?![\d/])(?=[ \t]*(?:\.(?!\d)|[!?,;:)\]]|\n|$)|[ \t]+[A-Za-z]+[ \t]*(?:\.(?!\d)|[!?,;:)\]]|\n|$))"
_AND_FRACTION = re.compile(r"[ \t]+and[ \t]+(\d+)/(\d+)" + _ANSWER_END)
# "2 and a half", "two and three quarters", "3 and one-half", "2-and-a-half": whatever follows
# ("8 and a half years old"), the whole number alone is not what the text says.
_AND_SHARE = re.compile(
    rf"[ \t-]+and[ \t-]+({'|'.join(SHARE_NUMERATORS)}|\d+)[ \t-]+({SHARE_WORDS})\b",
    re.IGNORECASE,
)
# A proper fraction in words: "one half", "two thirds", "3 fifths", the number agreeing with the
# word, and the answer ending there or going on with "of" ("two thirds of the pizza"). Not
# "5 tenth graders", "1 half gallon" (the word is part of a name), "6 halves" (a count of pieces),
# nor "three quarters" (coins as often as a share): those stay the count they say.
_FRACTION_NAMES = "|".join("half" if n == "half" else f"{n}s?" for n in SHARE_DENOMINATORS if n != "quarter")
_SHARE = re.compile(
    rf"[ \t]+({_FRACTION_NAMES})\b(?=[ \t]*(?:\.(?!\d)|[!?,;:)\]]|\n|$)|[ \t]+of\b)",
    re.IGNORECASE,
)
_SCALE_WORD = re.compile(
    r"((?:[ \t]+(?:hundred|thousand|million|billion|trillion)\b(?![-’']))+)" + _ANSWER_END, re.IGNORECASE
)  # "2 hundred thousand" is 200000
_SCALES = {"hundred": 100, "thousand": 10**3, "million": 10**6, "billion": 10**9, "trillion": 10**12}
_EQUALS = re.compile(r"[=≈]")

# What may come before a letter in quotes for it to be the answer's option: nothing but spaces and
# punctuation, or "option"/"choice"/"letter" ("The answer is 'E'", "is option `C`"); elsewhere a
# quoted letter is a name or a variable ("the letter 'e' appears thrice", "Let 'a' be ...").
_QUOTED_LETTER_LEAD = re.compile(r"[\s:*(\[\-–—]*(?:(?:the\s+)?(?:option|choice|letter)\s*:?\s*)?", re.IGNORECASE)
_CALL = re.compile(r"(?<=[A-Za-z0-9])\([^()\n]{0,80}\)")
_CALL_ALLOWED_AFTER = re.compile(r"(?:option|choice|answer)$", re.IGNORECASE)
_LETTER = re.compile(
    r"(?<![A-Za-z0-9])\(\s*(?P<paren>[A-Za-z])\s*\)"
    r"|(?<![A-Za-z0-9])[\"'“‘«`](?P<quoted>[A-Za-z])[\"'”’»`](?![A-Za-z0-9])"
    r"|(?<![A-Za-z0-9'’.\-])(?P<closing>[A-Za-z])\)"
    r"|(?<![A-Za-z0-9'’\-])(?<![A-Za-z]\.)(?P<bare>[A-Za-z])(?![A-Za-z0-9'’]|-(?!-)|\.[A-Za-z0-9])"
)
_NEXT_WORD = re.compile(r"\s+([a-z][a-z'’]*)")
_LOWERCASE_END = re.compile(r"\s*(?:$|[.,;:!?)\]\n])")
# Words that follow an option letter but never the article "a" (nor the pronoun "I").
_NOT_AFTER_ARTICLE = frozenset(
    [
        "is",
        "was",
        "would",
        "will",
        "because",
        "since",
        "as",
        "and",
        "or",
        "but",
        "which",
        "that",
        "with",
        "if",
        "so",
        "then",
        "seems",
        "appears",
        "looks",
        "fits",
        "matches",
        "must",
        "should",
        "could",
        "can",
        "cannot",
        "does",
        "doesn't",
        "isn't",
        "wasn't",
        "has",
        "here",
        "too",
        "also",
    ]
)

_YES_NO = re.compile(r"\b(yes|no|true|false)\b", re.IGNORECASE)
_YES_NO_WORD = {"yes": "yes", "true": "yes", "no": "no", "false": "no"}
_SENTENCES = re.compile(r"(?<=[.!?])\s+|\n+")
# "Yes." / "No, it is not." / "So, yes: ..." opening a sentence; "No one" and "No evidence" are no answer.
_YES_NO_STATEMENT = re.compile(
    r"(?:^|(?<=[.!?:\n])\s*)(?:(?:so|thus|hence|therefore|then|well|and)\s*,?\s+)?(yes|no|true|false)\s*(?=[.,;:!?—–-]|$)",
    re.IGNORECASE,
)

_QUOTED = re.compile(
    r"[\"“”„]([^\"“”„\n]{1,200})[\"“”]|(?<!\w)['‘]([^'‘’\n]{1,200})['’](?!\w)|«\s*([^«»\n]{1,200}?)\s*»"
)
_FIRST_SENTENCE_END = re.compile(r"[.!?](?=\s|$)|;|\s\(")
_DOTS_AND_SPACE = re.compile(r"[.\s]*")
_QUOTES = "\"'“”‘’`„«»"
# What opens a free-text answer without being part of it: "The answer is: ny", "is - ny", "is -ny",
# "is => ny"; a dash before a digit is a sign ("-3 degrees"), a colon before ")" is ":)".
_LEADING_PUNCTUATION = re.compile(r"(?:\s|=>|[:=](?=\s)|[-–—](?=\s|[^\W\d_]))+")


@dataclass(frozen=True)
class Extraction:
    """`answer` is canonical for the answer type (as problem.gold_answer is), or None. For
    multiple choice it is the letter as the teacher's prompt showed it (verdict.py maps it to the
    stored option)."""

    answer: str | None
    rule: str
    span: str | None = None


# --- Numbers ----------------------------------------------------------------------------------------


def _number_value(match: re.Match[str], text: str) -> str | None:
    """The canonical number of a match, or None if it is no number we accept (1/0, 1e999999999)."""
    sign = match.group("sign")
    negative = bool(sign) and (match.start() == 0 or text[match.start() - 1] not in _BINARY_BEFORE_SIGN)
    written = match.group("value")
    try:
        mixed = _MIXED.fullmatch(written)
        if mixed is not None:
            whole, numerator, denominator = (Decimal(part) for part in mixed.groups())
            # 1 1/2 is one and a half; "2 10/5" is no mixed number: its first number stands alone.
            value = bounded(whole + numerator / denominator) if 0 < numerator < denominator else bounded(whole)
        else:
            value = parse_number(written.replace(" ", ""))
    except (ValueError, ArithmeticError):  # AnswerFormatError, decimal's errors, int digit limits
        return None
    return canonical_decimal(-value if negative else value)


def _number_matches(text: str) -> list[tuple[str, re.Match[str]]]:
    """Numbers in `text`, in order. Never raises: the text is a model's output."""
    found = []
    for match in _NUMBER.finditer(text):
        value = _number_value(match, text)
        if value is not None:
            found.append((value, match))
    return found


def _equation_result(text: str, first: re.Match[str]) -> str | None:
    """If `first` opens an equation in its sentence ("2 × 3 = 6"), the number after the last "="."""
    written = first.group("value")
    is_share = written.endswith("%") or "/" in written
    if not _EQUATION_OPERATOR.match(text, first.end()) and not (is_share and _OF_OPERAND.match(text, first.end())):
        return None
    end = _SENTENCE_END.search(text, first.end(), first.end() + 400)
    sentence = text[first.end() : end.start() if end else first.end() + 400]
    equals = list(_EQUALS.finditer(sentence))
    if not equals:
        return None
    after = _number_matches(sentence[equals[-1].end() :])
    return after[0][0] if after else None


def _with_shares(segment: str, number: Decimal, end: int) -> tuple[Decimal, int]:
    """`number` (ending at `end`) with what follows it in words, and where those words end:
    "and 1/2", "and a half" add to its size; in "two thirds" it is the numerator."""
    if number != number.to_integral_value():
        return number, end
    sign = -1 if number < 0 else 1
    fraction = _AND_FRACTION.match(segment, end)
    if fraction is not None and 0 < int(fraction.group(1)) < int(fraction.group(2)):
        return number + sign * Decimal(int(fraction.group(1))) / Decimal(int(fraction.group(2))), fraction.end()
    share = _AND_SHARE.match(segment, end)
    if share is not None:
        written = share.group(1).lower()
        parts, denominator = SHARE_NUMERATORS.get(written) or int(written), share_denominator(share.group(2))
        if 0 < parts < denominator:
            return number + sign * Decimal(parts) / Decimal(denominator), share.end()
        return number, end
    shares = _SHARE.match(segment, end)
    if shares is not None:
        singular = not shares.group(1).lower().endswith("s")
        if (abs(number) == 1) == singular and 0 < abs(number) < share_denominator(shares.group(1)):
            return number / Decimal(share_denominator(shares.group(1))), shares.end()
    return number, end


def _scaled(segment: str, number: Decimal, end: int) -> Decimal:
    """`number` times the scale words right after it ("1.5 million", "2 and a half thousand")."""
    scale = _SCALE_WORD.match(segment, end)
    for word in scale.group(1).split() if scale is not None else ():
        number *= _SCALES[word.lower()]
    return number


def _first_number(segment: str) -> str | None:
    """The first number after a marker: digits, or a count in words opening the segment ("three.")."""
    try:
        in_words = leading_number_words(segment)
        if in_words is not None:
            value_in_words, end = in_words
            return canonical_decimal(_scaled(segment, *_with_shares(segment, Decimal(value_in_words), end)))
        found = _number_matches(segment)
        if not found:
            return None
        value, match = found[0]
        result = _equation_result(segment, match)
        if result is not None:
            return result
        number = Decimal(value)
        if not match.group("value").endswith("%"):
            number = _scaled(segment, *_with_shares(segment, number, match.end()))
        sign = _SIGN_WORD.match(segment)
        if sign is not None and sign.end() == match.start() and number > 0:
            number = -number
        return canonical_decimal(number)
    except (ValueError, ArithmeticError):  # out of range once scaled: no answer we accept
        return None


# --- Options ----------------------------------------------------------------------------------------


def _without_calls(text: str) -> str:
    """Function calls and products blanked out: the letters in "P(A AND B)" are no options."""

    def blank(match: re.Match[str]) -> str:
        if _CALL_ALLOWED_AFTER.search(text, 0, match.start()):
            return match.group(0)  # "option(B)" names an option
        return " " * len(match.group(0))

    return _CALL.sub(blank, text) if "(" in text else text


def _letter_matches(text: str, labels: list[str]) -> list[tuple[re.Match[str], str]]:
    """Option letters in order of appearance (module docstring), in text already without calls."""
    found = []
    for match in _LETTER.finditer(text):
        if match.group("quoted") and _QUOTED_LETTER_LEAD.fullmatch(text, 0, match.start()) is None:
            continue
        letter = match.group("paren") or match.group("quoted") or match.group("closing")
        if letter is None:
            letter = match.group("bare")
            if letter.islower():
                if not _LOWERCASE_END.match(text, match.end()):
                    continue  # "a good one": a word, not an option
            elif letter in "AI":
                word = _NEXT_WORD.match(text, match.end())
                if word and word.group(1) not in _NOT_AFTER_ARTICLE:
                    continue  # "A tricky one": the article
        if letter.upper() in labels:
            found.append((match, letter.upper()))
    return found


def _letters(text: str, labels: list[str]) -> list[str]:
    return [letter for _, letter in _letter_matches(_without_calls(text), labels)]


@functools.lru_cache(maxsize=4096)
def _option_pattern(text: str) -> re.Pattern[str] | None:
    core = text.strip().rstrip(".,;: ").strip()
    if not core:
        return None
    body = r"\s+".join(re.escape(part) for part in core.split())
    before = r"(?<![\w" + re.escape(_SIGNS) + r"])(?<!\d[.,])" if core[0].isalnum() else ""
    after = r"(?!\w)(?![.,]\d)(?!\s*/\s*\d)" if core[-1].isalnum() else ""
    return re.compile(before + body + after, re.IGNORECASE)


def _option_text_positions(text: str, choices: list[Choice]) -> list[tuple[int, str]]:
    """(position, label) of options named by their text, in order of appearance; where two start
    at one place (or overlap) the longer wins ("money bank" over "money", "24" over "2")."""
    spans: dict[tuple[int, int], set[str]] = {}
    for choice in choices:
        pattern = _option_pattern(choice["text"])
        if pattern is not None:
            for m in pattern.finditer(text):
                spans.setdefault((m.start(), m.end()), set()).add(choice["label"])
    found, covered = [], -1
    for (start, end), labels in sorted(spans.items(), key=lambda item: (item[0][0], -item[0][1])):
        if start < covered:
            continue  # inside a longer option found at or before this point
        covered = end
        if len(labels) == 1:  # two options with one text (AQuA has a few) name neither
            found.append((start, next(iter(labels))))
    return found


def _option_texts(text: str, choices: list[Choice]) -> list[str]:
    return [label for _, label in _option_text_positions(text, choices)]


def _last_option_named(text: str, choices: list[Choice]) -> str | None:
    """With no marker: the last sentence that names an option decides, by the last letter in it,
    else by the first option text in it ("... is (C) trashcan, because ... not on the floor" is C;
    "So Alice has the pink ball, not the red ball" is the pink ball's)."""
    labels = [c["label"] for c in choices] or [chr(ord("A") + i) for i in range(5)]
    for sentence in reversed(_SENTENCES.split(text)):
        letters = _letters(sentence, labels)
        if letters:
            return letters[-1]
        texts = _option_texts(sentence, choices)
        if texts:
            return texts[0]
    return None


_NOT_A_UNIT = re.compile(r"[\d×*^/+=√π·]|\bx\b|\bsqrt\b|\bpi\b", re.IGNORECASE)


def _option_value(text: str) -> tuple[Decimal | None, bool]:
    """The number an option stands for, and whether its text is that number ("26 children",
    "$ 1200") rather than merely holding it as its one number ("Rs. 400"; "5(√3 + 1)" holds three
    and stands for none)."""
    try:
        return parse_number(text), True
    except (ValueError, ArithmeticError):
        found = _number_matches(text)
        if len(found) != 1:
            return None, False
        match = found[0][1]
        rest = text[: match.start()] + text[match.end() :]
        # "Rs. 400" stands for 400; "5 × 10^6", "2√3" and "1/2 + 3" stand for no single number.
        return (None if _NOT_A_UNIT.search(rest) else Decimal(found[0][0])), False


def _option_numbers(text: str, choices: list[Choice]) -> list[str]:
    """The first number of `text`, as the option whose value it is (only if exactly one is); an
    option that is this number beats one that merely holds it."""
    number = _first_number(text)
    if number is None:
        return []
    wanted = Decimal(number)
    values = [(choice["label"], *_option_value(choice["text"])) for choice in choices]
    exact = [label for label, value, is_exact in values if is_exact and value == wanted]
    matching = exact or [label for label, value, is_exact in values if not is_exact and value == wanted]
    return matching if len(matching) == 1 else []


# --- Yes/no and text ------------------------------------------------------------------------------


def _yes_no(text: str) -> list[str]:
    return [_YES_NO_WORD[m.group(1).lower()] for m in _YES_NO.finditer(text)]


def _last_sentence_yes_no(text: str) -> tuple[str | None, str]:
    """With no marker: the last yes/no statement (a sentence opening with the word and a stop:
    "Yes.", "No, ...", "So, yes, ..."), else the first yes/no word of the last sentence holding one."""
    statements = list(_YES_NO_STATEMENT.finditer(text))
    if statements:
        return _YES_NO_WORD[statements[-1].group(1).lower()], "yes-no-statement"
    for sentence in reversed(_SENTENCES.split(text)):
        found = _yes_no(sentence)
        if found:
            return found[0], "last-sentence"
    return None, "last-sentence"


def _last_quotation(text: str) -> str | None:
    """The longest quotation of the last sentence (or line) that quotes something."""
    for sentence in reversed(_SENTENCES.split(text)):
        quoted = ["".join(groups) for groups in _QUOTED.findall(sentence)]
        if quoted:
            return _free_text(f'"{max(quoted, key=len)}"')
    return None


def _rstrip_dots_and_space(text: str) -> str:
    # Matched on the reversed text: re.sub(r"[.\s]+$") is quadratic on a long run of dots not at the end.
    tail = _DOTS_AND_SPACE.match(text[::-1])
    return text[: len(text) - tail.end()] if tail else text


def _free_text(segment: str) -> str | None:
    stripped = segment.strip()
    lead = _LEADING_PUNCTUATION.match(stripped)
    stripped = stripped[lead.end() :] if lead else stripped
    line = stripped.splitlines()[0] if stripped else ""
    quoted = ["".join(groups) for groups in _QUOTED.findall(line)]
    if quoted:
        cleaned = max(quoted, key=len).strip()
    else:
        end = _FIRST_SENTENCE_END.search(line)
        cleaned = line[: end.start()] if end else line
    cleaned = _rstrip_dots_and_space(cleaned.strip().strip(_QUOTES).strip()).strip(_QUOTES).strip()
    return cleaned or None


# --- Segments ---------------------------------------------------------------------------------------


def _without_end(segment: str) -> str:
    """The segment without Fine-tune-CoT's closing "END" (a scan: a regex is quadratic on long whitespace)."""
    stripped = segment.rstrip()
    return stripped[:-3].rstrip() if stripped.endswith("END") else segment


def _boxed_content(text: str, opening: re.Match[str]) -> str:
    depth, position = 1, opening.end()
    limit = min(len(text), position + 400)
    while position < limit:
        char = text[position]
        if char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
            if depth == 0:
                break
        position += 1
    return text[opening.end() : position]


def _cleaned(segment: str) -> str:
    """A segment as candidates are read from it: no hint words, no repeated "the answer is"."""
    segment = HINT_WORDS.sub(" ", unboxed(_without_end(segment)))
    return _LEADING_MARKER.sub("", segment, count=1)


def candidates(text: str, answer_type: AnswerType, choices: list[Choice] | None = None) -> list[str]:
    """Every answer-like token in `text` (already plain), in order, canonical for the answer type."""
    if answer_type is AnswerType.number:
        return [value for value, _ in _number_matches(text)]
    if answer_type is AnswerType.multiple_choice:
        labels = [c["label"] for c in choices or []] or [chr(ord("A") + i) for i in range(5)]
        return _letters(text, labels) or _option_texts(text, choices or []) or _option_numbers(text, choices or [])
    if answer_type is AnswerType.yes_no:
        return _yes_no(text)
    answer = _free_text(text)
    return [answer] if answer else []


def _first(segment: str, answer_type: AnswerType, choices: list[Choice] | None) -> str | None:
    """The first candidate after a marker."""
    segment = _cleaned(segment)
    if answer_type is AnswerType.number:
        return _first_number(segment)
    found = candidates(segment, answer_type, choices)
    return found[0] if found else None


def _is_student_format(text: str, arrow: re.Match[str]) -> bool:
    """Fine-tune-CoT's ` {rationale} --> {answer}`: a short answer on one line after the last
    arrow, with no trigger or answer marker (a teacher's text going on after an arrow of its own)."""
    tail = _without_end(text[arrow.end() :]).strip()
    if not tail or "\n" in tail or len(tail) > STUDENT_ANSWER_CHARS:
        return False
    return last_trigger(tail) is None and _last_marker(tail) is None


def _labels_an_answer(text: str, label: re.Match[str]) -> bool:
    """Whether "Answer:" is followed by an answer: a short rest of its line, or a short next line.
    "Answer: Let's think step by step. Janet has 16 eggs. ..." opens reasoning, not an answer."""
    rest = text[label.end() : label.end() + 4 * LABELLED_ANSWER_CHARS].strip()
    return len(rest.split("\n", 1)[0].strip()) <= LABELLED_ANSWER_CHARS


def _last_marker(text: str) -> tuple[str, str] | None:
    """(rule, segment) of the last answer marker in `text`."""
    best: tuple[int, str, str] | None = None
    for rule, pattern in (("the-answer-is", _THE_ANSWER_IS), ("answer-label", _ANSWER_LABEL),
                          ("answer-heading", _ANSWER_HEADING), ("gsm8k-hashes", _HASHES),
                          ("boxed", _BOXED)):  # fmt: skip
        found = None
        for match in pattern.finditer(text):
            if rule != "answer-label" or _labels_an_answer(text, match):
                found = match
        if found is not None and (best is None or found.start() > best[0]):
            segment = _boxed_content(text, found) if rule == "boxed" else text[found.end() :]
            best = (found.start(), rule, segment)
    return (best[1], best[2]) if best else None


def _span(segment: str) -> str:
    return segment.strip()[:200]


def extract_cot_answer(
    text: str,
    answer_type: AnswerType,
    *,
    answer_output: str | None = None,
    choices: list[Choice] | None = None,
    student: bool = False,
) -> Extraction:
    """The final answer of a CoT rationale, by the rules in the module docstring.

    `choices` are the options as the teacher's prompt showed them.
    """
    if choices:  # read the way the text is ("3½ hours" is "3 1/2 hours" in both)
        choices = [
            {**choice, "text": plain(choice["text"])} if not choice["text"].isascii() else choice for choice in choices
        ]
    if answer_output is not None:
        segment = plain(answer_output)
        trigger = last_trigger(segment)
        if trigger is not None:
            segment = segment[trigger.end() :]
        return Extraction(_first(segment, answer_type, choices), "zero-shot-cot-stage-2", _span(segment))
    text = plain(text)
    arrows = list(_ARROW.finditer(text))
    if arrows and (student or _is_student_format(text, arrows[-1])):
        segment = text[arrows[-1].end() :]
        return Extraction(_first(segment, answer_type, choices), "fine-tune-cot-arrow", _span(_without_end(segment)))
    trigger = last_trigger(text)
    if trigger is not None:
        segment = text[trigger.end() :]
        return Extraction(_first(segment, answer_type, choices), "zero-shot-cot-trigger", _span(segment))
    marker = _last_marker(text)
    if marker is not None:
        rule, segment = marker
        return Extraction(_first(segment, answer_type, choices), rule, _span(segment))
    text = HINT_WORDS.sub(" ", unboxed(text))
    if answer_type is AnswerType.text:
        quoted = _last_quotation(text)  # free text has no "last candidate": only a quoted result
        return Extraction(quoted, "last-quotation" if quoted else "no-marker")
    if answer_type is AnswerType.yes_no:
        answer, rule = _last_sentence_yes_no(text)
        return Extraction(answer, rule)
    if answer_type is AnswerType.multiple_choice:
        return Extraction(_last_option_named(text, choices or []), "last-candidate")
    found = candidates(text, answer_type, choices)
    return Extraction(found[-1] if found else None, "last-candidate")


def answer_from_program_value(
    value: str | None, answer_type: AnswerType, choices: list[Choice] | None = None
) -> str | None:
    """A program's returned value as a canonical answer, None if it is not one of the type."""
    if value is None:
        return None
    text = value.strip()
    if answer_type is AnswerType.number:
        try:
            return canonical_decimal(parse_number(text))
        except (ValueError, ArithmeticError):  # AnswerFormatError among them: not a number
            return None
    if answer_type is AnswerType.yes_no:
        lowered = text.lower().strip(".")
        return {"true": "yes", "false": "no", "yes": "yes", "no": "no"}.get(lowered)
    if answer_type is AnswerType.multiple_choice:
        found = candidates(text, answer_type, choices)
        return found[0] if found else None
    return _free_text(text)
