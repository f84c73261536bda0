#!/usr/bin/env python
"""Build the documentation site and the README from the notebooks, offline, in one command.

    python docs/build.py                 # README.md from nbs/index.ipynb, then the site into _docs/
    python docs/build.py --out DIR       # the site into DIR instead
    python docs/build.py --readme        # only refresh README.md
    python docs/build.py --check-readme  # exit 1 if README.md is not what nbs/index.ipynb gives

Steps of the site build (no notebook is executed; the saved outputs are what the site shows):
1. nbdev's notebook processors (`nbdev.processors.FilterDefaults`, the processing behind `nbdev_proc_nbs`) turn every
   notebook in `nbs/` into its documentation form: `show_doc` API docs for every exported name, `#| hide` cells removed.
   One processor is swapped: nbdev's `exec_show_docs` re-runs every exported cell and every cell with an import, which in
   these notebooks trains models; `show_docs_from_package` instead evaluates only the `show_doc(...)` calls, against the
   installed package. So the build runs no notebook code.
2. The Quarto-specific parts of that form become MyST-NB's: the YAML front matter becomes the page title, `#| echo: false`
   becomes the `remove-input` tag, and so on; plotly figures saved as `application/vnd.plotly.v1+json` become a `<div>` and a
   `Plotly.newPlot` call.
3. One API reference page per module lists `show_doc` for every name in the module's `__all__` (and public methods).
4. Sphinx (MyST-NB, Sphinx Book Theme, configuration in `docs/conf.py`) renders the pages; MathJax (from the
   `jupyter-server-mathjax` package) and `plotly.min.js` (from the `plotly` package) are copied into the site once, so the
   site makes no request outside itself.
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import re
import shutil
import sys
import time
from contextlib import contextmanager
from pathlib import Path

DOCS = Path(__file__).resolve().parent
REPO = DOCS.parent
NBS = REPO / 'nbs'
PACKAGE = 'geovq_tutorial'
PLOTLY_MIME = 'application/vnd.plotly.v1+json'
# plotly JSON that only the site draws (geovq_tutorial.explore.STATIC_FIGURE_MIME: JupyterLab would write a PNG into it)
PLOTLY_MIMES = (PLOTLY_MIME, 'application/vnd.geovq.static-figure+json')
WIDGET_MIME = 'application/vnd.jupyter.widget-view+json'
DOWNLOADS = '_downloads/notebooks'      # where the site keeps the chapters' notebooks for download
README_FIGURES = Path('docs') / 'readme'    # the README's figures, relative to it (GitHub shows no image stored in the page)
README_FIGURE_ALT = 'figure of the run (see nbs/index.ipynb)'
README_HEADER = '<!-- Generated from nbs/index.ipynb by `python docs/build.py`: edit the notebook, not this file. -->'


# ---------------------------------------------------------------- notebooks and cell directives

def notebooks(nbs: Path = NBS) -> list[Path]:
    "The site's notebooks: `index.ipynb` first, then every other notebook in `nbs` by name."
    found = sorted(p for p in nbs.glob('*.ipynb') if not p.name.startswith(('.', '_')))
    index = [p for p in found if p.name == 'index.ipynb']
    if not index: raise SystemExit(f"{nbs} has no index.ipynb: the landing page (and README) is written there")
    return index + [p for p in found if p.name != 'index.ipynb']


def split_directives(source: str) -> tuple[dict[str, str], str]:
    "The `#| key: value` (or `#| flag`) lines at the top of a code cell, and the source without them."
    lines, directives = source.splitlines(), {}
    i = 0
    while i < len(lines) and (lines[i].startswith('#|') or not lines[i].strip()):
        body = lines[i][2:].strip()
        if body:
            key, _, value = body.partition(':')
            directives[key.strip()] = value.strip() if _ else 'true'
        i += 1
    return directives, '\n'.join(lines[i:])


def _text(x) -> str:
    return ''.join(x) if isinstance(x, list) else str(x)


def default_exp(cells) -> str | None:
    "The module a notebook exports to (its `#| default_exp` line), or None."
    for c in cells:
        m = re.search(r'^#\|\s*default_exp\s+(\S+)', _text(c['source']), re.M) if c['cell_type'] == 'code' else None
        if m: return m.group(1)


# ---------------------------------------------------------------- README

def readme_parts(index_nb: Path = NBS / 'index.ipynb') -> tuple[str, dict[str, bytes]]:
    """README.md as `index_nb` gives it: markdown cells as they are, saved markdown/text outputs, hidden code left out; and the
    PNG figures it links to, {file name in README_FIGURES: bytes} (GitHub shows no image stored in the page itself)."""
    import base64
    nb = json.loads(index_nb.read_text())
    parts, figures = [README_HEADER], {}
    for cell in nb['cells']:
        src = _text(cell['source'])
        if cell['cell_type'] == 'markdown':
            parts.append(src.strip('\n'))
            continue
        if cell['cell_type'] != 'code': continue
        directives, code = split_directives(src)
        if 'hide' in directives or directives.get('include') == 'false': continue
        if directives.get('echo') != 'false' and code.strip(): parts.append(f'```python\n{code.strip()}\n```')
        if directives.get('output') == 'false': continue
        for out in cell.get('outputs', []):
            data = out.get('data', {})
            if out['output_type'] == 'stream':
                text = _text(out['text']).rstrip('\n')
                parts.append(text if directives.get('output') == 'asis' else f'```\n{text}\n```')
            elif 'text/markdown' in data: parts.append(_text(data['text/markdown']).strip('\n'))
            elif plotly_figure(data): parts.append('*(An interactive plotly figure: see it in JupyterLab or on the documentation site.)*')
            elif 'image/png' in data:
                name = f'figure-{len(figures) + 1}.png'
                figures[name] = base64.b64decode(_text(data['image/png']))
                parts.append(f'![{README_FIGURE_ALT}]({README_FIGURES.as_posix()}/{name})')
            elif 'image/svg+xml' in data: parts.append('*(A figure: see it in JupyterLab or on the documentation site.)*')
            elif 'text/plain' in data and out['output_type'] == 'execute_result':
                parts.append(f"```\n{_text(data['text/plain']).rstrip()}\n```")
    return '\n\n'.join(p for p in parts if p) + '\n', figures


def readme_text(index_nb: Path = NBS / 'index.ipynb') -> str:
    "README.md as `index_nb` gives it (`readme_parts`)."
    return readme_parts(index_nb)[0]


def readme_is_current(path: Path = REPO / 'README.md', index_nb: Path = NBS / 'index.ipynb') -> bool:
    "Whether README.md and its figures are what `index_nb` gives."
    (text, figures), folder = readme_parts(index_nb), path.parent / README_FIGURES
    return (path.exists() and path.read_text() == text
            and all((folder / n).exists() and (folder / n).read_bytes() == b for n, b in figures.items()))


def write_readme(path: Path = REPO / 'README.md', index_nb: Path = NBS / 'index.ipynb') -> bool:
    "Write README.md, and the figures it shows (README_FIGURES), from nbs/index.ipynb; return whether it changed."
    text, figures = readme_parts(index_nb)
    for marker in ('<!-- ci:run-command -->', '<!-- ci:test-command -->'):
        if marker not in text:
            raise SystemExit(f"{index_nb} lacks the marker {marker} before its command block: CI reads the command "
                             "from README.md (see .ci/run); put the marker back")
    changed = not readme_is_current(path, index_nb)
    if changed:
        (folder := path.parent / README_FIGURES).mkdir(parents=True, exist_ok=True)
        for name, png in figures.items(): (folder / name).write_bytes(png)
        path.write_text(text)
    return changed


# ---------------------------------------------------------------- processed notebooks -> MyST-NB pages

@contextmanager
def _nbdev_processing_env():
    "What `nbdev_proc_nbs` sets while it processes: IN_TEST=1, the notebooks' folder as working directory."
    old_cwd, old_env = Path.cwd(), os.environ.get('IN_TEST')
    os.environ['IN_TEST'] = '1'
    os.chdir(NBS)
    try: yield
    finally:
        os.chdir(old_cwd)
        if old_env is None: os.environ.pop('IN_TEST', None)
        else: os.environ['IN_TEST'] = old_env


def package_namespace(module: str | None) -> dict:
    "Every public name of the package's modules (the notebook's own module last, so its names win), and `show_doc`."
    import importlib
    from nbdev.showdoc import show_doc
    ns = {}
    for m in [m for m in modules() if m != module] + ([module] if module else []):
        mod = importlib.import_module(f'{PACKAGE}.{m}')
        ns.update({k: v for k, v in vars(mod).items() if not k.startswith('__')})
    return {**ns, 'show_doc': show_doc}


def _show_doc_processor():
    "A stand-in for nbdev's `exec_show_docs` processor that fills `show_doc(...)` cells from the installed package."
    from nbdev.process import Processor

    class show_docs_from_package(Processor):
        """nbdev's `exec_show_docs` runs every exported cell *and every cell that contains an import* to render `show_doc`;
        in these notebooks such cells train and fit models (minutes), and cells that depend on earlier unexported cells fail.
        This one runs nothing from the notebook: it evaluates each `show_doc(...)` line against the package's modules."""
        def begin(self):
            self.ns = package_namespace(default_exp(self.nb.cells))

        def __call__(self, cell):
            if cell.cell_type != 'code': return
            calls = [l.strip() for l in split_directives(cell.source)[1].splitlines() if l.strip()]
            if not calls or not all(l.startswith('show_doc(') for l in calls): return
            outputs = []
            for call in calls:
                try: md = eval(call, dict(self.ns))._repr_markdown_()
                except Exception as e:
                    raise SystemExit(f"docs: `{call}` failed ({type(e).__name__}: {e}); show_doc can document only names the "
                                     f"package exports (run nbdev_export first)") from e
                outputs.append({'output_type': 'execute_result', 'execution_count': None, 'metadata': {},
                                'data': {'text/markdown': md, 'text/plain': call}})
            cell.outputs = outputs
    return show_docs_from_package


