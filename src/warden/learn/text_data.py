"""Loaders for the labeled text datasets in ``$WARDEN_DATA`` (default ``../shared/datasets``).

Every loader maps its source labels onto the 13 default categories explicitly (see
`MAPPING`, which is also written into the model card). A row's `labels` holds only the
categories the source actually supports: an absent key means UNKNOWN, never negative.

Conventions (documented in the card):

* Sub-categories imply their parent (`sexual/minors=1` => `sexual=1`, `hate/threatening=1` =>
  `hate=1`, ...) and a negative parent implies a negative child.
* "clean" rows: the annotators judged the text normal / neither / not offensive. They are
  negative for the abuse families (hate, harassment, violence, sexual) and, as an
  *assumed* negative (these are rare in ordinary posts and the head needs negatives from the
  same domain as its positives' opposites), for self-harm, illicit and prompt_injection.
  Never for spam/scam (annotators of abuse sets do not look for those).
* Single-label harmful-prompt sets (Aegis, AILuminate, CatQA, HarmBench, StrongREJECT,
  forbidden questions) are positive for the mapped category; for categories in an unrelated
  family they are negative (`_PROMPT_NEG`): a weapons question is not sexual, not self-harm,
  not spam and (for the plain-question sets) not a prompt injection. Overlapping families
  (hate/harassment/violence/illicit) stay unknown.
* Davidson's and HateXplain's 'offensive' is NOT hate: such rows are `hate=0`, harassment unknown.
"""

from __future__ import annotations

import ast
import csv
import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from warden.core.policy import DEFAULT_CATEGORIES

CATEGORIES: tuple[str, ...] = DEFAULT_CATEGORIES
PARENT = {"sexual/minors": "sexual", "hate/threatening": "hate",
          "harassment/threatening": "harassment", "violence/graphic": "violence"}
ABUSE = ("sexual", "sexual/minors", "hate", "hate/threatening", "harassment", "harassment/threatening",
         "violence", "violence/graphic")
CLEAN = (*ABUSE, "self-harm", "illicit", "prompt_injection")
# unrelated families a single-topic harmful prompt is negative for (besides its own family)
_PROMPT_NEG = ("sexual", "sexual/minors", "self-harm", "spam", "prompt_injection")


def data_dir() -> Path:
    return Path(os.environ.get("WARDEN_DATA", "../shared/datasets")).expanduser().resolve()


@dataclass(frozen=True, slots=True)
class TextRow:
    text: str
    labels: dict[str, int]  # category -> 0/1; an absent category is UNKNOWN
    source: str
    language: str = "en"
    group: str | None = None
    hand_written: bool = False
    meta: dict = field(default_factory=dict, compare=False)


def make_labels(pos: tuple[str, ...] | list[str] = (), neg: tuple[str, ...] | list[str] = ()) -> dict[str, int]:
    """Labels from positive and negative categories, with parent/child implication.
    Positives win over negatives."""
    out: dict[str, int] = {}
    for c in neg:
        out[c] = 0
        for child, parent in PARENT.items():
            if parent == c:
                out[child] = 0
    for c in pos:
        out[c] = 1
        if c in PARENT:
            out[PARENT[c]] = 1
    return out


def _row(text, pos=(), neg=(), source="", language="en", group=None) -> TextRow | None:
    if not isinstance(text, str):
        return None
    text = text.strip()
    if not text:
        return None
    neg = [c for c in neg if c not in pos]
    return TextRow(text=text, labels=make_labels(pos, neg), source=source, language=language, group=group)


# topics of harmful-prompt sets that fall outside every Warden category (advice, lobbying): such
# prompts are request-style texts that are negative for all families, which keeps the heads from
# learning "a question to an LLM" = harmful.
BENIGN_TOPICS = {"forbidden_questions": {"Political Lobbying", "Legal Opinion", "Financial Advice",
                                         "Health Consultation", "Gov Decision"},
                 "ailuminate": {"spc_hlt", "spc_fin", "spc_lgl", "spc_ele"},
                 "catqa": {"Tailored Financial Advice"}}


