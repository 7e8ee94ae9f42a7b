"""The documentation site: it builds in strict mode, and its command-line reference holds every
option that ``--help`` prints, for the benchmark and each of its commands."""
import re
import subprocess
import sys

from benchmark.options import COMMANDS, build_parser
from tests.conftest import ROOT


def test_the_site_builds_strict_and_its_cli_page_lists_every_option_of_help(tmp_path):
    result = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path)],
                            cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    page = (tmp_path / "cli" / "index.html").read_text()
    for command in ("run", *COMMANDS):
        for action in build_parser(command)._actions:
            for option in action.option_strings:
                assert option in page, f"{option} of run_benchmark.py {command} is missing from docs/cli.md"
    assert (tmp_path / "results" / "esc50-ood-mixtures-cpu" / "figure.png").is_file()  # the README's figure
    home = (tmp_path / "index.html").read_text()
    assert "The headline table" in home and "lmac" in home


def test_code_cites_pages_of_the_repository():
    """Every Markdown page the code names (``docs/….md`` or the README) exists in the repository, and
    the code names no path above the repository."""
    text = "\n".join(path.read_text() for package in ("benchmark", "classifiers", "datasets", "methods", "metrics")
                     for path in (ROOT / package).rglob("*.py"))
    written = {"table.md", "sanity.md", "bench.md", "selection.md", "listening.md", "agreement.md",  # outputs
               "rankings.md", "ranking.md", "meta_evaluation.md", "trust.md"}
    pages = {page for page in re.findall(r"[\w/.-]+\.md\b", text) if page.split("/")[-1] not in written}
    assert pages and all((ROOT / page).is_file() for page in pages), sorted(pages)
    assert not re.search(r"(?<!\.)\.\./\w", text)  # ("…/UrbanSound8K" in a help text is an ellipsis)
    assert "protocol §" in text and (ROOT / "docs" / "protocol.md").is_file()