def nbdev_process(path: Path) -> dict:
    """The notebook at `path` after nbdev's documentation processors (those `nbdev_proc_nbs` applies before Quarto), with
    `exec_show_docs` replaced by `show_docs_from_package` so that no notebook cell is executed."""
    from execnb.nbio import read_nb, nb2str
    from nbdev.processors import FilterDefaults, exec_show_docs
    swap = _show_doc_processor()

    class DocProcessors(FilterDefaults):
        def base_procs(self): return [swap if p is exec_show_docs else p for p in super().base_procs()]

    nb = read_nb(path)
    with _nbdev_processing_env(): DocProcessors()(nb)
    return json.loads(nb2str(nb))


def frontmatter(nb: dict) -> dict:
    "The YAML front matter nbdev's processing puts in a raw cell (title, description, output-file), or {}."
    import yaml
    for cell in nb['cells']:
        m = re.match(r'\s*---\n(.*?)\n---', _text(cell['source']), re.S) if cell['cell_type'] == 'raw' else None
        if m: return yaml.safe_load(m.group(1)) or {}
    return {}


def page_name(nb_path: Path, frontmatter: dict) -> str:
    "The page's file name: nbdev's `output-file` (`vae.html` -> `vae`), else the notebook's name without its number."
    if nb_path.stem == 'index': return 'index'
    out = frontmatter.get('output-file')
    return Path(out).stem if out else re.sub(r'^\d+[_-]', '', nb_path.stem)