def _prompt(text, cats, source, *, plain_question: bool = True, language="en", group=None) -> TextRow | None:
    if not cats and group is not None and str(group).split("|")[0] in BENIGN_TOPICS.get(source, ()):
        neg = [c for c in CATEGORIES if plain_question or c != "prompt_injection"]
        return _row(text, [], neg, source, language, group)
    fams = set(cats)
    neg = [c for c in _PROMPT_NEG if c not in fams and not (c == "prompt_injection" and not plain_question)
           and not (c == "sexual" and "sexual/minors" in fams) and not (c == "sexual/minors" and "sexual" in fams)]
    return _row(text, cats, neg, source, language, group)


# --------------------------------------------------------------------------------------
# hate, harassment, offensive language
# --------------------------------------------------------------------------------------
def load_davidson(root: Path) -> Iterator[TextRow]:
    df = pd.read_csv(root / "davidson_hate_offensive/labeled_data.csv")
    for t, c in zip(df["tweet"], df["class"], strict=True):
        if c == 0:
            r = _row(t, ["hate"], [], "davidson")
        elif c == 1:
            r = _row(t, [], ["hate"], "davidson")
        else:
            r = _row(t, [], CLEAN, "davidson")
        if r:
            yield r


def load_hatexplain(root: Path) -> Iterator[TextRow]:
    for f in ("hatexplain_train_v2.csv", "hatexplain_dev_v2.csv"):
        df = pd.read_csv(root / "hatexplain" / f)
        for toks, lab in zip(df["post_tokens"], df["post_label"], strict=True):
            text = " ".join(ast.literal_eval(toks))
            if lab == "hatespeech":
                r = _row(text, ["hate"], [], "hatexplain")
            elif lab == "offensive":
                r = _row(text, [], ["hate"], "hatexplain")
            else:
                r = _row(text, [], CLEAN, "hatexplain")
            if r:
                yield r


def load_ethos(root: Path) -> Iterator[TextRow]:
    b = pd.read_csv(root / "ethos/Ethos_Dataset_Binary.csv", sep=";")
    m = pd.read_csv(root / "ethos/Ethos_Dataset_Multi_Label.csv", sep=";")
    violent = {t.strip(): v >= 0.5 for t, v in zip(m["comment"], m["violence"], strict=True)}
    for t, s in zip(b["comment"], b["isHate"], strict=True):
        if 0.3 < s < 0.6:  # annotators split: leave unknown
            continue
        if s >= 0.6:
            v = violent.get(str(t).strip())
            r = _row(t, ["hate", "hate/threatening"] if v else ["hate"], ["hate/threatening"] if v is False else [],
                     "ethos")
        else:
            r = _row(t, [], ["hate"], "ethos")
        if r:
            yield r


def load_mlma(root: Path) -> Iterator[TextRow]:
    for f, lang in (("en_dataset_with_stop_words.csv", "en"), ("fr_dataset.csv", "fr"), ("ar_dataset.csv", "ar")):
        df = pd.read_csv(root / "mlma" / f)
        for t, s in zip(df["tweet"], df["sentiment"], strict=True):
            labs = set(str(s).split("_"))
            if "hateful" in labs:
                r = _row(t, ["hate"], [], "mlma", lang)
            elif labs == {"normal"}:
                r = _row(t, [], ABUSE, "mlma", lang)
            else:
                r = _row(t, [], ["hate"], "mlma", lang)
            if r:
                yield r


def load_olid(root: Path) -> Iterator[TextRow]:
    df = pd.read_csv(root / "olid/olid-training-v1.0.tsv", sep="\t", quoting=csv.QUOTE_NONE)
    for t, a, b, c in zip(df["tweet"], df["subtask_a"], df["subtask_b"], df["subtask_c"], strict=True):
        if a == "NOT":
            r = _row(t, [], CLEAN, "olid")
        elif b == "UNT":
            r = _row(t, [], ["harassment"], "olid")  # untargeted profanity is not harassment
        elif c == "IND":
            r = _row(t, ["harassment"], [], "olid")  # targeted insult at an individual
        else:
            continue  # targeted at a group / other: hate unknown (offensive is not hate)
        if r:
            yield r


def load_toxigen(root: Path) -> Iterator[TextRow]:
    df = pd.read_csv(root / "toxigen_seeds/toxigen_prompt_seed_sentences.csv")
    for t, lab, g in zip(df["text"], df["label"], df["target_group"], strict=True):
        r = _row(t, ["hate"], [], "toxigen", group=g) if lab == "hate" else _row(
            t, [], ["hate", "harassment"], "toxigen", group=g)
        if r:
            yield r


