"""MkDocs hooks: the benchmark plots live in benchmarks/results (where the benchmarks write them), outside
docs/, and the pages link them as `../benchmarks/results/NAME.png` so that the links also work where the
markdown is read in the repository. For the site, each plot is added as a file under `results/`, and the
links are rewritten to it; a link to a plot that does not exist still fails the strict build.
"""

from __future__ import annotations

from pathlib import Path

from mkdocs.config.defaults import MkDocsConfig
from mkdocs.structure.files import File, Files
from mkdocs.structure.pages import Page

RESULTS = Path(__file__).resolve().parent.parent / "benchmarks"
IN_REPOSITORY = "../benchmarks/results/"
ON_SITE = "results/"


def on_files(files: Files, config: MkDocsConfig) -> Files:
    for plot in sorted((RESULTS / "results").glob("*.png")):
        files.append(File(f"{ON_SITE}{plot.name}", src_dir=str(RESULTS), dest_dir=config.site_dir,
                          use_directory_urls=config.use_directory_urls))
    return files


def on_page_markdown(markdown: str, page: Page, config: MkDocsConfig, files: Files) -> str:
    return markdown.replace(f"]({IN_REPOSITORY}", f"]({ON_SITE}")