def plotly_figure(data: dict, base: Path = NBS) -> dict | None:
    """The plotly figure of an output's `data`, under either of `PLOTLY_MIMES`; None if it holds none. A static figure holds only
    `{'src': file}`, relative to the notebook's folder `base` (`show_static` wrote it there): its figure is read from that file."""
    fig = next((data[m] for m in PLOTLY_MIMES if m in data), None)
    if not (isinstance(fig, dict) and 'src' in fig): return fig
    path = base / fig['src']
    if not path.is_file(): raise FileNotFoundError(f"{path} is missing: the static figure a notebook shows is written there by "
                                                   "its show_static cell; run `python docs/execute.py` (or that chapter) again")
    return json.loads(path.read_text())


def plotly_html(fig: dict, div_id: str) -> str:
    "A plotly figure as a `<div>` and the `Plotly.newPlot` call that draws it (plotly.min.js is loaded once per page)."
    args = [fig.get('data', []), fig.get('layout', {}), {'responsive': True, **fig.get('config', {})}]
    js_args = ', '.join(json.dumps(a, separators=(',', ':')).replace('</', '<\\/') for a in args)
    return (f'<div id="{div_id}" class="geovq-plotly"></div>\n'
            f'<script>window.addEventListener("load", function () {{ Plotly.newPlot("{div_id}", {js_args}); }});</script>')


