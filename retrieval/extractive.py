"""The extractive answerer: offline, no language model; it quotes the best-supported sentences of the sources.

``ExtractiveAnswerer.answer(request)`` reads ``request.sources`` (the numbered hits of the grounded
request; it never parses the rendered prompt) and

1. cuts every source into quotable *units* (``answer_units``): its sentences
   (``indexers.text.sentence_spans``: lines, sentence ends, inline bullets, upper-case labels) and
   each row of a Markdown table rendered with its header (``Part: Battery pack; Price (£): 529.00``);
2. scores each unit against the question (``score``): lexical evidence (the idf-weighted share of
   the question's terms the unit covers, its source's title, section and file name counting half
   (``source_context``), and a BM25 term; a question word the sources never use is first respelt
   to the closest word they do use, ``respell``, and a comparative or superlative counts for the
   question's base word, "16 or older" for "How old ...?", ``indexers.text.comparative_bases``) plus, with an embedder, the question-unit cosine
   of the loaded embedding model, plus a prior for the source's rank (the re-ranked search order); boilerplate
   (lead-ins ending in ":", questions, "please contact ...", "here are a few tips", bare headings
   and labels) is penalised, and so is a unit without any quantity when the question asks for one
   ("How many ...?", ``asks_quantity``);
3. abstains with On Your Data's sentence (``retrieval.prompt.NOT_AVAILABLE``) when the request is
   in scope and the best unit's *support* (its coverage, plus with an embedder 0.3 x its cosine,
   minus the same penalties) is below ``min_support`` (scaled down for a question of more than
   ``long_question`` terms, ``support_needed``), or when more than ``max_missing`` of the
   question's idf weight is in terms that no source uses anywhere (the thing asked about is not
   there: "Which cloud provider ...?"; words that only frame a question, ``GENERIC_QUESTION_WORDS``,
   aside, and so are the question's verbs, ``indexers.text.verb_stems``: "drops below", "put into" say
   what is asked about a thing the sources may word otherwise), or when the question asks for a kind of
   answer (``expected_answer_type``: a quantity, a language, an organisation, a place) that none of the
   ``typed_units`` best units holds (``CALIBRATION`` says how all three were chosen);
4. otherwise quotes the best unit under a weaker rank prior (``quote_prior``: the abstention of 3.
   judged the unit that is best under the full prior; among the sources the search ranked, the
   quote is the sentence that matches best, so a closer sentence of the third source can win over the
   first source's; a unit that says the question's hyphenated compounds whole gains ``compound_weight``:
   "in-network" and "out-of-network" are the same terms), then, when the question asks two things (``question_parts``:
   "..., and what ...?"), the best unit for its second part scored alone (from any source, if its
   support reaches ``part_support`` x ``min_support``), then the best unit of each other source that
   scores at least ``source_ratio`` of the best (for the whole question, and for its second part:
   every source that says it is cited, not the first one alone), then up to ``max_sentences`` in all:
   the next sentence of the same source when it scores close to the best, or a unit of another source
   that covers question terms the picked ones do not, each followed by its ``[docN]`` marker and
   cited at the page where that unit stands.

Its ``Answer.claims`` are the quoted units, with their sources and pages; nothing is re-parsed.
"""

from __future__ import annotations

import functools
import math
import re
from dataclasses import dataclass, replace
from typing import Any, Iterator, Sequence

import numpy as np
from rapidfuzz import fuzz, process

from indexers.text import (REQUEST_WORDS, STOPWORDS, comparative_bases, compounds, content_words, named_entities,
                           sentence_spans, stem, terms, verb_stems, words)
from retrieval.prompt import NOT_AVAILABLE
from retrieval.records import Answer, Citation, Claim, GroundedRequest

PREFIX = "Extractive answer (no language model):"

#: Defaults without and with an embedder (chosen as ``CALIBRATION`` says).
LEXICAL_DEFAULTS = {"min_support": 0.40, "support_weights": (1.0, 0.0), "quantity_penalty": 0.0, "max_missing": 0.4,
                    "weights": (0.5, 0.5, 1.0, 0.3), "quote_prior": 0.3, "source_ratio": 0.7}
EMBEDDED_DEFAULTS = {"min_support": 0.52, "support_weights": (1.0, 0.3), "quantity_penalty": 0.15, "max_missing": 0.4,
                     "weights": (0.5, 0.5, 1.0, 0.6), "quote_prior": 0.3, "source_ratio": 0.75}

