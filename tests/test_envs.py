"""The conda envs for `--sdm conda` carry the same exact pins as pyproject.toml."""

from __future__ import annotations

import re
import subprocess
import tomllib

import yaml

from helpers import ROOT

ENVS = ROOT / "envs"
PIN = re.compile(r"^(?P<name>[A-Za-z0-9_.-]+)\s*==?\s*(?P<version>[^\s;]+)$")


def pins(requirements: list[str]) -> dict[str, str]:
    found = {}
    for requirement in requirements:
        match = PIN.match(requirement.strip())
        assert match, f"not an exact pin: {requirement!r}"
        found[match["name"].lower().replace("_", "-")] = match["version"]
    return found


def project_pins() -> dict[str, str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return pins(project["dependencies"])


def env(name: str) -> dict:
    return yaml.safe_load((ENVS / name).read_text())


def conda_and_pip(environment: dict) -> tuple[list[str], list[str]]:
    conda, pip = [], []
    for entry in environment["dependencies"]:
        if isinstance(entry, dict):
            pip += [item for item in entry["pip"] if item != ".."]
        elif entry != "pip":
            conda.append(entry)
    return conda, pip


def test_python_env_pins_exactly_what_pyproject_pins():
    _, pip = conda_and_pip(env("vcf-agent.yaml"))
    assert pins(pip) == project_pins()


def test_envs_take_bcftools_and_htslib_from_bioconda_at_one_version():
    for name in ("bcftools.yaml", "vcf-agent.yaml"):
        environment = env(name)
        assert "bioconda" in environment["channels"] and "conda-forge" in environment["channels"]
        conda, _ = conda_and_pip(environment)
        versions = pins(conda)
        assert versions["bcftools"] == versions["htslib"], name


def test_python_env_uses_the_python_the_project_supports():
    conda, _ = conda_and_pip(env("vcf-agent.yaml"))
    assert pins(conda)["python"] == "3.11"


def test_envs_pin_the_bcftools_the_tests_run():
    # The tests use the system's bcftools; the envs must ask conda for the same release.
    first_line = subprocess.run(["bcftools", "--version"], capture_output=True, text=True, check=True).stdout
    installed = re.match(r"bcftools (\d+\.\d+)", first_line)[1]
    conda, _ = conda_and_pip(env("bcftools.yaml"))
    assert pins(conda)["bcftools"] == installed


def test_every_rule_names_an_env_that_exists():
    rules = sorted((ROOT / "workflow" / "rules").glob("*.smk"))
    named = {m for path in rules for m in re.findall(r'conda:\s*\n\s*"([^"]+)"', path.read_text())}
    assert named, "no rule declares a conda env"
    for relative in named:
        assert (ROOT / "workflow" / "rules" / relative).resolve().is_file(), relative