_CALLOUT = re.compile(r'^:::\s*\{\.callout-(note|tip|warning|important|caution)[^}]*\}', re.M)


def page_links(nb_file: str | None, module: str | None) -> str:
    "The links under a chapter's title: download its notebook, read its module's source, its API page (raw HTML: no lookup)."
    links = [f'<a class="geovq-download" href="{DOWNLOADS}/{nb_file}" download>Download this notebook ({nb_file})</a>'] if nb_file else []
    if module: links += [f'<a class="geovq-source" href="api/source/{module}.html">Source of {PACKAGE}.{module}</a>',
                         f'<a class="geovq-apilink" href="api/{module}.html">API reference</a>']
    return f'<p class="geovq-links">{" · ".join(links)}</p>' if links else ''


_NAME_SPAN = re.compile(r'(?<![\[\w])`([A-Za-z_][\w.]*)(\(\))?`')


def link_names(markdown: str, links: dict[str, str]) -> str:
    "Code spans in prose that name a documented object (`GeodesicCodebook`, `Stage.get()`) become links to its API entry."
    def one(m): return (f'<a class="geovq-api" href="{links[m.group(1)]}"><code>{m.group(1)}{m.group(2) or ""}</code></a>'
                        if m.group(1) in links else m.group(0))
    parts = re.split(r'(^```.*?^```)', markdown, flags=re.S | re.M)     # fenced code stays as it is
    return ''.join(p if p.startswith('```') else _NAME_SPAN.sub(one, p) for p in parts)