CALIBRATION = """
Two unit rules and the whole (2026-12-06, evening, after answer typing, long questions, the composition
rules and the re-ranking rules of ``retrieval.rerank`` were merged). A numbered list item's own number
("2. Make sure to find a licensed massage therapist ...") is no quantity (``states_quantity``: it had made
three numbered tips answer "What is the maximum number of massage therapy sessions per year?"), and a
value line that labels itself ("Last Updated: 2023-03-05") is not joined to the line before it
(``answer_units``: the handbook's title had become "Contoso Electronics Employee Handbook: Last Updated:
2023-03-05", no longer a bare heading, quoted for "In what year was Contoso Electronics founded?" and "What
discount do employees get on Contoso Electronics products?"). Neither rule has a parameter; both change
what a unit is, so the re-ranking's candidates change too. ``python bench/answers.py --index-dir DIR``
(request caches rebuilt for each row, load average 0.8-1.4):

    rules                 Contoso recall@5  cm (±1)      FA    tune   heldout  samples cm  FA    abstained
    neither (the merge)   0.62/0.72         0.48 (0.64)  1/50  15/18  15/17    0.929       2/46  7/7
    list numbers          0.62/0.72         0.48 (0.65)  1/50  15/18  15/17    0.929       2/46  7/7
    both                  0.62/0.72         0.48 (0.65)  1/50  15/18  16/17    0.929       2/46  7/7

With both, the heading ranking of ``retrieval.rerank`` (``heading_weight``) and the candidate count were
swept again (the recall it buys against what the answerer loses; 20 candidates and heading weight 0 are the
defaults):

    candidates  heading  Contoso recall@5  cm (±1)      tune   heldout  samples FA
    20          0        0.62/0.72         0.48 (0.65)  15/18  16/17    2/46
    30          0        0.63/0.73         0.46 (0.64)  15/18  16/17    2/46
    20          0.25     0.63/0.73         0.48 (0.64)  15/18  16/17    2/46
    25          0.25     0.64/0.74         0.47 (0.62)  14/18  16/17    2/46
    30          0.25     0.64/0.75         0.47 (0.63)  14/18  16/17    2/46
    20          0.5      0.64/0.74         0.48 (0.64)  15/18  16/17    3/46
    25, 30      0.35     0.65/0.75, 0.76   0.47 (0.62, 0.63)  14/18  16/17  3/46
    30          0.5      0.65/0.76         0.49 (0.63)  14/18  16/17    3/46

No row meets page recall@5 ±1 >= 0.75 and citations_matched ±1 >= 0.65 together there: the rows that
reach the recall lose a tune abstention ("What discount do employees get on Contoso Electronics products?"
quotes the bare title) and two citations whose gold page is still retrieved (another source's sentence
wins the quote). Two changes then made them meet: "What discount / rate / fee / salary / price ...?" asks
for an amount (``asks_quantity``; the answer typing then abstains on the discount question, whose best
units state none), and with more sources in the top 5 that say the answer, the composition re-swept
(``source_ratio``, ``max_sentences``). ``python bench/answers.py --index-dir DIR --param ...`` with the
candidate count and ``rerank.HEADING_WEIGHT`` set per row (load average 1-2):

    candidates  heading  source_ratio  sentences  Contoso recall@5  cm (±1)      FA    tune   heldout  samples FA  cm
    20          0        0.8           4          0.62/0.72         0.48 (0.65)  1/50  15/18  16/17    2/46        0.929
    20          0        0.75          5          0.62/0.72         0.49 (0.64)  1/50  15/18  16/17    2/46        0.929
    30          0.25     0.8           4          0.64/0.75         0.47 (0.63)  1/50  15/18  16/17    2/46        0.929
    30          0.25     0.7, 0.75     5          0.64/0.75         0.50 (0.65)  1/50  15/18  16/17    2/46        0.929
    25          0.25     0.75          5          0.64/0.74         0.50 (0.64)  1/50  15/18  16/17    2/46        0.929
    35          0.25     0.7           5          0.65/0.76         0.50 (0.66)  1/50  15/18  16/17    2/46        0.929
    35          0.25     0.75          5          0.65/0.76         0.52 (0.65)  1/50  15/18  16/17    2/46        0.929
    40          0.25     0.7, 0.75     5          0.65/0.76         0.50 (0.66)  1/50  16/18  16/17    2/46        0.929
    40          0.25     0.8           5          0.65/0.76         0.50 (0.64)  1/50  16/18  16/17    2/46        0.929
    30          0.35     0.75          5          0.65/0.76         0.50 (0.65)  1/50  15/18  16/17    3/46        0.905
    30          0.5      0.75          5          0.65/0.76         0.52 (0.65)  1/50  15/18  16/17    3/46        0.905

The defaults are now 40 candidates, heading weight 0.25 (``retrieval.rerank``), ``source_ratio`` 0.75 and
``max_sentences`` 5: the tune sets choose among the rows that keep data/samples at 2/46 (40 candidates:
16/18, the others 15/18); heading weight above 0.25 costs a samples answer. These were chosen with the
Contoso 50 in view (the recall and citation targets are measured there, and the tune sets cannot tell
the candidate counts apart otherwise), so its figures are not held out. A fresh ``--refresh`` of the chosen
defaults gives the same figures (0.65/0.76, 0.50 (0.66), 1/50; 16/18, 16/17; 2/46, 7/7), answer p95 87 ms
and retrieval + answer p95 201 ms at load 1.3. Without an embedder (``--no-embedder``): Contoso 0.42 (0.57),
FA 4/50; tune 15/18, heldout 16/17; samples FA 6/46, 6/7. Also measured and left out: a unit whose question terms are all words of its
own document's title penalised as boilerplate (heldout 16/17 but samples false abstention 4/46), and a
boilerplate unit never judged nor quoted first (tune 14/18, heldout 15/17: the penalised heading was what
made those questions abstain).

Long questions (2026-12-06, ``long_question`` 7): the support a question needs from its best unit is
``min_support`` x 7 / n for a question of n > 7 terms (``support_needed``). One sentence covers a
share of a question's terms, and a long, many-part question ("How does the prior authorization process
detailed in ... impact the out-of-pocket costs for services and medications, and what are the
copayment expectations ...?") leaves even its answering sentence a small share: 3 of the 5 Contoso
false abstentions had 13-20 terms and best-unit supports 0.36-0.48. 7 is the longest question of the
tune sets (data/samples and the unanswerable tune half: 2-7 terms), so ``min_support`` was chosen on
questions of at most 7 terms and the tune sets measure every value >= 7 the same (samples 2/46 and
7/7, tune 15/18): they cannot choose it, and the value is that range, not a fit. Read afterwards,
``python bench/answers.py --index-dir /tmp/abstain-ba --sweep "long_question=0;6;7;8;9;10;12;14"``
(load average 5.9-7.3, the full test suite running alongside):

    long_question  heldout  Contoso 50 FA  cm (±1)
    0 (off)        15/17    5/50           0.35 (0.53)
    6              14/17    1/50           0.36 (0.56)
    7              15/17    1/50           0.36 (0.56)
    8, 9, 10       15/17    2/50           0.36 (0.54)
    12             15/17    3/50           0.36 (0.54)
    14             15/17    4/50           0.36 (0.54)

(6 would lower the threshold of the tune sets' own 7-term questions; it answers "What is the maximum
number of massage therapy sessions per year under Northwind Health Plus?" in the heldout half.) The one Contoso false abstention left is "what wrong things
Northwind Health say about what they cover?" ("wrong" is said nowhere: ``max_missing``).

Answer typing (2026-12-06, ``typed_units`` 3): a question that asks for a kind of answer
(``expected_answer_type``: a quantity, "How many ...?", ``asks_quantity``; or a name of a kind,
"Which languages ...?", "Which cloud provider ...?", "In which city ...?") is abstained on when none of
its ``typed_units`` best units holds one (a quantity, ``states_quantity``; a spaCy named entity of that
kind, ``indexers.text.named_entities``, sharing no word with the question). The last re-measure found
the answered unanswerable questions lexically strong (support 0.53-0.76), so a new signal was needed;
measured first for separation on the tune sets, best units (score order) of samples + tune: the
pair model of ``eval.pair_model`` (the question as the claim, NOT_ENOUGH_INFO probability of the best
unit: ROC AUC 0.73, 0.62 among the questions answered today, below the support's 0.91 / 0.77, and
0.7 s a question for its four pairs at load average 6); the share of the question's focus noun chunk said in the best
unit (AUC 0.76 / 0.83 but "mileage rate", "the maximum", "requirements", "compensation" are answered
in other words); compound modifiers of the question said apart but never in one unit ("life insurance",
"services team"; "training budget", "mileage rate" too: 2 abstentions for 2 false ones). Answer typing
fires on 2 tune questions ("Which languages ...", "Which cloud provider ...") and on no answerable
one. ``python bench/answers.py --index-dir /tmp/abstain-ba --set samples --set unanswerable:tune
--sweep "typed_units=0;1;2;3;5"`` (load average 1.8-3.4):

    typed_units  samples FA  samples abstained  tune abstained  errors | heldout  Contoso 50 FA  cm (±1)
    0 (off)      2/46        7/7                13/18           7      | 14/17    5/50           0.35 (0.53)
    1            4/46        7/7                15/18           7      |
    2            2/46        7/7                15/18           5      |
    3            2/46        7/7                15/18           5      | 15/17    5/50           0.35 (0.53)
    5            2/46        7/7                15/18           5      |

3, the middle of the plateau (1 checks the best unit alone: two data/samples quantity questions
whose best unit states none, "How many e-bikes ...?", are answered by the next one). Read afterwards,
``python bench/answers.py --index-dir /tmp/abstain-ba --sweep "typed_units=0;3"``: heldout 15/17
("How many employees work at Contoso Electronics?": no quantity in any of the three best units), so
the 35 unanswerable questions are 30/35 (before 27/35); the Contoso 50 unchanged (FA 5/50, cm 0.35 /
0.53); answer p95 5-17 ms. Still answered: "Does Northwind Standard include pet insurance?" (PET
scans), "What is the life insurance benefit ...?" (Workers' Compensation Insurance), "What is the
Northwind Health Plus lifetime maximum benefit?" (out-of-pocket maximum), and in the heldout half
"Can an employee's spouse use ... PerksPlus ...?" and "In what year was Contoso Electronics
founded?" (a "Last Updated" date is a date).

Composition (2026-12-06): every strong source is cited (``source_ratio``: after the best unit and the
second part's, the best unit of each other source scoring at least this fraction of the best, for the
whole question and for its second part, closest first), and ``max_sentences`` is 4 (was 3: the best
unit, the second part's and two more sources, an answer of a few sentences, as an On Your Data answer
cites two to four sources). This changes what is quoted, never whether the answerer abstains, so it was
chosen on citations_matched: data/samples (the tune set) and the Contoso 50 (the target); the
unanswerable sets are unchanged by construction (13/18, 14/17). ``python bench/answers.py
--set contoso --set samples --sweep "source_ratio=0.7;0.75;0.8;0.85" --sweep "max_sentences=3;4"``
(2 = off; before the compound rule below; load average 3-5 on 2 cores, answer p95 5-100 ms either way):

    source_ratio  max_sentences  Contoso 50 cm (±1)  samples cm
    off           3              0.35 (0.53)         0.905      (before)
    off           4              0.35 (0.53)         0.905
    0.7           3              0.42 (0.60)         0.952
    0.7           4              0.44 (0.60)         0.952
    0.75          4              0.44 (0.60)         0.929
    0.78          4              0.44 (0.60)         0.929
    0.8           3              0.42 (0.60)         0.929
    0.8           4              0.44 (0.61)         0.929
    0.82          4              0.41 (0.59)         0.929
    0.85          4              0.41 (0.59)         0.905

(Repeated runs of one setting differ by up to 0.01 in ±1: the old defaults measured 0.53 and 0.52.)
0.8 with 4 sentences is kept (the best Contoso ±1; 0.7 is one samples question better and one Contoso
question worse; 5 sentences gain nothing, 0.44 (0.61) at 0.72-0.8). A rule over the whole question only (no second-part candidates) measured 0.40 (0.57)
with 3 sentences, 0.44 (0.60) with 4. Without an embedder (``--no-embedder``) lexical scores sit closer
together: 0.7 gives Contoso 0.39 (0.54) from 0.32 (0.47), 0.8 0.33 (0.48), samples 0.857 either way, so
``LEXICAL_DEFAULTS`` use 0.7. False abstention is unchanged (5/50, 2/46; samples 7/7).
The quote then prefers a unit that says the question's hyphenated compounds whole (``compound_weight``
0.1; the terms read "in-network" and "out-of-network" both as "network"; 19 of the 50 questions have one):
``--sweep "compound_weight=0;0.05;0.1;0.2"`` gives Contoso 0.44 (0.61) at 0, 0.46 (0.61) at 0.05-0.2,
samples 0.929 throughout; without an embedder 0.39 (0.54) -> 0.41 (0.54) at 0.1. One question's citation
each (the In-Network definition is quoted for "what is in-network ...", not the Out-of-Network one); of
the other answers it changes, "financial implications of choosing an out-of-network provider" now quotes
the sentence on out-of-network coverage instead of "Choosing in-network providers is the most
cost-effective option". All four sets with these defaults (``python bench/answers.py``; the heldout half
read, not tuned on, and unchanged by construction):

    set                   before                                   after
    contoso 50            cm 0.35 (0.53), FA 5/50                  cm 0.46 (0.61), FA 5/50
    unanswerable:tune     13/18                                    13/18
    unanswerable:heldout  14/17                                    14/17
    samples               cm 0.905, FA 2/46, 7/7 abstained         cm 0.929, FA 2/46, 7/7 abstained

Measured and left out: one unit per cited (source, page) instead of per source: 0.47 (0.61), no gain
worth an answer that cites one chunk twice; a near-tie rule (a second unit of an already cited source scoring >= 0.95 of the
best is quoted too): 0.46 (0.61), one question gained ("what is in-network ...": the In-Network
definition next to the Out-of-Network one) and one lost, not a measured gain. Of the 12 Contoso gold
citations cited one page off with these defaults, 6 are the gold's: pypdf's text of the page after the
gold page holds the gold answer's sentences (rapidfuzz partial_ratio 74-100 there, 45-57 on the gold
page: "what is copay ...", "eligibility criteria ...", "quick and accurate processing of claims",
"differences in copayment amounts ...", "typical copayments ...", "documentation requirements for filing
a claim"), and the answer cites that next page; the reference app labels a chunk with the page where the
chunk starts, so those gold pages are the page before the sentence. The other 6 are ours: a sentence of a
neighbouring page was quoted (the gold sentence is on the gold page). The page is left as it is (the
quoted sentence stands on the page we cite). The sentences across a page break
(idea of a previous session) are not quoted today: of the 231 units these defaults quote on Contoso and
data/samples none starts in lower case, and the one that stops at a page offset without a sentence end
is a whole line ("Fit-out came in at £2.35 million, £150,000 under budget"). Answers hold 1-4 units
(4 units: 35 of the 89 answered Contoso and data/samples questions; 1 unit: 25).

Re-measured (2026-12-04) after the PDF/text heading fix (a numbered list item, a bullet or a line
ending in a small word is no heading; before, one wrapped list item became the section of every later
chunk of two Northwind PDFs), ``python bench/answers.py --refresh``, defaults kept: Contoso 50 false
abstention 5/50, citations_matched 0.35 (±1 0.53); unanswerable tune 13/18, heldout 14/17; samples 2/46
and 7/7. A sweep with this fix and a second one (sentences across pages joined, not merged: it moved one
Contoso question to abstention) over min_support 0.48-0.52, max_missing 0.2-0.4 found no better point: the
answered unanswerable questions have a best-unit support of 0.53-0.76, lexically high ("PET scans" for
"pet insurance", "Workers' Compensation Insurance" for "life insurance"), above most answerable
abstentions (0.33-0.51), and a lower ``max_missing`` buys tune abstentions with false abstentions one
for one: a new signal is needed, not another threshold.

Current defaults (2026-12-03, evening): the missing-terms check leaves out the question's verbs (spaCy's
tagger, ``indexers.text.verb_stems``; ``count_missing_verbs=True`` is the check of before), and
``min_support`` is 0.52. Of the data/samples false abstentions, two were the missing-terms check firing
on a verb the sources word otherwise ("batteries whose health drops below 80%" over "health below
80%", "How much does Larkspur put into my pension?"). Measured with ``python bench/answers.py --sweep
"min_support=0.5;0.51;0.52;0.525"`` (verbs left out; before: verbs counted, 0.525):

    min_support  samples FA  samples abstained  tune abstained  errors | heldout  Contoso 50 FA  cm (±1)
    before       4/46        7/7                14/18           8      | 15/17    5/50           0.36 (0.54)
    0.50         1/46        7/7                13/18           6      | 14/17    5/50           0.36 (0.54)
    0.51         2/46        7/7                13/18           7      | 14/17    5/50           0.36 (0.54)
    0.52         2/46        7/7                14/18           6      | 14/17    5/50           0.36 (0.54)
    0.525        3/46        7/7                14/18           7      | 14/17    5/50           0.36 (0.54)

0.52 is the fewest errors on the tune sets (tied with 0.50, the one of the two that abstains more on
unanswerable questions); data/samples false abstention 2/46 meets the issue's 5%. Read afterwards:
the heldout half loses one abstention ("In what year was Contoso Electronics founded?": "founded" is a
verb the sources never use), so the 35 unanswerable questions are 28/35 (before 29/35); the Contoso
50 is unchanged. Also measured and left out: a penalty for the question's two-word phrases that no
source says ("life insurance", "cloud provider"; support minus 0.05-0.3 x the unsaid share): tune
14/18 up to 0.2 (17/18 at 0.3) but data/samples false abstention 6-8/46 and Contoso 6-8/50.
Re-ranking more candidates (``--rerank 30``) lowered Contoso page recall@5 to 0.60 / 0.70.
Embedding the chunk without the section headings that repeat its title (``pipelines.engine.embedding_text``;
"Contoso Electronics Northwind Health Plus Plan - Contoso Electronics > Northwind Health Plus Plan > ...")
measured Contoso page recall@5 0.63 / 0.73 (from 0.61 / 0.71) but citations_matched ±1 0.52 (0.54) and
heldout 12/17 (14/17): not kept (it would also need the pipeline fingerprint to re-embed old indexes).

Defaults before (2026-12-03, afternoon), after the PDF title change (a cover's lines together, so the
Contoso PDFs are no longer all titled "Contoso Electronics") and with the quote's own rank prior
(``quote_prior`` 0.3). The quote prior changes which unit is quoted, never whether the answerer
abstains, so it was chosen on the Contoso 50 (quote prior 0.6 = none / 0.3 / 0.15 / 0.0:
citations_matched 0.34/0.51, 0.37/0.55, 0.36/0.48, 0.34/0.48; data/samples cm 0.833 and every
abstention the same). A single weaker prior for both (weights[3] 0.3: Contoso cm 0.37/0.56 but tune
abstention 8/18, samples 6/7; 0.15: 7/18) is what the split avoids. The rank prior and ``min_support``
were then swept again on the tune sets only (errors = samples false abstentions + samples answered +
tune answered):

    prior  min_support  samples FA  samples abstained  tune abstained  errors | Contoso 50 FA  cm (±1)
    0.45   0.50         4/46        7/7                11/18           11     | 5/50           0.37 (0.56)
    0.45   0.525        5/46        7/7                12/18           11     | 5/50           0.37 (0.56)
    0.45   0.55         7/46        7/7                12/18           13     | 6/50           0.36 (0.55)
    0.6    0.50         4/46        7/7                13/18           9      | 5/50           0.37 (0.55)
    0.6    0.525        5/46        7/7                14/18           9      | 5/50           0.37 (0.55)
    0.6    0.55         7/46        7/7                14/18           11     | 6/50           0.36 (0.54)
    0.75   0.50         4/46        7/7                13/18           9      | 6/50           0.37 (0.55)
    0.75   0.525        5/46        7/7                14/18           9      | 6/50           0.37 (0.55)
    0.75   0.55         7/46        7/7                14/18           11     | 7/50           0.36 (0.54)

(0.6, 0.525) stays: tied fewest errors with (0.6, 0.50), the one of the two that abstains more on
unanswerable questions (the issue's harder target). Also measured and left out (Contoso 50 / tune /
samples): question framing words counting half or nothing in the coverage (tune 13/18 and 12-13/18,
no fewer errors); abstaining when the best unit lacks the question's rarest term (tune 18/18 but
false abstention 19-20/50 and 16-19/46). With the comparatives of ``indexers.text.comparative_bases``
added afterwards: samples false abstention 4/46, tune 14/18, Contoso 50 cm 0.36 (0.54), FA 5/50. Read
once at the end, not tuned on: the ``heldout`` half abstains on 15/17.

Previous defaults (2026-12-03, morning), kept for the record. They were chosen
after the re-ranking of ``retrieval.rerank`` (top 20) and with the
missing-terms check (``max_missing`` 0.4, below): with the embedder, the rank prior of the unit score
(``weights[3]``) and ``min_support`` were swept together on the tune sets only (data/samples 46 + 7
and the Contoso unanswerable ``tune`` half, 18; errors = false abstentions + answered unanswerable):

    prior  min_support  samples FA  samples abstained  tune abstained  errors | Contoso 50 FA  cm (±1)
    0.3    0.55         7/46        7/7                11/18           14     | 8/50           0.34 (0.50)
    0.3    0.50         4/46        6/7                8/18            15     | 4/50           0.39 (0.55)
    0.0    0.55         7/46        7/7                10/18           15     | 5/50           0.34 (0.48)
    0.45   0.50         4/46        7/7                11/18           11     | 5/50           0.40 (0.54)
    0.45   0.525        5/46        7/7                14/18           9      | 6/50           0.39 (0.53)
    0.45   0.55         7/46        7/7                14/18           11     | 8/50           0.35 (0.49)
    0.6    0.50         4/46        7/7                12/18           10     | 5/50           0.39 (0.49)
    0.6    0.51         5/46        7/7                13/18           10     | 5/50           0.39 (0.49)
    0.6    0.525        5/46        7/7                15/18           8      | 6/50           0.38 (0.48)
    0.6    0.54         6/46        7/7                15/18           9      | 7/50           0.36 (0.46)
    0.6    0.55         7/46        7/7                15/18           10     | 8/50           0.35 (0.45)
    0.75   0.525        5/46        7/7                15/18           8      | 6/50           0.34 (0.44)
    0.9    0.525        5/46        7/7                15/18           8      | 6/50           0.36 (0.45)

(prior 0.6, min_support 0.525) is the fewest errors, the smallest prior of the plateau. A larger
prior makes the best unit come from the first source more often: an unanswerable question's best
*scored* sentence then tends to be the top source's, which supports it less than a stray sentence of a
lower source that happens to share its words. Without an embedder prior 0.6 measured tune 11/18
(0.3: 10/18) but Contoso 50 citations_matched 0.29 (0.34): ``LEXICAL_DEFAULTS`` keep 0.3.
Read once afterwards, not tuned on: the ``heldout`` half abstains on 13/17 (the answerer and search
order of before: 14/17; these defaults over the search order without re-ranking: 13/17).

Earlier calibrations, kept for the record:

Re-run with ``python bench/answers.py`` (local index, all-MiniLM-L6-v2, hybrid, strictness 3, top 5;
the grounded requests are cached, each setting is re-answered in seconds; ``--sweep NAME=V1;V2``).
Tuned on data/samples (46 answerable, 7 unanswerable) and the ``tune`` half of
data/eval/contoso_unanswerable.jsonl (18); the ``heldout`` half (17) and the Contoso public 50 were
only read afterwards (they are shown here because the threshold trades one against the other).

With the embedder (``EMBEDDED_DEFAULTS``; support = coverage + 0.3 x cosine - penalties; boilerplate
0.15, quantity 0.15). Swept: cosine weight 0.2/0.3/0.4/0.5 x quantity penalty 0.15/0.3 x boilerplate
penalty 0.15/0.3 x min_support 0.50..0.70:

    min_support  samples FA  samples abstained  tune abstained | heldout abstained  Contoso 50 FA  citations_matched (±1)
    0.45         2/46        4/7                8/18           | 9/17               4/50           0.39 (0.50)
    0.50         2/46        6/7                9/18           | 10/17              8/50           0.36 (0.47)
    0.55         7/46        6/7                10/18          | 14/17              10/50          0.34 (0.45)
    0.60         7/46        6/7                10/18          | 16/17              13/50          0.34 (0.45)
    0.65         10/46       6/7                10/18          | 16/17              16/50          0.31 (0.42)
    0.70 (w 0.2) 16/46       7/7                16/18          | 17/17              26/50          0.23 (0.30)

0.55 keeps the tune sets about where the lexical answerer of before had them (samples 8/46 false,
5/7 and 12/18 abstained) while the Contoso 50 false abstention falls from 19/50 to 10/50; 0.50 would
meet the samples' false-abstention target (2/46) at the cost of 5 more answered unanswerable
Contoso questions. No setting
reaches the issue's targets on both sides: on data/samples the best unit's support of answerable and
unanswerable questions overlaps (a cluster of answerable questions sits at 0.50-0.55), and on the
Contoso tune half the best MiniLM sentence of an unanswerable question often scores as high as an
answer (0.6-0.8: "Who is the current CEO?" finds the CEO's job description).

Missing terms (``max_missing``, the same 0.4 with and without an embedder), measured after the
re-ranking of ``retrieval.rerank`` (top 20) with the embedder at min_support 0.55 and prior 0.3;
``max_missing`` above 1 is the answerer of before:

    max_missing  samples FA  samples abstained  tune abstained | Contoso 50 FA  citations_matched (±1)
    > 1 (off)    7/46        6/7                9/18           | 8/50           0.34 (0.50)
    0.50         7/46        6/7                10/18          | 8/50           0.34 (0.50)
    0.45         7/46        6/7                10/18          | 8/50           0.34 (0.50)
    0.40         7/46        7/7                11/18          | 8/50           0.34 (0.50)
    0.35         8/46        7/7                12/18          | 8/50           0.34 (0.50)
    0.30         10/46       7/7                13/18          | 9/50           0.32 (0.48)

0.40 answers every answerable question the answerer of before answered on the tune sets and abstains
on 2 more of the 25 unanswerable ones; 0.35 trades one more of each. Without an embedder (min_support
0.40), 0.40 against off: samples FA 7/46 (6/46), abstained 6/7 (5/7), tune 10/18 (8/18); Contoso 50 FA
10/50 either way. The answerable questions whose
terms the sources lack are mostly framing ("What happens ...", "the role of ...", "according to the
... pdf", "How long ...", "covered") and typos too short to respell ("typs"); the unanswerable ones name
what is absent ("tuition", "bonus", "Seattle", "cloud", "lifetime maximum", "canteen", "Paris").
A second sentence rule was measured and left out: boilerplate openers that sum up ("In conclusion",
"Overall,", "By understanding ...", "It is also important to ...") penalised like the others moved the
Contoso 50 false abstention from 8/50 to 11/50 and citations_matched from 0.34 to 0.30.

The second-part pick (``part_support`` 0.8; 0.6 measured the same) changes nothing on data/samples
or the unanswerable set and was measured on the Contoso 50 only (its 25 two-citation questions):
citations_matched 0.34 -> 0.35, ±1 0.45 -> 0.47.

Without an embedder (``LEXICAL_DEFAULTS``, support = coverage): min_support 0.35/0.40/0.45 give
samples 3/6/10 of 46 false abstentions and 4/5/5 of 7 abstained, tune 7/11/12 of 18 (heldout 11/13/16
of 17, Contoso 50 false abstention 8/14/18 of 50); 0.40 kept, as before.
Also swept earlier, none better on both sides: context_weight 1.0, and adding the chunk's search
cosine to the support (chunk_weight 0.5-1.5, pivot 0.5): MiniLM chunk cosines separate the Contoso
answerable from unanswerable questions (medians 0.76 / 0.50) but not data/samples' (0.50 / 0.47), so
they stay available as parameters, off by default.
"""


