"""Sphinx configuration of the documentation site. The pages are written by docs/build.py (run that, not sphinx-build)."""
import configparser
from pathlib import Path

_settings = configparser.ConfigParser()
_settings.read(Path(__file__).resolve().parents[1] / 'settings.ini')
_s = _settings['DEFAULT']

project = _s['lib_name']
author = 'the geovq_tutorial developers'
copyright = _s['copyright']
release = version = _s['version']

extensions = ['myst_nb', 'sphinx.ext.mathjax', 'sphinx_copybutton']
# sphinx-copybutton: a copy button on every code block, copying the code without prompts or outputs
copybutton_exclude = '.linenos, .gp, .go'
exclude_patterns = ['**/.ipynb_checkpoints']

# MyST-NB: show the saved outputs, never execute; markdown outputs (nbdev's show_doc) are MyST, so math works there too
nb_execution_mode = 'off'
nb_render_markdown_format = 'myst'
nb_ipywidgets_js = {}          # no widget manager from a CDN: the site shows saved outputs only
myst_enable_extensions = ['dollarmath', 'amsmath', 'colon_fence', 'deflist']
myst_heading_anchors = 3
myst_update_mathjax = False

# MathJax 2 from the jupyter-server-mathjax package, copied into _static/mathjax by docs/build.py: no CDN
mathjax_path = 'mathjax/MathJax.js'
mathjax2_config = {
    'config': ['TeX-AMS-MML_HTMLorMML-full.js'],
    'tex2jax': {'inlineMath': [['\\(', '\\)']], 'displayMath': [['\\[', '\\]']], 'processEscapes': True},
    'HTML-CSS': {'availableFonts': [], 'webFont': 'STIX-Web', 'imageFont': None, 'preferredFont': None,
                 # MathJax 2 probes fonts with url('about:blank'), which Chromium reports as a console error
                 'styles': {'@font-face': {'font-family': 'MathJax_Blank', 'src': "local('MathJax_Blank')"}}},
    'messageStyle': 'none',
    'menuSettings': {'zoom': 'None'},
}

html_theme = 'sphinx_book_theme'
html_title = project
html_static_path = ['_static']
html_css_files = ['geovq.css']
html_copy_source = False
html_show_sourcelink = False
html_last_updated_fmt = None
html_context = {'default_mode': 'light'}
html_theme_options = {
    'show_toc_level': 2,
    'use_download_button': False,
    'use_fullscreen_button': False,
    'use_repository_button': False,
    'home_page_in_toc': True,
    'navigation_with_keys': False,
}


def _plotly_once(app, pagename, templatename, context, doctree):
    """Pages with a plotly figure load the site's single copy of plotly.js (copied to _static/ by docs/build.py), deferred: the
    4.8 MB script no longer blocks the first paint; each figure is drawn on the window's `load` event, after it has run."""
    if 'class="geovq-plotly"' in context.get('body', ''):
        app.add_js_file('plotly.min.js', priority=400, loading_method='defer')


def setup(app):
    app.connect('html-page-context', _plotly_once)