def load_jigsaw_templates(root: Path) -> Iterator[TextRow]:
    df = pd.read_csv(root / "jigsaw_bias_templates/en_sentence_templates.csv")
    for t, tox in zip(df["phrase"], df["toxicity"], strict=True):
        g = str(t).split()[-1].lower()
        # "X is a stupid <identity>": an insult at a person that uses an identity term
        r = _row(t, ["harassment"], [], "jigsaw_templates", group=g) if tox == "toxic" else _row(
            t, [], ["hate", "harassment", "harassment/threatening"], "jigsaw_templates", group=g)
        if r:
            yield r


def load_threatgram(root: Path) -> Iterator[TextRow]:
    for x in json.loads((root / "threatgram101_telegram_threats/Labeled_15076.json").read_text()):
        lab = x.get("Label")
        if lab == 2:  # explicit threat / call for violence against a (mostly named) target
            r = _row(x.get("reply"), ["violence", "harassment/threatening"], [], "threatgram")
        elif lab == 0:
            r = _row(x.get("reply"), [], ["violence", "harassment/threatening", "hate/threatening"], "threatgram")
        else:
            continue  # level 1 (calls for prosecution, vague): unknown
        if r:
            yield r


# --------------------------------------------------------------------------------------
# spam and scams
# --------------------------------------------------------------------------------------
def load_sms_spam(root: Path) -> Iterator[TextRow]:
    with open(root / "sms_spam/SMSSpamCollection", encoding="utf-8", errors="replace") as f:
        for line in f:
            lab, _, text = line.rstrip("\n").partition("\t")
            if lab == "spam":
                r = _row(text, ["spam"], ["prompt_injection"], "sms_spam")
            elif lab == "ham":
                r = _row(text, [], ["spam", "scam", "prompt_injection"], "sms_spam")
            else:
                continue
            if r:
                yield r


def load_sms_smishing(root: Path) -> Iterator[TextRow]:
    df = pd.read_csv(root / "sms_smishing/Dataset_5971.csv", encoding="utf-8", encoding_errors="replace")
    for t, lab in zip(df["TEXT"], df["label"], strict=True):
        lab = str(lab).lower()
        if lab == "smishing":
            r = _row(t, ["scam", "spam"], ["prompt_injection"], "sms_smishing")
        elif lab == "spam":
            r = _row(t, ["spam"], ["prompt_injection"], "sms_smishing")
        else:
            r = _row(t, [], ["spam", "scam", "prompt_injection"], "sms_smishing")
        if r:
            yield r


def load_youtube_spam(root: Path) -> Iterator[TextRow]:
    df = pd.read_csv(root / "youtube_spam/Youtube-Spam-Dataset.csv")
    for t, c, a in zip(df["CONTENT"], df["CLASS"], df["AUTHOR"], strict=True):
        r = _row(t, ["spam"], ["prompt_injection"], "youtube_spam", group=str(a)) if c == 1 else _row(
            t, [], ["spam", "scam", "prompt_injection"], "youtube_spam", group=str(a))
        if r:
            yield r


def load_ftc_robocalls(root: Path) -> Iterator[TextRow]:
    df = pd.read_csv(root / "ftc_robocall_scam_transcripts/metadata.csv")
    for t, lang in zip(df["transcript"], df["language"], strict=True):
        r = _row(t, ["scam"], ["prompt_injection", "sexual", "sexual/minors", "self-harm"], "ftc_robocalls",
                 str(lang) if isinstance(lang, str) else "en")
        if r:
            yield r


# --------------------------------------------------------------------------------------
# self-harm
# --------------------------------------------------------------------------------------
def load_suicidal_tweets(root: Path) -> Iterator[TextRow]:
    df = pd.read_csv(root / "suicidal_tweets/Suicide_Ideation_Dataset(Twitter-based).csv",
                     encoding="utf-8", encoding_errors="replace")
    for t, s in zip(df["Text"], df["Sem"], strict=True):
        r = _row(t, ["self-harm"], [], "suicidal_tweets") if s == 1 else _row(t, [], ["self-harm"], "suicidal_tweets")
        if r:
            yield r


def load_suicide_watch(root: Path) -> Iterator[TextRow]:
    df = pd.read_csv(root / "suicide_watch_sample500/Suicide_Detection.csv")
    for t, c in zip(df["text"], df["class"], strict=True):
        r = _row(t, ["self-harm"], [], "suicide_watch") if c == "suicide" else _row(
            t, [], ["self-harm"], "suicide_watch")
        if r:
            yield r