def to_myst_nb(nb: dict, name: str, nb_file: str | None = None, module: str | None = None,
               links: dict[str, str] | None = None) -> tuple[dict, str]:
    """Turn nbdev's (Quarto-flavoured) processed notebook into one MyST-NB renders; return it and the page title. `nb_file` and
    `module` give the links under the title; `links` ({name: href}) turn names in the prose into links to the API pages."""
    nb = copy.deepcopy(nb)
    fm = frontmatter(nb)   # nbdev made it from the notebook's first cell: `# title` and `> description`
    title, description = fm.get('title', name), fm.get('description', '')
    cells, n_plots = [], 0
    for cell in nb['cells']:
        src = _text(cell['source'])
        if cell['cell_type'] == 'raw': continue
        if cell['cell_type'] == 'markdown':
            if src.strip().startswith('<!-- WARNING: THIS FILE WAS AUTOGENERATED!'): continue
            cell['source'] = link_names(_CALLOUT.sub(lambda m: ':::{' + m.group(1) + '}', src), links or {})
            cells.append(cell)
            continue
        directives, code = split_directives(src)
        tags = set(cell.get('metadata', {}).get('tags', []))
        if directives.get('include') == 'false': continue
        if directives.get('echo') == 'false' or not code.strip(): tags.add('remove-input')
        if directives.get('output') == 'false': tags.add('remove-output')
        outputs = []
        for out in cell.get('outputs', []):
            data = out.get('data', {})
            if out['output_type'] == 'stream' and directives.get('output') == 'asis':
                out = {'output_type': 'display_data', 'metadata': {}, 'data': {'text/markdown': _text(out['text'])}}
            elif fig := plotly_figure(data):
                n_plots += 1
                html = plotly_html(fig, f'plotly-{name}-{n_plots}')
                out = {'output_type': 'display_data', 'metadata': {}, 'data': {'text/html': html}}
            elif 'text/markdown' in data:   # show_doc opens with a rule, which docutils refuses inside an output
                md = fix_show_doc(re.sub(r'^\s*---\s*\n', '', _text(data['text/markdown'])))
                out = {**out, 'data': {**data, 'text/markdown': md}}
            elif WIDGET_MIME in data:   # a live widget needs a kernel: say so instead of printing its repr
                out = {'output_type': 'display_data', 'metadata': {}, 'data': {'text/markdown':
                       '*(An interactive widget: run this notebook in JupyterLab to use it.)*'}}
            outputs.append(out)
        if not outputs and 'remove-input' in tags: continue
        cell.update(source=code, outputs=outputs, metadata={'tags': sorted(tags)} if tags else {})
        cells.append(cell)
    head = f'# {title}' + (f'\n\n```{{rst-class}} geovq-lead\n{description}\n```' if description else '')
    nb['cells'] = [{'cell_type': 'markdown', 'metadata': {}, 'source': head + '\n\n' + page_links(nb_file, module)}] + cells
    nb['metadata'] = {k: v for k, v in nb.get('metadata', {}).items() if k in ('kernelspec', 'language_info')}
    nb['metadata'].setdefault('kernelspec', {'display_name': 'python3', 'language': 'python', 'name': 'python3'})
    return nb, title


# ---------------------------------------------------------------- API reference

def modules() -> list[str]:
    "The package's modules, in the order of the notebooks that export them."
    order = [m for m in (default_exp(json.loads(p.read_text())['cells']) for p in notebooks()[1:]) if m]
    rest = sorted(p.stem for p in (REPO / PACKAGE).glob('*.py') if not p.stem.startswith('_') and p.stem not in order)
    return order + rest


_CODE_SPAN = re.compile(r'(`[^`]*`)')


def _escape_stars(text: str) -> str:
    "`*` outside code spans as a literal star (docstrings write `a*b` and `[B*16, D]`, which markdown would make italics)."
    return ''.join(part if part.startswith('`') else part.replace('*', '\\*') for part in _CODE_SPAN.split(text))


def fix_show_doc(md: str) -> str:
    """nbdev's `show_doc` markdown made safe to render: the docstring's stars escaped (show_doc wraps its first line in
    `*...*`, which is kept as the emphasis), and nothing after the signature's code block but the docstring is touched."""
    head, fence, rest = md.partition('```\n\n')   # the signature block ends with a fence and a blank line
    if not fence: return md
    lines = rest.split('\n')
    for i, line in enumerate(lines):
        if line.startswith('|'): break                   # the parameters table: leave it alone
        m = re.fullmatch(r'\*(.*)\*', line) if i == 0 else None
        lines[i] = f'*{_escape_stars(m.group(1))}*' if m else _escape_stars(line)
    return head + fence + '\n'.join(lines)


def _show_doc_md(obj, name: str, level: int) -> str:
    from nbdev.showdoc import show_doc
    md = show_doc(obj, name=name, title_level=level)._repr_markdown_()
    return fix_show_doc(md.replace('\n---\n', '\n', 1).lstrip('-\n ').strip())


def api_entries(module: str) -> list[tuple[str, object, int]]:
    "(name, object, heading level) of every entry of a module's API page: its `__all__`, and the public methods of its classes."
    import importlib, inspect
    mod, out = importlib.import_module(f'{PACKAGE}.{module}'), []
    for name in getattr(mod, '__all__', []):
        obj = getattr(mod, name)
        out.append((name, obj, 2))
        if inspect.isclass(obj):
            out += [(f'{name}.{a}', m, 3) for a, m in vars(obj).items()
                    if not a.startswith('_') and inspect.isfunction(m) and m.__doc__]
    return out