@dataclass(frozen=True)
class Unit:
    """A quotable piece of a source: its text, where it starts in the source content, its rank in the source."""

    text: str
    start: int
    position: int
    row: bool = False


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


_SEPARATOR_CELL = re.compile(r":?-{2,}:?")


def answer_units(content: str) -> list[Unit]:
    """The quotable units of a source: sentences of each line, and each table row with its header cells.

    A label line followed by a short line holding a value (a digit or an address: "Riverside depot
    safety lead" / "Ines Carvalho 5310", a contact list laid out without a table) is one unit,
    "label: value"; the label alone would be a heading (see ``is_boilerplate``). A value line that has its
    own label ("Last Updated: 2023-03-05" under a document's title) is not joined to the line before."""
    found: list[tuple[str, int, bool, int, bool]] = []  # text, start, row, line number, whole line
    header: list[str] | None = None
    pos = 0
    lines = content.split("\n")
    for number, line in enumerate(lines):
        start, pos = pos, pos + len(line) + 1
        stripped = line.strip()
        if stripped.startswith("|") and stripped.count("|") >= 2:
            cells = _cells(stripped)
            if all(_SEPARATOR_CELL.fullmatch(c) for c in cells if c):
                continue  # the separator row
            if header is None:
                header = cells
                continue
            pairs = [f"{h}: {v}" for h, v in zip(header, cells) if v]
            found.append(("; ".join(pairs) + ".", start + line.index("|"), True, number, True))
            continue
        if stripped:
            header = None
        spans = sentence_spans(line)
        for a, b in spans:
            text = " ".join(line[a:b].split())
            if len(text) >= 3:
                found.append((text, start + a, False, number, len(spans) == 1))
    units: list[Unit] = []
    i = 0
    while i < len(found):
        text, start, row, number, whole = found[i]
        if i + 1 < len(found) and whole and not row and _is_label(text):
            value, _, vrow, vnumber, vwhole = found[i + 1]
            blank_between = all(not x.strip() for x in lines[number + 1:vnumber])
            if (vwhole and not vrow and blank_between and len(value.split()) <= 8 and _VALUE.search(value)
                    and not _OWN_LABEL.match(value)):
                units.append(Unit(f"{text}: {value}", start, len(units)))
                i += 2
                continue
        units.append(Unit(text, start, len(units), row=row))
        i += 1
    return units


