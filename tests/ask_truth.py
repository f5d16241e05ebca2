"""The question set of `vcf-agent ask` (tests/data/ask_questions.yaml) and bcftools' figures for its answers.

Every figure an answer states (vcf_agent.ask.planner.Figure: name, value, the call it comes from,
the variant or sample it is about) is recomputed here from the input VCFs with bcftools
(split with `norm -m -any`, as the stores are), from the call's arguments: the filters
become `bcftools view -r/-s` and `query -i` expressions, zygosities are read from the GT
strings bcftools prints.
"""

from __future__ import annotations

import json
import re
import time
from collections import Counter
from pathlib import Path

import yaml

from helpers import TEST_FILES

#: The question sets: the example and the query fixture's stores; two more real cohorts (hc, hail).
QUESTION_FILES = (TEST_FILES / "ask_questions.yaml", TEST_FILES / "ask_questions_cohorts.yaml")


def questions(store: str) -> list[dict]:
    return [item for path in QUESTION_FILES for item in yaml.safe_load(path.read_text()) if item["store"] == store]


def planned(calls) -> list[dict]:
    """Calls as the question set writes them: [{operation: arguments}]."""
    return [{c.operation: c.arguments} for c in calls]


def same_calls(got: list[dict], want: list[dict]) -> bool:
    return json.dumps(got, sort_keys=True) == json.dumps(want, sort_keys=True)


def planning_misses(stores, store: str, plan) -> tuple[list[str], int]:
    """The questions of `store` that `plan` does not plan as written (one line each), and how many there are."""
    items = questions(store)
    missed = []
    for item in items:
        got = planned(plan(stores, item["q"])[0])
        if not same_calls(got, item["calls"]):
            missed.append(f"{item['q']!r}: planned {got}, expected {item['calls']}")
    return missed, len(items)


def check_planning(stores, store: str, plan, target: float, least: int = 1) -> None:
    """`plan` plans at least the share `target` of the (at least `least`) questions of `store` as written."""
    missed, total = planning_misses(stores, store, plan)
    share = 1 - len(missed) / total
    print(f"\n{store} questions planned exactly right: {total - len(missed)} of {total} ({share:.0%})")
    assert total >= least and share >= target, "\n".join(missed)


def check_every_answer(stores, truth: Truth, store: str, least: int = 1) -> None:
    """Every number in the answers to the (at least `least`) bcftools-checked questions of `store` is bcftools'."""
    checked = [item for item in questions(store) if item.get("bcftools")]
    assert len(checked) >= least
    names = set(stores.sample_names())
    for item in checked:
        answer = stores.ask(item["q"])
        assert answer.figures, f"{item['q']!r}: no figures in {answer.answer!r}"
        check_answer(truth, item["q"], answer, names)


def asked_over_http(client, items: list[dict]) -> list[tuple[float, dict]]:
    """(seconds, reply) of each question of `items` asked of a server's `client`, warmed by the first three."""
    for item in items[:3]:
        client.get("/ask", params={"question": item["q"]})  # the first questions read the stores' pages
    replies = []
    for item in items:
        started = time.perf_counter()
        reply = client.get("/ask", params={"question": item["q"]})
        seconds = time.perf_counter() - started
        assert reply.status_code == 200, reply.text
        replies.append((seconds, reply.json()))
    return replies


def _zygosity(gt: str) -> str:
    alleles = re.split(r"[/|]", gt)
    if len(alleles) == 1:
        return "hemizygous"
    if alleles.count("1") == len(alleles):
        return "hom_alt"
    return "partial" if "." in alleles else "het"


def _carries(gt: str) -> bool:
    return "1" in re.split(r"[/|]", gt)


#: Bases after a variant's position searched for its record (the longest left shift of an indel).
WINDOW = 1_000
CLASS_EXPRESSIONS = {
    "snv": 'TYPE="snp"',
    "deletion": 'TYPE="indel" && strlen(REF)>strlen(ALT)',
    "insertion": 'TYPE="indel" && strlen(REF)<strlen(ALT)',
    "symbolic": 'ALT~"^<"',
}