def api_links(mods: list[str]) -> dict[str, str]:
    """{name: 'api/<module>.html#<id>'} for the names nbdev's index (`_modidx.py`) knows that have an API entry, where the
    name is the entry of one module only (the heading's id is docutils' `make_id` of the name)."""
    from docutils.nodes import make_id
    from geovq_tutorial._modidx import d
    known = {q.split('.', 2)[2] for syms in d['syms'].values() for q in syms}
    found: dict[str, list[str]] = {}
    for module in mods:
        for name, _, _ in api_entries(module):
            if name in known: found.setdefault(name, []).append(f'api/{module}.html#{make_id(name)}')
    return {n: hrefs[0] for n, hrefs in found.items() if len(hrefs) == 1}


def api_page(module: str, chapters: dict[str, tuple[str, str]]) -> str:
    "A MyST page with `show_doc` for every name in `module.__all__` and the public methods its classes define."
    import importlib, inspect
    mod = importlib.import_module(f'{PACKAGE}.{module}')
    lines = [f'# `{PACKAGE}.{module}`', '']
    if module in chapters:
        page, title = chapters[module]
        lines += [f'Written and explained in the chapter {{doc}}`{title} <../{page}>`; [its source](source/{module}.md).', '']
    if mod.__doc__: lines += [mod.__doc__.strip(), '']
    if not getattr(mod, '__all__', []): lines += ['This module exports no names.', '']
    for name, obj, level in api_entries(module):
        if not (inspect.isclass(obj) or callable(obj)): lines += [f'## `{name}`', '', f'A constant: `{name} = {obj!r}`.', '']
        else: lines += [_show_doc_md(obj, name, level), '']
    return '\n'.join(lines)


def source_page(module: str) -> str:
    "An orphan MyST page showing the module's source file (generated by nbdev from its chapter)."
    code = (REPO / PACKAGE / f'{module}.py').read_text()
    return (f'---\norphan: true\n---\n# Source of `{PACKAGE}.{module}`\n\nThe file `{PACKAGE}/{module}.py`, generated by '
            f'`nbdev_export` from its chapter (edit the notebook, not this file); back to [the API reference](../{module}.md).'
            f'\n\n````python\n{code}\n````\n')


# ---------------------------------------------------------------- the site

def vendor_assets() -> dict[str, Path]:
    "The JavaScript the site serves itself: MathJax and plotly.js, from installed Python packages."
    import jupyter_server_mathjax, plotly
    return {'mathjax': Path(jupyter_server_mathjax.__file__).parent / 'static',
            'plotly.min.js': Path(plotly.__file__).parent / 'package_data' / 'plotly.min.js'}


def write_sources(src: Path) -> list[tuple[str, str]]:
    "Write the MyST-NB pages (processed notebooks and API pages) into `src`; return (page, title) in site order."
    if src.exists(): shutil.rmtree(src)
    (src / 'api').mkdir(parents=True)
    (src / 'api' / 'source').mkdir()
    pages, chapters, nbs, mods = [], {}, {}, modules()
    links = api_links(mods)
    for path in notebooks():
        raw = nbdev_process(path)
        name = page_name(path, frontmatter(raw))
        module = default_exp(json.loads(path.read_text())['cells'])
        nb, title = to_myst_nb(raw, name, path.name, module, links)
        nbs[name] = nb
        pages.append((name, title))
        if module: chapters[module] = (name, title)
    for module in mods:
        (src / 'api' / f'{module}.md').write_text(api_page(module, chapters))
        (src / 'api' / 'source' / f'{module}.md').write_text(source_page(module))
    (src / 'api' / 'index.md').write_text('# API reference\n\nOne page per module, in the order of the chapters.\n\n'
                                          '```{toctree}\n:maxdepth: 1\n\n' + '\n'.join(mods) + '\n```\n')
    shutil.copy(REPO / 'CONTRIBUTING.md', src / 'CONTRIBUTING.md')   # the maintainers' page: the landing page links to it
    toc = ('```{toctree}\n:hidden:\n:caption: Chapters\n:maxdepth: 1\n\n' + '\n'.join(n for n, _ in pages[1:]) + '\n```\n\n'
           '```{toctree}\n:hidden:\n:caption: Reference\n:maxdepth: 1\n\napi/index\nCONTRIBUTING\n```\n')
    nbs['index']['cells'].append({'cell_type': 'markdown', 'metadata': {}, 'source': toc})
    for name, nb in nbs.items():
        nb.setdefault('nbformat', 4); nb.setdefault('nbformat_minor', 5)
        for i, cell in enumerate(nb['cells']): cell.setdefault('id', f'cell-{i}')
        (src / f'{name}.ipynb').write_text(json.dumps(nb, indent=1))
    return pages + [('api/index', 'API reference')] + [(f'api/{m}', f'{PACKAGE}.{m}') for m in mods]