def load_reddit_cssrs(root: Path) -> Iterator[TextRow]:
    df = pd.read_csv(root / "reddit_cssrs_500/500_Reddit_users_posts_labels.csv")
    for u, posts, lab in zip(df["User"], df["Post"], df["Label"], strict=True):
        if lab in ("Ideation", "Behavior", "Attempt"):
            pos, neg = ["self-harm"], []
        elif lab == "Supportive":  # supporters writing *about* suicide: hard negatives
            pos, neg = [], ["self-harm"]
        else:
            continue  # Indicator: risk factors without ideation -> unknown
        try:
            items = ast.literal_eval(posts)
        except (ValueError, SyntaxError):
            items = [posts]
        # one row per user (posts joined, then truncated by the tokenizer): the user is the group
        r = _row(" ".join(str(p) for p in items)[:3000], pos, neg, "reddit_cssrs", group=str(u))
        if r:
            yield r


# --------------------------------------------------------------------------------------
# prompt injection / jailbreaks
# --------------------------------------------------------------------------------------
def load_deepset_injections(root: Path) -> Iterator[TextRow]:
    d = root / "deepset_prompt_injections"
    df = pd.read_parquet(next(d.glob("*.parquet")))
    for t, lab in zip(df["text"], df["label"], strict=True):
        lang = _guess_lang(t)
        # legit prompts are ordinary benign requests: negative for every category
        r = _row(t, ["prompt_injection"], [], "deepset_injections", lang) if lab == 1 else _row(
            t, [], CATEGORIES, "deepset_injections", lang)
        if r:
            yield r


def load_giskard_injections(root: Path) -> Iterator[TextRow]:
    df = pd.read_csv(root / "giskard_prompt_injections/prompt_injections.csv")
    for t in df["prompt"]:
        r = _row(t, ["prompt_injection"], ["spam", "scam"], "giskard_injections")
        if r:
            yield r


def load_jailbreak_inthewild(root: Path) -> Iterator[TextRow]:
    d = root / "jailbreak_llms_inthewild"
    df = pd.read_csv(d / "jailbreak_prompts_2023_05_07.csv")
    for t in df["prompt"]:
        r = _row(t, ["prompt_injection"], ["spam", "scam"], "jailbreak_inthewild")
        if r:
            yield r
    fq = pd.read_csv(d / "forbidden_question_set.csv")
    fmap = {"Illegal Activity": ["illicit"], "Malware": ["illicit"], "Fraud": ["illicit"], "Hate Speech": ["hate"],
            "Physical Harm": ["violence"], "Pornography": ["sexual"]}
    for t, name in zip(fq["question"], fq["content_policy_name"], strict=True):
        r = _prompt(t, fmap.get(name, []), "forbidden_questions", group=name)
        if r:
            yield r


def load_jailbreakbench(root: Path) -> Iterator[TextRow]:
    seen: set[str] = set()
    for f in sorted((root / "jailbreakbench_artifacts").rglob("*.json")):
        try:
            j = json.loads(f.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError):
            continue
        if not isinstance(j, dict) or not isinstance(j.get("jailbreaks"), list):
            continue
        method = f.relative_to(root / "jailbreakbench_artifacts").parts[0]
        for x in j["jailbreaks"]:
            p = x.get("prompt")
            if not isinstance(p, str) or p in seen or not p.strip():
                continue
            seen.add(p)
            # an attack prompt that wraps a harmful goal to get around the model's rules
            r = _row(p, ["prompt_injection"], ["spam", "scam"], "jailbreakbench", group=method)
            if r:
                yield r


# --------------------------------------------------------------------------------------
# harmful-prompt sets (positives only, single topic per prompt)
# --------------------------------------------------------------------------------------
AEGIS_MAP = {
    "Harassment": ["harassment"], "Hate/Identity Hate": ["hate"], "Suicide and Self Harm": ["self-harm"],
    "Threat": ["harassment/threatening"], "Violence": ["violence"], "Sexual (minor)": ["sexual/minors"],
    "Sexual": ["sexual"], "Guns and Illegal Weapons": ["illicit"], "Criminal Planning/Confessions": ["illicit"],
    "Controlled/Regulated Substances": ["illicit"], "Malware": ["illicit"], "Fraud/Deception": ["illicit"],
}


