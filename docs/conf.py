"""Sphinx settings of the course's rendered edition (staged and run by docs/build.py).

The notebooks arrive executed: nothing runs here (`nb_execution_mode = "off"`). Nothing may load
from another host: the widget JavaScript myst-nb would fetch from a CDN is switched off (the
build replaced every widget by its picture), no math renderer is needed (the chapters have no
math), and the theme's fonts and icons ship in its wheel.
"""

project = "Cores & Coroutines"
author = "the Cores & Coroutines authors"
copyright = "the Cores & Coroutines authors"

extensions = ["myst_nb"]
exclude_patterns = ["_build", "**.ipynb_checkpoints", "executed", "html", "doctrees"]

# Executed once by the build (or the notebook test): never again here.
nb_execution_mode = "off"
# No require.js, no @jupyter-widgets/html-manager from a CDN.
nb_ipywidgets_js = {}
# Headings get anchors, so "#a-section" links inside a chapter work.
myst_heading_anchors = 3

html_theme = "sphinx_book_theme"
html_title = "Cores & Coroutines"
html_static_path = ["_static"]
html_css_files = ["book.css"]
html_js_files = ["present.js"]
# The pages carry their figures; the .ipynb sources are the repository's.
html_copy_source = False
html_show_sourcelink = False
html_theme_options = {
    "home_page_in_toc": True,
    "show_toc_level": 2,
    "use_download_button": False,
    "use_fullscreen_button": False,
    "use_repository_button": False,
    "navigation_with_keys": False,
}
