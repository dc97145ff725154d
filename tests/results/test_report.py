import base64
import io
from html.parser import HTMLParser
from pathlib import Path

import pytest

from orchestrator.results import write_report

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


class _Collector(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags, self.images, self.links, self.pre, self._in_pre = [], [], [], [], False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.append(tag)
        if tag == "img":
            self.images.append(attrs["src"])
        if tag == "a":
            self.links.append(attrs["href"])
        self._in_pre = tag == "pre"

    def handle_endtag(self, tag):
        if tag == "pre":
            self._in_pre = False

    def handle_data(self, data):
        if self._in_pre:
            self.pre.append(data)


def _png_is_valid(data: bytes) -> None:
    import matplotlib.image

    assert data.startswith(PNG_SIGNATURE)
    image = matplotlib.image.imread(io.BytesIO(data), format="png")
    assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100


def test_report_renders(tree, tmp_path):
    out = tmp_path / "out" / "report.html"
    assert write_report([tree / "mlp", tree / "cnn"], out) == out
    page = _Collector()
    page.feed(out.read_text(encoding="utf-8"))
    page.close()
    # summary + budgets + one frontier table per sweep
    assert page.tags.count("table") == 2 + 3
    assert page.tags.count("h2") >= 2 + 3
    (src,) = page.images
    assert src.startswith("data:image/png;base64,")
    _png_is_valid(base64.b64decode(src.split(",", 1)[1]))
    _png_is_valid((tmp_path / "out" / "report.png").read_bytes())
    # Recipes are HTML-escaped: the parser gives back the literal text.
    assert any("# synthetic recipe <mlp>" in text for text in page.pre)
    assert "&lt;mlp&gt;" in out.read_text(encoding="utf-8")
    # Relative links that resolve to the Parquet files.
    assert len(page.links) == 3 * 3
    for href in page.links:
        assert not Path(href).is_absolute()
        assert (out.parent / href).resolve().is_file()
    assert sorted(p.name for p in out.parent.iterdir()) == ["report.html", "report.png"]


def test_report_bad_path_is_input_error(tmp_path):
    from orchestrator.results import ResultsInputError

    with pytest.raises(ResultsInputError, match="absent"):
        write_report([tmp_path / "absent"], tmp_path / "r.html")
    assert not (tmp_path / "r.html").exists()