class Truth:
    """bcftools' figures for the calls of one store (`tool`: tests/conftest.py's Bcftools over its inputs)."""

    def __init__(self, tool) -> None:
        self.tool = tool
        self.names = list(tool.inputs)
        self.samples = {name: tool.samples(name) for name in self.names}
        self.contigs = {name: set(tool.split(name, "%CHROM\n")) for name in self.names}
        self._listings: dict[str, dict] = {}

    # ------------------------------------------------------------ which input

    def input_of(self, arguments: dict) -> str:
        samples = [arguments["sample"]] if "sample" in arguments else arguments.get("samples", [])
        for name in self.names:
            if samples and all(s in self.samples[name] for s in samples):
                return name
        chrom = self._chrom(arguments.get("region") or arguments.get("variant_id") or "")
        for name in self.names:
            if chrom in self.contigs[name]:
                return name
        raise AssertionError(f"no input holds {arguments}")

    @staticmethod
    def _chrom(text: str) -> str:
        return re.split(r":(?=\d)", text)[0]

    # ------------------------------------------------------------ filters

    @staticmethod
    def include(arguments: dict) -> str | None:
        parts = []
        if "af_max" in arguments:
            parts.append(f"AF<={arguments['af_max']}")
        if "af_min" in arguments:
            parts.append(f"AF>={arguments['af_min']}")
        if "filter" in arguments:
            parts.append('FILTER="PASS"' if arguments["filter"] == "PASS" else f'FILTER~"{arguments["filter"]}"')
        if "variant_class" in arguments:
            if arguments["variant_class"] not in CLASS_EXPRESSIONS:
                return "__none__"
            parts.append(CLASS_EXPRESSIONS[arguments["variant_class"]])
        for name in ("gene", "consequence", "carried_by"):
            assert name not in arguments, f"no bcftools truth for the {name} filter"
        return " && ".join(f"({p})" for p in parts) or None

    def _records(self, arguments: dict, fmt: str, samples: list[str] | None = None) -> list[str]:
        include = self.include(arguments)
        if include == "__none__":  # the class `indel` (REF and ALT both changed): bcftools has no TYPE for it
            include = 'TYPE="indel" && strlen(REF)>1 && strlen(ALT)>1'
        view = ("-r", arguments["region"]) if "region" in arguments else ()
        if samples:
            view = (*view, "-s", ",".join(samples))
        return self.tool.split(self.input_of(arguments), fmt, view=view, include=include)

    # ------------------------------------------------------------ figures of each operation

    def figures(self, operation: str, arguments: dict) -> dict:
        """(name, about) -> value for every figure the answer to this call may state."""
        return getattr(self, f"_{operation}")(arguments)

    def _variant(self, arguments: dict) -> dict:
        vid = arguments["variant_id"]
        name = self.input_of(arguments)
        calls, af = self.genotypes(name, vid)
        kinds = Counter(_zygosity(gt) for gt in calls.values())
        found = {(k, vid): kinds[k] for k in ("het", "hom_alt", "hemizygous", "partial")}
        found[("carriers", vid)] = len(calls)
        if af != ".":
            found[("af", vid)] = float(af)
        return found

    def _zygosity_counts(self, gts_per_record: list[list[str]]) -> dict:
        kinds = Counter(_zygosity(gt) for gts in gts_per_record for gt in gts)
        found = {(k, None): kinds[k] for k in ("het", "hom_alt", "hemizygous", "partial")}
        found[("variants", None)] = len(gts_per_record)
        return found

    def _sample(self, arguments: dict) -> dict:
        lines = self._records(arguments, "[%GT]\n", samples=[arguments["sample"]])
        return self._zygosity_counts([[gt] for gt in lines if _carries(gt)])

    def _shared(self, arguments: dict) -> dict:
        lines = self._records(arguments, "[%GT\t]\n", samples=arguments["samples"])
        shared = [gts for gts in (line.rstrip("\t").split("\t") for line in lines) if all(map(_carries, gts))]
        return {("variants", None): len(shared)}

    def _region(self, arguments: dict) -> dict:
        ids = self._records(arguments, "%CHROM:%POS:%REF:%ALT\n")
        return {("variants", None): len(ids)}

    def carriers(self, arguments: dict, vid: str) -> int:
        return len(self.genotypes(self.input_of(arguments), vid)[0])

    def genotypes(self, name: str, vid: str) -> tuple[dict[str, str], str]:
        """sample -> GT of the carriers of `vid`, and its INFO/AF. The records are read from a window
        after its position: left-alignment (with a reference) moves an indel left of where the VCF has it."""
        chrom, pos, ref, alt = vid.rsplit(":", 3)
        fmt = "%POS\t%REF\t%ALT\t%AF[\t%SAMPLE=%GT]\n"
        lines = self.tool.split(name, fmt, view=("-r", f"{chrom}:{pos}-{int(pos) + WINDOW}"))
        (line,) = [line for line in lines if line.split("\t")[:3] == [pos, ref, alt]]
        cells = line.split("\t")
        calls = dict(cell.split("=", 1) for cell in cells[4:])
        return {sample: gt for sample, gt in calls.items() if _carries(gt)}, cells[3]

    def _list(self, arguments: dict) -> dict:
        # Once per store: the samples' figures read every genotype of every input (15 million
        # lines for the 2,504-sample cohort, ~30 s of CPU), and several tests ask for them.
        what = arguments["what"]
        if what not in self._listings:
            self._listings[what] = self._listing(what)
        return dict(self._listings[what])

    def _listing(self, what: str) -> dict:
        if what == "samples":
            found = {("samples", None): sum(len(s) for s in self.samples.values())}
            for name in self.names:
                calls = (cell.split("=", 1) for cell in self.tool.split(name, "[%SAMPLE=%GT\n]"))
                carried = Counter(sample for sample, gt in calls if _carries(gt))
                found.update({("variants", sample): carried[sample] for sample in self.samples[name]})
            return found
        if what == "files":
            found = {("files", None): len(self.names)}
            for name in self.names:
                found[("samples", name)] = len(self.samples[name])
                found[("variants", name)] = len(self.tool.split(name, "%CHROM\n"))
            return found
        if what == "contigs":
            per_contig = Counter(chrom for name in self.names for chrom in self.tool.split(name, "%CHROM\n"))
            found = {("contigs", None): len(per_contig)}
            found.update({("variants", chrom): n for chrom, n in per_contig.items()})
            return found
        raise AssertionError(f"no bcftools truth for list {what}")

    def records(self, rsid: str) -> int:
        return sum(len(self.tool.split(name, "%ID\n", include=f'ID~"{rsid}"')) for name in self.names)