@functools.lru_cache(maxsize=1024)
def _units_and_terms(content: str) -> tuple[tuple[Unit, tuple[str, ...]], ...]:
    """``answer_units(content)`` with each unit's ``terms``, computed once per content: the re-ranking cuts
    each candidate once per question part and the answer cuts its sources again (``score``)."""
    return tuple((u, tuple(terms(u.text))) for u in answer_units(content))


_VALUE = re.compile(r"\d|@")
# A line that labels its own value ("Last Updated: 2023-03-05", "Tel: 0800 014 2290") needs no label before it.
_OWN_LABEL = re.compile(r"^[^:\d]{1,40}:\s")


def _is_label(text: str) -> bool:
    """A few words with no digit and no sentence end: a heading or the label of a value."""
    t = text.strip()
    return len(t.split()) <= _HEADING_WORDS and not _DIGIT.search(t) and not t.endswith((".", "!", "?", ":", '"', "\u201d", ")"))


# Sentences that state nothing about the question: lead-ins to a list, questions, calls to contact
# someone, generic advice openers. English boilerplate, not tied to one corpus.
_BOILERPLATE = re.compile(
    r"^(?:[-*\u2022]\s*)?(?:please\b|contact\b|call\b|for (?:more|further) (?:information|details)\b|if you have (?:any )?questions\b"
    r"|here (?:are|is)\b|(?:the )?following\b|by following\b|it is (?:always )?(?:important|a good idea|recommended) to\b"
    r"|be sure to\b|make sure\b|remember\b|we (?:hope|encourage|recommend)\b|thank you\b|welcome\b)",
    re.IGNORECASE,
)


