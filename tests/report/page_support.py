"""A rendered report, parsed (stdlib ``html.parser``): headings, sections, tables and figures,
so tests assert on what the page says and not on how its markup is spelled."""

from __future__ import annotations

import base64
import gzip
import json
import re
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any

VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source",
        "wbr"}
RAW = {"script", "style"}
HEADINGS = {"h1": 1, "h2": 2, "h3": 3, "h4": 4}


def words(text: str) -> str:
    """Whitespace collapsed, as a reader sees it."""
    return " ".join(text.split())


@dataclass(eq=False)
class Element:
    tag: str
    attrs: dict[str, str]
    children: list[Element | str] = field(default_factory=list)
    raw: str = ""
    """The unparsed content of a ``script`` or ``style`` element."""

    @property
    def text(self) -> str:
        return words("".join(c if isinstance(c, str) else c.text for c in self.children))

    @property
    def classes(self) -> set[str]:
        return set(self.attrs.get("class", "").split())

    def iter(self) -> list[Element]:
        """This element and every element inside it, in document order."""
        out = [self]
        for c in self.children:
            if isinstance(c, Element):
                out += c.iter()
        return out

    def find_all(self, tag: str, **attrs: str) -> list[Element]:
        return [e for e in self.iter() if e.tag == tag
                and all(e.attrs.get(k.rstrip("_")) == v for k, v in attrs.items())]

    def find(self, tag: str, **attrs: str) -> Element:
        """The one element matching (a test fails when there are none or several)."""
        found = self.find_all(tag, **attrs)
        assert len(found) == 1, f"{len(found)} <{tag} {attrs}>"
        return found[0]


@dataclass(frozen=True)
class Table:
    headers: list[str]
    rows: list[list[str]]

    @classmethod
    def of(cls, e: Element) -> Table:
        head = [tr for tr in e.find_all("tr") if tr.find_all("th")]
        body = [tr for tr in e.find_all("tr") if not tr.find_all("th")]
        return cls([c.text for c in head[0].find_all("th")] if head else [],
                   [[c.text for c in tr.find_all("td")] for tr in body])

    @property
    def keys(self) -> list[str]:
        """The headers, a repeated one numbered from its second time ("95% CI #2")."""
        return [f"{h} #{k + 1}" if (k := self.headers[:i].count(h)) else h
                for i, h in enumerate(self.headers)]

    def row(self, *first: str) -> dict[str, str]:
        """The one row whose first cells are ``first``, by :attr:`keys`."""
        found = [r for r in self.rows if r[:len(first)] == list(first)]
        assert len(found) == 1, f"{len(found)} rows start with {first}: {self.rows}"
        return dict(zip(self.keys, found[0], strict=True))

    def column(self, header: str) -> list[str]:
        i = self.headers.index(header)
        return [r[i] for r in self.rows]


class _Parser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Element("#document", {})
        self.stack = [self.root]

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        e = Element(tag, {k: v or "" for k, v in attrs})
        self.stack[-1].children.append(e)
        if tag not in VOID:
            self.stack.append(e)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.stack[-1].children.append(Element(tag, {k: v or "" for k, v in attrs}))

    def handle_endtag(self, tag: str) -> None:
        open_tags = [e.tag for e in self.stack]
        assert tag in open_tags, f"</{tag}> closes nothing"
        while self.stack.pop().tag != tag:
            pass

    def handle_data(self, data: str) -> None:
        top = self.stack[-1]
        if top.tag in RAW:
            top.raw += data
        else:
            top.children.append(data)


class Page:
    """A parsed page. A section is everything after a heading up to the next heading of
    the same or a higher rank, as a reader would delimit it."""

    def __init__(self, html: str) -> None:
        parser = _Parser()
        parser.feed(html)
        parser.close()
        self.root = parser.root
        self.elements = self.root.iter()

    def by_id(self, element_id: str) -> Element:
        found = [e for e in self.elements if e.attrs.get("id") == element_id]
        assert len(found) == 1, f"{len(found)} elements with id {element_id!r}"
        return found[0]

    def headings(self, rank: int | None = None) -> list[str]:
        return [e.text for e in self.elements
                if e.tag in HEADINGS and (rank is None or HEADINGS[e.tag] == rank)]

    def section(self, title: str, within: Section | None = None) -> Section:
        """The section under the one heading whose text starts with ``title``."""
        elements = within.elements if within is not None else self.elements
        starts = [i for i, e in enumerate(elements)
                  if e.tag in HEADINGS and e.text.startswith(title)]
        assert len(starts) == 1, f"{len(starts)} headings start with {title!r}"
        head = elements[starts[0]]
        rest = elements[starts[0] + len(head.iter()):]  # after the heading's own elements
        end = next((i for i, e in enumerate(rest)
                    if e.tag in HEADINGS and HEADINGS[e.tag] <= HEADINGS[head.tag]), len(rest))
        return Section(head, rest[:end])


@dataclass(frozen=True)
class Section:
    heading: Element
    elements: list[Element]

    @property
    def title(self) -> str:
        return self.heading.text

    def tables(self) -> list[Table]:
        return [Table.of(e) for e in self.elements if e.tag == "table"]

    def table(self, cls: str | None = None) -> Table:
        """The section's one table (of class ``cls``)."""
        found = [Table.of(e) for e in self.elements
                 if e.tag == "table" and (cls is None or cls in e.classes)]
        assert len(found) == 1, f"{len(found)} tables of class {cls!r} in {self.title!r}"
        return found[0]

    @property
    def text(self) -> str:
        """The section's paragraphs and lists, one string (tables and figures left out)."""
        return words(" ".join(e.text for e in self.elements if e.tag in ("p", "li", "dt", "dd")))


def number(cell: str) -> float | None:
    """The number a formatted cell shows ("30.0%", "-27.0 bps", "+10.00 pt", "1,234"), or
    ``None`` for "-" (not defined)."""
    if cell == "-":
        return None
    found = re.fullmatch(r"([+-]?[\d,]*\.?\d+)(?:%| bps| pt| pp)?", cell)
    assert found is not None, f"not a number: {cell!r}"
    return float(found.group(1).replace(",", ""))


def interval(cell: str) -> tuple[float | None, float | None]:
    """The bounds a cell like "[30.0%, 90.0%]" shows."""
    found = re.fullmatch(r"\[(.+), (.+)\]", cell)
    assert found is not None, f"not an interval: {cell!r}"
    return number(found.group(1)), number(found.group(2))


def figures(page: str) -> list[dict[str, Any]]:
    """Every figure of a rendered page, with shared column references (``"@i"``) resolved
    from the page's gzip-compressed column table, as the page script does."""
    parsed = Page(page)
    packed = [e for e in parsed.elements if e.tag == "script"
              and e.attrs.get("id") == "columns-gz"]
    cols = json.loads(gzip.decompress(base64.b64decode(packed[0].raw))) if packed else []

    def col(v: Any) -> Any:
        return cols[int(v[1:])] if isinstance(v, str) and v.startswith("@") else v

    figs = [json.loads(e.raw) for e in parsed.elements if e.tag == "script"
            and re.fullmatch(r"fig\d+-json", e.attrs.get("id", ""))]
    for f in figs:
        for t in f["data"]:
            t["x"], t["y"] = col(t.get("x")), col(t.get("y"))
    return figs