def check_answer(truth: Truth, question: str, answer, names: set[str] = frozenset()) -> None:
    """Every figure of `answer` equals bcftools' (a sum equals the sum of bcftools' per-call figures), and
    every number in its text is one of its figures or part of a name (an id, a region, a sample)."""
    expected = [truth.figures(c.operation, c.arguments) for c in answer.calls]
    for figure in answer.figures:
        if figure.name == "records":
            want = truth.records(re.search(r"rs\d+", question, re.IGNORECASE).group(0).lower())
        elif figure.call == -1:
            want = sum(e[("variants", None)] for e in expected)
        else:
            key = (figure.name, figure.about)
            if key not in expected[figure.call] and figure.name == "carriers":
                expected[figure.call][key] = truth.carriers(answer.calls[figure.call].arguments, figure.about)
            assert key in expected[figure.call], f"{question!r}: no bcftools truth for figure {key}"
            want = expected[figure.call][key]
        if isinstance(want, float):
            assert abs(figure.value - want) <= 1e-6 * max(1.0, abs(want)), f"{question!r}: {figure} != {want}"
        else:
            assert figure.value == want, f"{question!r}: {figure} != bcftools {want}"
    stated = {_plain(f.value) for f in answer.figures}
    for number in numbers_outside_names(answer, names):
        assert number in stated, f"{question!r}: the answer states {number}, which no figure holds: {answer.answer}"


def _plain(value) -> str:
    return f"{value:,}" if isinstance(value, int) else f"{value:.4g}"


def numbers_outside_names(answer, names: set[str] = frozenset()) -> list[str]:
    """The numbers of the answer's text, without those inside ids, regions, genotypes, argument values and
    `names` (the stores' sample names)."""
    text = re.sub(r"\./1|GT \S+|(?:contig|region|sample) [^\s;,()]+", " ", answer.answer)
    text = " ".join(" " if word.strip(".,;:()") in names else word for word in text.split())
    names = {str(v) for c in answer.calls for v in c.arguments.values() if not isinstance(v, list)}
    names |= {str(s) for c in answer.calls for s in c.arguments.get("samples", [])}
    for name in sorted(names, key=len, reverse=True):
        text = text.replace(name, " ")
    text = re.sub(r"\S*[A-Za-z_]\S*\d\S*|\S*\d\S*[A-Za-z_]\S*|\S+:\d\S*", " ", text)
    return re.findall(r"\d[\d,]*(?:\.\d+)?(?<!,)", text)


def with_reference(tool, reference: Path):
    """`tool` (conftest.Bcftools) splitting with `norm -f REFERENCE -m -any`, as the workflow does when
    the config names a reference (left-aligned indels)."""
    from conftest import _pipeline

    def split(name: str, fmt: str, *, view: tuple[str, ...] = (), include: str | None = None) -> list[str]:
        query = ["bcftools", "query", *(["-i", include] if include else []), "-f", fmt, "-"]
        view_command = ["bcftools", "view", *view, "-Ou", str(tool.indexed(name))]
        norm = ["bcftools", "norm", "-f", str(reference), "-m", "-any", "-Ou", "-"]
        return _pipeline(view_command, norm, query)

    tool.split = split
    return tool


def with_contigs(tool):
    """`tool` (conftest.Bcftools) over inputs without ##contig lines (hail's chr20 file): its indexed copy
    gets one line per CHROM of the records (bcftools writes no BCF without them; the records are unchanged)."""
    import subprocess

    from conftest import _pipeline

    def indexed(name: str) -> Path:
        if name not in tool._indexed:
            chroms = dict.fromkeys(_pipeline(["bcftools", "query", "-f", "%CHROM\\n", str(tool.inputs[name])]))
            header = tool.scratch / f"{name}.contigs.txt"
            header.write_text("".join(f"##contig=<ID={chrom}>\n" for chrom in chroms))
            copy = tool.scratch / f"{name}.bcf"
            subprocess.run(["bcftools", "annotate", "-h", header, "-Ob", "-o", copy, tool.inputs[name]], check=True)
            subprocess.run(["bcftools", "index", copy], check=True)
            tool._indexed[name] = copy
        return tool._indexed[name]

    tool.indexed = indexed
    return tool