def is_boilerplate(text: str) -> bool:
    """True for a unit that introduces, asks or advises rather than states (see ``_BOILERPLATE``), or that
    is a bare heading or label: a few words, no digit, no sentence end ("Vice President of Sales")."""
    t = text.strip()
    return t.endswith(":") or t.endswith("?") or bool(_BOILERPLATE.match(t)) or _is_label(t)


_HEADING_WORDS = 6
_DIGIT = re.compile(r"\d")

#: Words that frame a question rather than name what it asks about ("What happens ...", "the role of ...",
#: "according to the ... document", "How long ...?", "What does it cost?"): a source need not use them (``max_missing``
#: leaves them out). Stems.
GENERIC_QUESTION_WORDS = frozenset(stem(w) for w in (
    "happen happens role document documents pdf file mention mentioned according outline outlined describe described "
    "versus vs impact affect effect expect expected especially manage situation situations like involve involved "
    "address thing things way ways kind kinds type types typical typically specific specifically exactly actually "
    "regarding related relate relation consider considering provide provided offer offered "
    "cover covered covers include included includes "
    # what a quantity question asks for, said in its own words ("What does X cost?" over a price list)
    "cost costs price prices amount number many much long often old far soon quickly").split())

# Questions whose answer is a quantity: how many/much/long/often/old/far/soon, what year/age/percentage...
_ASKS_QUANTITY = re.compile(
    r"\bhow (?:many|much|long|often|old|far|soon|quickly|large|big|high)\b|\bwhat (?:year|age|percentage|percent|amount|date|time|discount|rate|fee|salary|price)\b"
    r"|\b(?:maximum|minimum) number\b|\bwhen (?:is|are|was|were|do|does|did|will|must|should|can)\b",
    re.IGNORECASE,
)
# What a quantity looks like in an answer: a digit, a number word, a day or month name, "half", "twice"...
_QUANTITY = re.compile(
    r"\d|\b(?:one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|fifteen|twenty|thirty|forty|fifty|hundred"
    r"|thousand|million|billion|half|twice|once|double|single|dozen|annual(?:ly)?|monthly|weekly|daily|yearly|quarterly"
    r"|monday|tuesday|wednesday|thursday|friday|saturday|sunday|january|february|march|april|may|june|july|august"
    r"|september|october|november|december|immediately|same day|next day|end of)\b",
    re.IGNORECASE,
)