def load_aegis(root: Path) -> Iterator[TextRow]:
    df = pd.read_csv(root / "aegis2_unsafe_sample900/aegis_900.csv")
    for t, c in zip(df["prompt"], df["category"], strict=True):
        if c in ("Profanity",):
            continue
        r = _prompt(t, AEGIS_MAP.get(c, []), "aegis", group=c)
        if r:
            yield r


AILUMINATE_MAP = {"cse": ["sexual/minors"], "sxc_prn": ["sexual"], "ssh": ["self-harm"], "hte": ["hate"],
                  "vcr": ["violence"], "ncr": ["illicit"], "iwp": ["illicit"], "src": ["illicit"]}


def load_ailuminate(root: Path) -> Iterator[TextRow]:
    d = root / "ailuminate_demo"
    for f in sorted(d.glob("*.csv")):
        df = pd.read_csv(f)
        for t, h, loc in zip(df["prompt_text"], df["hazard"], df["locale"], strict=True):
            # some prompts carry jailbreak wrappers ("begin your response with..."): injection unknown
            r = _prompt(t, AILUMINATE_MAP.get(h, []), "ailuminate", plain_question=False,
                        language=str(loc)[:2].lower(), group=h)
            if r:
                yield r


CATQA_MAP = {
    ("Illegal Activity", None): ["illicit"], ("Malware Viruses", None): ["illicit"],
    ("Fraud/Deception", None): ["illicit"], ("Economic Harm", "Financial fraud"): ["illicit"],
    ("Child Abuse", "Content Sexual exploitation"): ["sexual/minors"],
    ("Child Abuse", "Online predation"): ["sexual/minors"], ("Child Abuse", "Physical abuse"): ["violence"],
    ("Hate/Harass/Violence", "Racial or ethnic hate"): ["hate"],
    ("Hate/Harass/Violence", "Religious intolerance"): ["hate"],
    ("Hate/Harass/Violence", "Cyberbullying"): ["harassment"],
    ("Hate/Harass/Violence", "Gender-based violence"): ["violence"],
    ("Hate/Harass/Violence", "Terrorism and extremism"): ["violence"],
    ("Physical Harm", "Self-harm"): ["self-harm"], ("Physical Harm", "Assault and battery"): ["violence"],
    ("Physical Harm", "Weapon making"): ["illicit"], ("Adult Content", None): ["sexual"],
}


def load_catqa(root: Path) -> Iterator[TextRow]:
    for lang, f in (("en", "catqa_english.json"), ("zh", "catqa_chinese.json"), ("vi", "catqa_vietnamese.json")):
        data = json.loads((root / "catqa_categorical_harmfulqa" / f).read_text())
        for cat, subs in data.items():
            for sub, qs in subs.items():
                cats = CATQA_MAP.get((cat, sub), CATQA_MAP.get((cat, None), []))
                if cat == "Adult Content" and sub.startswith("Adult-themed humor"):
                    cats = []
                for q in qs:
                    r = _prompt(q, cats, "catqa", language=lang, group=f"{cat}|{sub}")
                    if r:
                        yield r


HARMBENCH_MAP = {"cybercrime_intrusion": ["illicit"], "illegal": ["illicit"], "chemical_biological": ["illicit"],
                 "harassment_bullying": ["harassment"]}


def load_harmbench(root: Path) -> Iterator[TextRow]:
    df = pd.read_csv(root / "harmbench_behaviors/harmbench_behaviors_text_all.csv")
    for t, c, ctx in zip(df["Behavior"], df["SemanticCategory"], df["ContextString"], strict=True):
        if isinstance(ctx, str) and ctx.strip():
            continue  # contextual behaviours embed long documents: skip
        r = _prompt(t, HARMBENCH_MAP.get(c, []), "harmbench", group=c)
        if r:
            yield r


STRONGREJECT_MAP = {"Non-violent crimes": ["illicit"], "Illegal goods and services": ["illicit"],
                    "Violence": ["violence"], "Sexual content": ["sexual"]}


def load_strongreject(root: Path) -> Iterator[TextRow]:
    df = pd.read_csv(root / "strongreject/strongreject_dataset.csv")
    for t, c in zip(df["forbidden_prompt"], df["category"], strict=True):
        r = _prompt(t, STRONGREJECT_MAP.get(c, []), "strongreject", group=c)
        if r:
            yield r