def build_site(out: Path, work: Path | None = None, quiet: bool = True) -> dict:
    "Build the HTML site into `out`; return the pages, the Sphinx warnings and the seconds taken."
    from sphinx.cmd.build import build_main
    t0 = time.perf_counter()
    if out.exists() and any(out.iterdir()) and not (out / '.buildinfo').exists():
        raise SystemExit(f"{out} is not empty and holds no site built by docs/build.py (no .buildinfo), so it is not "
                         "replaced; give --out a new or empty folder")
    work = Path(work) if work else REPO / '_proc'
    src = work / 'site-src'
    pages = write_sources(src)
    html = work / 'html'   # Sphinx writes here and MyST-NB beside it (work/jupyter_execute); then the site moves to `out`
    if html.exists(): shutil.rmtree(html)
    warnings = work / 'sphinx-warnings.txt'
    args = ['-b', 'html', '-E', '-c', str(DOCS), '-d', str(work / 'doctrees'), '-w', str(warnings), str(src), str(html)]
    rc = build_main((['-q'] if quiet else []) + args)
    if rc: raise SystemExit(f"sphinx-build failed (exit {rc}); its warnings are in {warnings}")
    shutil.copytree(NBS, html / DOWNLOADS, ignore=lambda d, names: [n for n in names if not n.endswith('.ipynb')])
    for name, path in vendor_assets().items():
        dest = html / '_static' / name
        if path.is_dir(): shutil.copytree(path, dest, dirs_exist_ok=True)
        else: shutil.copy2(path, dest)
    if out.exists(): shutil.rmtree(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(str(html), str(out))
    return {'pages': pages, 'warnings': [l for l in warnings.read_text().splitlines() if l.strip()],
            'seconds': time.perf_counter() - t0}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--out', type=Path, default=REPO / '_docs', help='where the site goes (default: _docs/)')
    ap.add_argument('--work', type=Path, default=None, help='scratch folder for the processed notebooks (default: _proc/)')
    ap.add_argument('--readme', action='store_true', help='only write README.md from nbs/index.ipynb')
    ap.add_argument('--check-readme', action='store_true', help='exit 1 if README.md differs from what nbs/index.ipynb gives')
    ap.add_argument('--strict', action='store_true', help='exit 1 if Sphinx warns')
    args = ap.parse_args(argv)
    if args.check_readme:
        ok = readme_is_current()
        print('README.md is up to date' if ok else 'README.md is stale: run `python docs/build.py --readme`')
        return 0 if ok else 1
    print('README.md ' + ('written' if write_readme() else 'already up to date') + ' from nbs/index.ipynb')
    if args.readme: return 0
    res = build_site(args.out.resolve(), args.work)
    for w in res['warnings']: print('warning:', w)
    print(f"site: {len(res['pages'])} pages in {args.out} ({res['seconds']:.0f} s, {len(res['warnings'])} warnings); "
          f"open {args.out / 'index.html'}")
    return 1 if args.strict and res['warnings'] else 0


if __name__ == '__main__':
    sys.exit(main())