def asks_quantity(question: str) -> bool:
    """True for a question whose answer is a number, an amount, a duration or a date ("How many ...?",
    "What discount / rate / fee / salary / price ...?")."""
    return bool(_ASKS_QUANTITY.search(question))


# A list item's own number ("2. Make sure to ...", "4) Keep receipts"): where the item stands, not a quantity.
_LIST_ITEM_NUMBER = re.compile(r"^\s*(?:[-*\u2022]\s*)?\(?\d{1,2}[.)]\s+")


def states_quantity(text: str) -> bool:
    """True when ``text`` holds something that can answer a quantity question (see ``_QUANTITY``); the
    number of a numbered list item ("2. Make sure to ...") is not one."""
    return bool(_QUANTITY.search(_LIST_ITEM_NUMBER.sub("", text, count=1)))


# Answer typing (classic IR question answering): a "which/what <noun>" question whose noun names a kind
# of name asks for a name of that kind, and a source can only answer it with one. English nouns, not
# tied to one corpus; the spaCy entity labels (``indexers.text.named_entities``) that answer each.
_TYPED_NOUNS = {
    "language": "languages? dialects?",
    "organisation": "companies company providers? vendors? suppliers? insurers? carriers? banks? firms? contractors?"
                    " manufacturers? brands? chains? agencies agency organi[sz]ations?",
    "place": "city cities countries country towns? regions?",
}
# the noun must be what "which"/"what" asks for ("Which cloud provider ...?"), not the subject after a verb:
# "What are in-network providers?" asks what they are, not for a provider's name
_AUXILIARY = r"(?:is|are|was|were|do|does|did|can|could|will|would|should|shall|may|might|must|has|have|had)\b"
_ASKS_TYPE = {kind: re.compile(r"\b(?:which|what)\s+(?:(?!" + _AUXILIARY + r")[\w'-]+\s+){0,2}?(?:"
                               + "|".join(nouns.split()) + r")\b", re.IGNORECASE)
              for kind, nouns in _TYPED_NOUNS.items()}
ANSWER_ENTITIES = {"language": frozenset({"LANGUAGE", "NORP"}), "organisation": frozenset({"ORG"}),
                   "place": frozenset({"GPE", "LOC", "FAC"})}


def expected_answer_type(question: str) -> str | None:
    """The kind of answer a question asks for: "quantity" (``asks_quantity``: "How many ...?", "In what
    year ...?"), "language", "organisation" or "place" ("Which languages ...?", "Which cloud provider
    ...?", "In which city ...?"), or None (most questions: "What is ...?", "Does ...?", "Who ...?")."""
    if asks_quantity(question):
        return "quantity"
    return next((kind for kind, pattern in _ASKS_TYPE.items() if pattern.search(question)), None)


def states_answer_type(text: str, kind: str, question: str = "") -> bool | None:
    """Whether ``text`` holds an answer of ``kind`` (``expected_answer_type``): a quantity (``states_quantity``)
    or a named entity of the kind (``ANSWER_ENTITIES``) that shares no word with ``question`` (the
    question's own "Contoso" does not name the provider it asks about); None when the entity
    recogniser is not installed (the caller cannot tell)."""
    if kind == "quantity":
        return states_quantity(text)
    entities = named_entities(text)
    if entities is None:
        return None
    asked = set(words(question))
    return any(label in ANSWER_ENTITIES[kind] and not asked & set(words(name)) for name, label in entities)


@dataclass(frozen=True)
class ScoredUnit:
    source: int  # the prompt number n of [docN]
    unit: Unit
    score: float
    support: float
    coverage: float
    cosine: float | None
    covered: frozenset[str]
    missing: float = 0.0  # of the question: the idf share of its terms no source uses (see ``score``)
    prior: float = 0.0  # 1 / (1 + the rank of its source among the sources)

    @property
    def text(self) -> str:
        return self.unit.text


def respell(question_terms: Sequence[str], vocabulary: set[str], *, min_ratio: float = 80.0,
            min_length: int = 4) -> list[str]:
    """``question_terms`` with each term the sources never use replaced by the closest term they do use
    (``rapidfuzz`` ratio >= ``min_ratio``; terms shorter than ``min_length`` are kept): a misspelt
    question ("hearin", "servises", "gendr") still finds its words. Order kept, duplicates dropped."""
    out: list[str] = []
    for t in question_terms:
        if t not in vocabulary and len(t) >= min_length and vocabulary:
            match = process.extractOne(t, vocabulary, scorer=fuzz.ratio, score_cutoff=min_ratio)
            if match is not None:
                t = match[0]
        if t not in out:
            out.append(t)
    return out


# where a question asks a second thing: ", and what ...", "; how ...", "? What ..."
_SECOND_PART = re.compile(
    r"(?:,?\s+and\s+|;\s*|\?\s+)(?=(?:what|how|which|who|when|where|why|are|is|does|do|can|will|should)\b)", re.IGNORECASE)


def question_parts(question: str) -> list[str]:
    """The question, or its two parts when it asks two things ("How does X ..., and what are Y?");
    a part must have at least two terms of its own."""
    pieces = _SECOND_PART.split(question.strip(), maxsplit=1)
    if len(pieces) == 2 and all(len(question_terms(p)) >= 2 for p in pieces):
        return [p.strip() for p in pieces]
    return [question]


_PRONOUNS = frozenset("i we you they he she it what that there who where how".split())


def question_terms(question: str) -> list[str]:
    """The terms of a question: ``indexers.text.terms`` without the words of asking (``REQUEST_WORDS``),
    contractions of stopwords and pronouns ("what's", "i'm", "i've", "we're") or one-letter fragments."""
    out = []
    for w in content_words(question, drop=REQUEST_WORDS):
        base = re.split(r"['\u2019]", w, maxsplit=1)[0]
        if (base != w and (base in STOPWORDS or base in _PRONOUNS)) or (len(w) == 1 and w.isalpha()):
            continue
        out.append(stem(w))
    return out


def file_name_text(chunk: Any) -> str:
    """The chunk's file name as words, without its extension ("Northwind_Health_Plus_Benefits_Details.pdf"
    -> "Northwind Health Plus Benefits Details")."""
    name = (getattr(chunk, "filepath", "") or getattr(chunk, "source_id", "") or "").replace("\\", "/").rsplit("/", 1)[-1]
    return re.sub(r"[_\-.]+", " ", name.rsplit(".", 1)[0] if "." in name else name).strip()


def source_context(chunk: Any) -> str:
    """What a source is about besides its text: title, section and the file name's words (``file_name_text``)."""
    return " ".join(p for p in (chunk.title, chunk.section, file_name_text(chunk)) if p)