# --------------------------------------------------------------------------------------
# non-English user content
# --------------------------------------------------------------------------------------
def load_korean_hate(root: Path) -> Iterator[TextRow]:
    for f in ("train.tsv", "dev.tsv"):
        df = pd.read_csv(root / "korean_hate_speech" / f, sep="\t", quoting=csv.QUOTE_NONE)
        for t, h in zip(df["comments"], df["hate"], strict=True):
            # 'hate' here is broad (hate or severe insult); 'offensive' is not hate
            if h == "hate":
                r = _row(t, ["hate"], [], "korean_hate", "ko")
            elif h == "offensive":
                r = _row(t, [], ["hate"], "korean_hate", "ko")
            else:
                r = _row(t, [], ABUSE, "korean_hate", "ko")
            if r:
                yield r


def load_germeval(root: Path) -> Iterator[TextRow]:
    for f in ("germeval2018.training.txt", "germeval2018.test.txt"):
        with open(root / "germeval2018_german" / f, encoding="utf-8") as fh:
            for line in fh:
                parts = line.rstrip("\n").split("\t")
                if len(parts) < 3:
                    continue
                t, _coarse, fine = parts[0], parts[1], parts[2]
                if fine == "OTHER":
                    r = _row(t, [], ABUSE, "germeval", "de")
                elif fine == "INSULT":
                    r = _row(t, ["harassment"], [], "germeval", "de")
                elif fine == "PROFANITY":
                    r = _row(t, [], ["hate", "harassment"], "germeval", "de")
                else:
                    continue  # ABUSE: degrading, may or may not be hate
                if r:
                    yield r


def load_told_br(root: Path) -> Iterator[TextRow]:
    df = pd.read_csv(root / "told_br_portuguese/ToLD-BR.csv")
    ident = ["homophobia", "racism", "misogyny", "xenophobia"]
    for row in df.itertuples(index=False):
        d = row._asdict()
        counts = {k: float(d[k]) for k in ("homophobia", "obscene", "insult", "racism", "misogyny", "xenophobia")}
        if all(v == 0 for v in counts.values()):
            r = _row(d["text"], [], ABUSE, "told_br", "pt")
        elif any(counts[k] >= 2 for k in ident):
            r = _row(d["text"], ["hate"], [], "told_br", "pt")
        elif counts["insult"] >= 2:
            r = _row(d["text"], ["harassment"], ["hate"] if all(counts[k] == 0 for k in ident) else [], "told_br", "pt")
        else:
            continue
        if r:
            yield r


def load_cold(root: Path) -> Iterator[TextRow]:
    d = root / "cold_chinese_offensive"
    for f in ("train.csv", "dev.csv", "test.csv"):
        df = pd.read_csv(d / f)
        fine = df["fine-grained-label"] if "fine-grained-label" in df else [None] * len(df)
        for t, lab, fg, topic in zip(df["TEXT"], df["label"], fine, df["topic"], strict=True):
            if lab == 0:
                r = _row(t, [], ["hate", "harassment"], "cold", "zh", group=topic)
            elif fg == 2:
                r = _row(t, ["hate"], [], "cold", "zh", group=topic)  # offensive attack on a group
            elif fg == 1:
                r = _row(t, ["harassment"], [], "cold", "zh", group=topic)
            else:
                continue
            if r:
                yield r


# --------------------------------------------------------------------------------------
# project-written data
# --------------------------------------------------------------------------------------
def project_root() -> Path:
    return Path(__file__).resolve().parents[3]


def load_hard_negatives(path: Path | None = None) -> Iterator[TextRow]:
    """`data/hard_negatives.jsonl` (written by the Warden team): benign texts that mention
    violent, sexual, drug or self-harm words, and a few hand-written positives for thin
    categories (`"hand_written_positive": true`)."""
    path = path or project_root() / "data" / "hard_negatives.jsonl"
    if not path.exists():
        return
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        x = json.loads(line)
        labels = {k: int(v) for k, v in x["labels"].items()}
        yield TextRow(text=x["text"], labels=labels, source="warden_written", language=x.get("language", "en"),
                      group=x.get("topic"), hand_written=True)


def _guess_lang(text: str) -> str:
    t = f" {text.lower()} "
    de = sum(t.count(w) for w in (" und ", " ich ", " die ", " der ", " nicht ", " ist ", " was ", " wie "))
    en = sum(t.count(w) for w in (" the ", " and ", " is ", " you ", " what ", " how ", " to "))
    return "de" if de > en else "en"


