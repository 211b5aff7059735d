"""The Markdown a visitor may write, turned into HTML that cannot run, load or style anything.

Pure and unbounded: Python-Markdown takes quadratic time or recurses past the stack on some small
bodies, so a visitor's body is rendered only inside the renderer process (render_process.py), under a
deadline. The one body rendered elsewhere is the mail's own sample, before the zygote's fork
(``mail.rehearse``).
"""

import markdown
import nh3
from markdown.extensions import Extension
from markdown.treeprocessors import Treeprocessor

EXTENSIONS = ("extra", "sane_lists")

# The body is written by any visitor: only markup that cannot run, load or style anything survives.
SANITISER = nh3.Cleaner(
    tags={
        *("p", "br", "strong", "em", "b", "i", "code", "pre", "blockquote", "hr", "a"),
        *("ul", "ol", "li", "dl", "dt", "dd", "h1", "h2", "h3", "h4", "h5", "h6"),
        *("table", "caption", "thead", "tbody", "tfoot", "tr", "th", "td", "sup", "sub", "abbr"),
    },
    clean_content_tags={"script", "style"},
    attributes={"a": {"href", "title"}, "abbr": {"title"}, "ol": {"start"}},
    url_schemes={"http", "https", "mailto"},
    url_relative="deny",
    link_rel="nofollow noopener noreferrer",
)


class _ImagesAsText(Treeprocessor):
    """A remote image tells its owner when and where the mail was read: keep its words only."""

    def run(self, root):
        for element in root.iter("img"):
            alt = element.get("alt", "")
            element.attrib.clear()
            element.tag, element.text = "span", alt  # span is not in the safelist: its text stays


class ImagesAsText(Extension):
    def extendMarkdown(self, md):
        md.treeprocessors.register(_ImagesAsText(md), "images_as_text", 15)  # after "inline" (20)


class Converter:
    """One Markdown instance reused across bodies (building one costs more than a short body)."""

    def __init__(self):
        self._md = None

    def to_html(self, text):
        """Sanitised HTML fragment of a Markdown text whose line ends are already "\\n"."""
        if self._md is None:
            self._md = markdown.Markdown(extensions=[*EXTENSIONS, ImagesAsText()])
        try:
            fragment = self._md.reset().convert(text)
        except BaseException:
            self._md = None  # a conversion cut short may leave state behind: start afresh
            raise
        return SANITISER.clean(fragment)