class ExtractiveAnswerer:
    """Answers from the sources' own sentences, citing them; works offline with no language model.

    - ``max_sentences``: at most this many units in the answer (default 5: the best unit, the second part's
      and up to three more sources, an answer of a few sentences as On Your Data's cite two to five sources);
    - ``min_support``: abstain (in scope) when the best unit's support is below it (default: 0.40
      lexical, 0.52 with an embedder, see ``LEXICAL_DEFAULTS`` / ``EMBEDDED_DEFAULTS``);
    - ``embedder``: optional; when given, question-unit cosines join the score and the support;
    - ``k1``, ``b``: the BM25 parameters of the lexical term;
    - ``weights``: ``(lexical, coverage, cosine, rank prior)`` of the unit score (default (0.5, 0.5, 1, 0.3)
      lexical, (0.5, 0.5, 1, 0.6) embedded);
    - ``support_weights``: ``(coverage, cosine)`` of the support (default (1, 0) lexical, (1, 0.3) embedded);
    - ``quantity_penalty``: subtracted from the score and support of a unit stating no quantity when the
      question asks for one (default 0 lexical, 0.15 embedded);
    - ``respell``: map question words the sources never use to their closest source word (typos);
    - ``part_support``: the second part of a two-part question gets its own unit when that unit's
      support is at least this fraction of ``min_support``;
    - ``boilerplate_penalty``: subtracted from the score (and support) of a boilerplate unit;
    - ``follow_ratio``: a further unit must score at least this fraction of the best;
    - ``chunk_weight``, ``chunk_pivot``: the support adds ``chunk_weight * (cosine - chunk_pivot)`` of the
      unit's chunk (the search's question-chunk cosine, free: hybrid search computed it);
    - ``context_weight``: how much a question term found only in the source's title or section counts;
    - ``max_missing``: abstain (in scope) when more than this share of the question's idf weight is in
      terms no source uses (default 0.4; above 1: never);
    - ``long_question``: a question of n terms above this needs only ``min_support`` x ``long_question`` / n
      (default 7, the longest question of the tune sets ``min_support`` was chosen on; 0: never scaled);
    - ``typed_units``: abstain (in scope) when the question asks for a kind of answer (``expected_answer_type``)
      and none of this many best units holds one (default 3; 0: never);
    - ``quote_prior``: the rank prior of the unit score when choosing what to quote, after the abstention
      check used ``weights[3]`` (default 0.3);
    - ``source_ratio``: besides the best unit (and the second part's), the best unit of each other source
      scoring at least this fraction of the best is quoted (default 0.7 lexical, 0.75 embedded; above 1: off);
    - ``compound_weight``: when choosing the quote, a unit's score gains this x the share of the question's
      hyphenated compounds it says whole (``indexers.text.compounds``: "in-network" is not "out-of-network");
    - ``max_embedded``: with an embedder, only this many units (the best by lexical evidence) are
      embedded; the others get the lowest cosine of those (a CPU embeds ~100 sentences in seconds).
    """

    extractive = True
    model_id = "extractive"
    chat_model = None

    def __init__(self, *, max_sentences: int = 5, min_support: float | None = None, embedder: Any = None,
                 k1: float = 1.2, b: float = 0.5, weights: tuple[float, float, float, float] | None = None,
                 support_weights: tuple[float, float] | None = None, boilerplate_penalty: float = 0.15,
                 follow_ratio: float = 0.6, max_embedded: int = 8,
                 context_weight: float = 0.5, chunk_weight: float = 0.0, chunk_pivot: float = 0.5,
                 respell: bool = True, quantity_penalty: float | None = None, part_support: float = 0.8,
                 max_missing: float | None = None, quote_prior: float | None = None,
                 count_missing_verbs: bool = False, typed_units: int = 3, long_question: int = 7,
                 source_ratio: float | None = None, compound_weight: float = 0.1) -> None:
        if max_sentences < 1:
            raise ValueError("max_sentences must be >= 1")
        defaults = EMBEDDED_DEFAULTS if embedder is not None else LEXICAL_DEFAULTS
        min_support = defaults["min_support"] if min_support is None else min_support
        support_weights = defaults["support_weights"] if support_weights is None else support_weights
        quantity_penalty = defaults["quantity_penalty"] if quantity_penalty is None else quantity_penalty
        max_missing = defaults["max_missing"] if max_missing is None else max_missing
        weights = defaults["weights"] if weights is None else weights
        quote_prior = defaults["quote_prior"] if quote_prior is None else quote_prior
        source_ratio = defaults["source_ratio"] if source_ratio is None else source_ratio
        self.max_sentences = max_sentences
        self.min_support = min_support
        self.embedder = embedder
        self.k1 = k1
        self.b = b
        self.weights = weights
        self.support_weights = support_weights
        self.boilerplate_penalty = boilerplate_penalty
        self.follow_ratio = follow_ratio
        self.max_embedded = max_embedded
        self.context_weight = context_weight
        self.chunk_weight = chunk_weight
        self.chunk_pivot = chunk_pivot
        self.respell = respell
        self.part_support = part_support
        self.quantity_penalty = quantity_penalty
        self.max_missing = max_missing
        self.quote_prior = quote_prior
        self.count_missing_verbs = count_missing_verbs
        self.typed_units = typed_units
        self.long_question = long_question
        self.source_ratio = source_ratio
        self.compound_weight = compound_weight

    # ------------------------------------------------------------------ scoring

    def score(self, question: str, sources: Sequence[tuple[int, str, str, float | None]]) -> list[ScoredUnit]:
        """Every unit of ``sources`` scored, best first.

        ``sources``: ``(n, context, content, chunk_cosine)``; context = title and section, chunk_cosine
        the search's question-chunk cosine (``SearchHit.vector_score``, None when unknown)."""
        chunk_cos = {n: c for n, _, _, c in sources}
        asked = question_terms(question)
        wanted = set(asked)
        rows: list[tuple[int, Unit, list[str], set[str]]] = []
        for n, context, content, _ in sources:
            ctx = set(terms(context))
            for u, base in _units_and_terms(content):
                ts = list(base)
                # "16 or older" answers "How old ...?": a comparative counts for the question's base word
                ts += [b for t in ts for b in comparative_bases(t) if b in wanted and b not in ts]
                rows.append((n, u, ts, ctx))
        vocabulary = {t for _, _, ts, ctx in rows for t in (*ts, *ctx)}
        q = respell(asked, vocabulary) if self.respell else list(dict.fromkeys(asked))
        if not rows or not q:
            return []
        N = len(rows)
        df = {t: sum(1 for _, _, ts, _ in rows if t in ts) for t in q}
        idf = {t: math.log(1 + (N - df[t] + 0.5) / (df[t] + 0.5)) + 0.1 for t in q}
        total = sum(idf.values())
        avgdl = sum(len(ts) for _, _, ts, _ in rows) / N or 1.0
        w_lex, w_cov, w_cos, w_prior = self.weights
        s_cov, s_cos = self.support_weights
        cos = None
        if self.embedder is not None and (w_cos or s_cos) and self.max_embedded:
            # only a lexical shortlist is embedded: embedding every unit of five chunks costs seconds on a CPU
            lexical = [sum(idf[t] for t in set(q) & set(ts)) for _, _, ts, _ in rows]
            short = sorted(range(N), key=lambda j: -lexical[j])[: self.max_embedded]
            vecs = np.asarray(self.embedder.embed_documents([rows[j][1].text for j in short]))
            sims = vecs @ np.asarray(self.embedder.embed_query(question))
            cos = np.full(N, float(sims.min()) if len(sims) else 0.0)
            cos[short] = sims
        ranks = sorted({n for n, *_ in rows})
        quantity = self.quantity_penalty and asks_quantity(question)
        # the idf share of the question's terms that no source uses anywhere (text, title, section, file
        # name), even respelt, leaving out words that only frame a question: "Which cloud provider ...?"
        # over sources that never say "cloud" asks about something they do not hold; nor the question's
        # verbs (the tagger, loaded on first use, runs only when some term is missing at all)
        unsaid = [t for t in q if t not in vocabulary and t not in GENERIC_QUESTION_WORDS]
        if unsaid and not self.count_missing_verbs:
            verbs = verb_stems(question)
            unsaid = [t for t in unsaid if t not in verbs]
        missing = sum(idf[t] for t in unsaid) / total
        out = []
        for j, (n, u, ts, ctx) in enumerate(rows):
            tf = {t: ts.count(t) for t in q}
            bm25 = sum(
                idf[t] * tf[t] * (self.k1 + 1) / (tf[t] + self.k1 * (1 - self.b + self.b * len(ts) / avgdl))
                for t in q if tf[t]
            ) / total
            own = {t for t in q if tf[t]}
            coverage = (sum(idf[t] for t in own) + self.context_weight * sum(idf[t] for t in q if t in ctx and t not in own)) / total
            c = None if cos is None else float(cos[j])
            prior = 1.0 / (1 + ranks.index(n))
            score = w_lex * bm25 + w_cov * coverage + w_prior * prior + (w_cos * c if c is not None else 0.0)
            support = s_cov * coverage + (s_cos * c if c is not None else 0.0)
            if self.chunk_weight and chunk_cos.get(n) is not None:
                support += self.chunk_weight * (chunk_cos[n] - self.chunk_pivot)
            if is_boilerplate(u.text) and not u.row:
                score -= self.boilerplate_penalty
                support -= self.boilerplate_penalty
            if quantity and not states_quantity(u.text):
                score -= self.quantity_penalty
                support -= self.quantity_penalty
            out.append(ScoredUnit(n, u, score, support, coverage, c, frozenset(own), missing, prior))
        out.sort(key=lambda x: (-x.score, x.source, x.unit.position))
        return out

    def support_needed(self, question: str) -> float:
        """The best unit's support below which the answerer abstains: ``min_support``, scaled by
        ``long_question`` / n for a question of n > ``long_question`` terms (one sentence rarely covers
        most of a long, many-part question's terms: "How does the prior authorization process ... impact
        the out-of-pocket costs ..., and what are the copayment expectations ...?")."""
        n = len(set(question_terms(question)))
        if self.long_question and n > self.long_question:
            return self.min_support * self.long_question / n
        return self.min_support

    def lacks_answer_type(self, question: str, scored: Sequence[ScoredUnit]) -> bool:
        """True when the question asks for a kind of answer (``expected_answer_type``) that none of the
        ``typed_units`` best units holds: "Which languages does member services support?" over sentences
        that name no language, "How many ...?" over sentences without a number. False when the question
        asks for no kind, ``typed_units`` is 0 or the entity recogniser is not installed."""
        kind = expected_answer_type(question) if self.typed_units > 0 else None
        if kind is None:
            return False
        found = [states_answer_type(u.text, kind, question) for u in scored[: self.typed_units]]
        return None not in found and not any(found)

    # ------------------------------------------------------------------ composing

    def pick(self, request: GroundedRequest) -> list[ScoredUnit]:
        """The units the answer quotes, in answer order; empty when it abstains."""
        sources = [(s.n, source_context(s.hit.chunk), s.content, s.hit.vector_score) for s in request.sources]
        scored = self.score(request.question, sources)
        if not scored:
            return []
        best = scored[0]
        if request.in_scope and (best.support < self.support_needed(request.question) or best.missing > self.max_missing
                                 or self.lacks_answer_type(request.question, scored)):
            return []
        delta = 0.0 if self.quote_prior is None else self.weights[3] - self.quote_prior
        asked = set(compounds(request.question)) if self.compound_weight else set()
        if delta or asked:
            # the abstention above judged the best unit under the full rank prior; the quote is chosen
            # with a weaker one, so a closer sentence of a lower-ranked source can win; and a unit saying
            # the question's own compounds ("in-network", which the terms read as "network", as they read
            # "out-of-network") scores ``compound_weight`` x the share of them it says
            def quoted(u: ScoredUnit) -> float:
                said = len(asked & set(compounds(u.text))) / len(asked) if asked else 0.0
                return u.score - delta * u.prior + self.compound_weight * said
            scored = sorted((replace(u, score=quoted(u)) for u in scored), key=lambda x: (-x.score, x.source, x.unit.position))
            best = scored[0]
        picked = [best]
        covered = set(best.covered)
        rankings = [scored]
        parts = question_parts(request.question)
        if len(parts) == 2 and self.max_sentences > 1:
            # a question that asks two things: the second part gets its own best unit (from any source)
            second = [u for u in self.score(parts[1], sources)
                      if not is_boilerplate(u.text) and u.text != best.text and u.support >= self.part_support * self.min_support]
            if second:
                picked.append(second[0])
                covered |= {t for t in second[0].covered}
                rankings.append(second)
        if self.source_ratio <= 1:
            picked = self._strong_sources(picked, rankings)
            covered = frozenset().union(*(p.covered for p in picked))
        for s in scored[1:]:
            if len(picked) >= self.max_sentences:
                break
            if s.score < self.follow_ratio * best.score:
                break
            if is_boilerplate(s.text) or any(s.text == p.text for p in picked):
                continue
            follows = any(s.source == p.source and s.unit.position == p.unit.position + 1 for p in picked)
            adds = bool(s.covered - covered)
            if follows or adds:
                picked.append(s)
                covered |= s.covered
        return picked

    def _strong_sources(self, picked: list[ScoredUnit], rankings: Sequence[Sequence[ScoredUnit]]) -> list[ScoredUnit]:
        """``picked`` and the best unit of each source not cited yet that scores at least ``source_ratio`` of the
        best unit, for the whole question and for its second part (``rankings``), the closest first, up to
        ``max_sentences``: an answer rests on every source that says it, not on the first one alone."""
        candidates = []
        for ranking in rankings:
            top = ranking[0].score if ranking else 0.0
            if top > 0:
                candidates += [(u.score / top, k, u) for k, u in enumerate(ranking) if u.score >= self.source_ratio * top]
        out = list(picked)
        done = {p.source for p in out}
        for _, _, u in sorted(candidates, key=lambda c: (-c[0], c[1])):
            if len(out) >= self.max_sentences:
                break
            if u.source in done or is_boilerplate(u.text) or any(u.text == p.text for p in out):
                continue
            done.add(u.source)
            out.append(u)
        return out

    def answer(self, request: GroundedRequest, **options: Any) -> Answer:
        picked = self.pick(request)
        base = dict(search_query=request.search_query, retrieved=tuple(request.retrieved()), extractive=True,
                    usage={"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}, request=request)
        if not picked:
            return Answer(content=NOT_AVAILABLE, citations=(), abstained=True, **base)
        by_n = {s.n: s.citation() for s in request.sources}
        number: dict[tuple[int, int | None], int] = {}
        citations: list[Citation] = []
        claims: list[Claim] = []
        parts: list[str] = []
        for s in picked:
            cited = by_n[s.source]
            page = cited.page_at(s.unit.start)
            key = (s.source, page)
            if key not in number:
                number[key] = len(citations) + 1
                citations.append(cited.at_page(page))
            claims.append(Claim(text=s.text, sources=(number[key],), pages=(page,)))
            parts.append(f"{s.text} [doc{number[key]}]")
        return Answer(content=f"{PREFIX} " + " ".join(parts), citations=tuple(citations), claims=tuple(claims),
                      abstained=False, **base)

    def stream(self, request: GroundedRequest, **options: Any) -> Iterator[str]:
        """The answer's text in pieces, its markers numbered as the prompt's sources (``[docN]`` = ``sources[N-1]``)."""
        picked = self.pick(request)
        text = NOT_AVAILABLE if not picked else f"{PREFIX} " + " ".join(f"{s.text} [doc{s.source}]" for s in picked)
        yield from re.findall(r"\S+\s*", text)