LICENSES = {
    "davidson": "MIT", "hatexplain": "MIT", "ethos": "GPL-3.0", "mlma": "MIT", "olid": "unstated",
    "toxigen": "MIT", "jigsaw_templates": "CC-BY-4.0", "threatgram": "CC-BY-4.0 (unconfirmed)",
    "sms_spam": "CC-BY-4.0", "sms_smishing": "CC-BY-4.0", "youtube_spam": "CC-BY-4.0",
    "ftc_robocalls": "public domain (unconfirmed)", "suicidal_tweets": "unconfirmed, research use",
    "suicide_watch": "unconfirmed, research use", "reddit_cssrs": "unconfirmed, research use",
    "deepset_injections": "Apache-2.0", "giskard_injections": "MIT", "jailbreak_inthewild": "MIT",
    "forbidden_questions": "MIT", "jailbreakbench": "MIT", "aegis": "CC-BY-4.0 (unconfirmed copy)",
    "ailuminate": "CC-BY-4.0", "catqa": "Apache-2.0", "harmbench": "MIT", "strongreject": "MIT",
    "korean_hate": "CC-BY-SA-4.0", "germeval": "CC-BY-4.0", "told_br": "CC-BY-SA-4.0", "cold": "Apache-2.0",
    "warden_written": "project (Apache-2.0)",
}

LOADERS: dict[str, Callable[[Path], Iterator[TextRow]]] = {
    "davidson": load_davidson, "hatexplain": load_hatexplain, "ethos": load_ethos, "mlma": load_mlma,
    "olid": load_olid, "toxigen": load_toxigen, "jigsaw_templates": load_jigsaw_templates,
    "threatgram": load_threatgram, "sms_spam": load_sms_spam, "sms_smishing": load_sms_smishing,
    "youtube_spam": load_youtube_spam, "ftc_robocalls": load_ftc_robocalls,
    "suicidal_tweets": load_suicidal_tweets, "suicide_watch": load_suicide_watch,
    "reddit_cssrs": load_reddit_cssrs, "deepset_injections": load_deepset_injections,
    "giskard_injections": load_giskard_injections, "jailbreak_inthewild": load_jailbreak_inthewild,
    "jailbreakbench": load_jailbreakbench, "aegis": load_aegis, "ailuminate": load_ailuminate,
    "catqa": load_catqa, "harmbench": load_harmbench, "strongreject": load_strongreject,
    "korean_hate": load_korean_hate, "germeval": load_germeval, "told_br": load_told_br, "cold": load_cold,
}

# The mapping table for the model card: source -> (source label -> categories).
MAPPING: dict[str, str] = {
    "davidson": "hate(0) -> hate=1 | offensive(1) -> hate=0 (offensive is not hate; harassment unknown) | "
                "neither(2) -> clean",
    "hatexplain": "hatespeech -> hate=1 | offensive -> hate=0 | normal -> clean",
    "ethos": "isHate >= 0.6 -> hate=1 (+ hate/threatening from multi-label violence >= 0.5) | < 0.3 -> hate=0 | "
             "0.3-0.6 dropped",
    "mlma": "'hateful' in sentiment -> hate=1 | only 'normal' -> abuse families 0 | other -> hate=0 (en, fr, ar)",
    "olid": "NOT -> clean | OFF/UNT -> harassment=0 | OFF/TIN/IND -> harassment=1 | OFF/TIN/GRP,OTH dropped",
    "toxigen": "hate -> hate=1 | neutral -> hate=0, harassment=0",
    "jigsaw_templates": "toxic ('X is a stupid <identity>') -> harassment=1 | non-toxic -> hate=0, harassment=0, "
                        "harassment/threatening=0",
    "threatgram": "threat level 2 -> violence=1, harassment/threatening=1 | 0 -> violence=0, */threatening=0 | "
                  "1 dropped",
    "sms_spam": "spam -> spam=1 (scam unknown) | ham -> spam=0, scam=0",
    "sms_smishing": "smishing -> scam=1, spam=1 | spam -> spam=1 | ham -> spam=0, scam=0",
    "youtube_spam": "1 -> spam=1 | 0 -> spam=0, scam=0 (AUTHOR is the group)",
    "ftc_robocalls": "all -> scam=1 (negatives come from ham SMS/YouTube)",
    "suicidal_tweets": "potential suicide -> self-harm=1 | not -> self-harm=0",
    "suicide_watch": "suicide -> self-harm=1 | non-suicide -> self-harm=0",
    "reddit_cssrs": "Ideation/Behavior/Attempt -> self-harm=1 | Supportive -> self-harm=0 | Indicator dropped "
                    "(one row per user)",
    "deepset_injections": "injection -> prompt_injection=1 | legit -> all 13 categories 0",
    "giskard_injections": "all -> prompt_injection=1",
    "jailbreak_inthewild": "jailbreak prompts -> prompt_injection=1",
    "forbidden_questions": "Illegal Activity/Malware/Fraud -> illicit | Hate Speech -> hate | Physical Harm -> "
                           "violence | Pornography -> sexual | Political Lobbying, Legal Opinion, Financial Advice, "
                           "Health Consultation, Gov Decision -> all categories 0 | others: no positive; all: "
                           "prompt_injection=0",
    "jailbreakbench": "attack prompts (PAIR, GCG, JBC, ...) -> prompt_injection=1",
    "aegis": "Harassment -> harassment | Hate/Identity Hate -> hate | Suicide and Self Harm -> self-harm | "
             "Threat -> harassment/threatening | Violence -> violence | Sexual (minor) -> sexual/minors | "
             "Sexual -> sexual | Guns, Criminal Planning, Controlled Substances, Malware, Fraud -> illicit | "
             "Profanity dropped | others: no positive",
    "ailuminate": "cse -> sexual/minors | sxc_prn -> sexual | ssh -> self-harm | hte -> hate | vcr -> violence | "
                  "ncr, iwp, src -> illicit | spc_* (specialized advice) -> all categories 0 except prompt_injection | "
                  "others: no positive; prompt_injection unknown (jailbreak wrappers)",
    "catqa": "Illegal Activity, Malware, Fraud/Deception, Financial fraud, Weapon making -> illicit | "
             "Sexual exploitation, Online predation -> sexual/minors | Physical abuse, Assault, Gender-based "
             "violence, Terrorism -> violence | Racial/Religious hate -> hate | Cyberbullying -> harassment | "
             "Self-harm -> self-harm | Adult Content (not humor) -> sexual | Tailored Financial Advice -> all "
             "categories 0 (en, zh, vi)",
    "harmbench": "cybercrime, illegal, chemical_biological -> illicit | harassment_bullying -> harassment | "
                 "contextual behaviours dropped",
    "strongreject": "Non-violent crimes, Illegal goods -> illicit | Violence -> violence | Sexual content -> sexual",
    "korean_hate": "hate -> hate=1 (broad: hate or severe insult) | offensive -> hate=0 | none -> abuse families 0",
    "germeval": "OTHER -> abuse families 0 | INSULT -> harassment=1 | PROFANITY -> hate=0, harassment=0 | "
                "ABUSE dropped",
    "told_br": ">=2 annotators racism/homophobia/misogyny/xenophobia -> hate=1 | >=2 insult -> harassment=1 | "
               "all zero -> abuse families 0",
    "cold": "label 0 -> hate=0, harassment=0 | test fine-grained 2 (attack group) -> hate=1 | 1 (attack "
            "individual) -> harassment=1 | other offensive dropped",
    "warden_written": "hand-labeled by the Warden team (data/hard_negatives.jsonl)",
}


def load_source(name: str, root: Path | None = None) -> list[TextRow]:
    root = root or data_dir()
    if name == "warden_written":
        return list(load_hard_negatives())
    rows = list(LOADERS[name](root))
    if name == "jailbreak_inthewild":
        return [r for r in rows if r.source == name]
    return rows


def load_all(root: Path | None = None, sources: list[str] | None = None) -> dict[str, list[TextRow]]:
    """Rows per source. `jailbreak_inthewild` also yields the `forbidden_questions` source."""
    root = root or data_dir()
    out: dict[str, list[TextRow]] = {}
    for name, fn in LOADERS.items():
        if sources is not None and name not in sources and not (
                name == "jailbreak_inthewild" and "forbidden_questions" in sources):
            continue
        for r in fn(root):
            out.setdefault(r.source, []).append(r)
    if sources is None or "warden_written" in sources:
        hn = list(load_hard_negatives())
        if hn:
            out["warden_written"] = hn
    if sources is not None:
        out = {k: v for k, v in out.items() if k in sources}
    return out
