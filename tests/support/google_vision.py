"""Google Cloud Vision ``images:annotate`` answers, written as the API writes them (for the fake in
tests/support/llm_providers.py, ``FakeLlmApis.vision``): ``textAnnotations`` (the whole text with its ``locale``
first, then one per word) and ``fullTextAnnotation`` (pages of blocks of paragraphs of words of symbols, each with
its ``boundingBox``); a vertex leaves out a coordinate that is 0, as the API's JSON does."""

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class TextBlock:
    """One block: its paragraphs' words, its corners (clockwise from the top left; any quadrilateral) and, as
    DOCUMENT_TEXT_DETECTION gives it, its confidence (None: TEXT_DETECTION's blocks have none)."""

    paragraphs: tuple[tuple[str, ...], ...]
    corners: tuple[tuple[int, int], ...]
    confidence: float | None = None

    @classmethod
    def box(cls, text: str, xyxy: tuple[int, int, int, int], confidence: float | None = None) -> "TextBlock":
        """A one-paragraph block of ``text``'s words in an upright box."""
        x1, y1, x2, y2 = xyxy
        return cls((tuple(text.split()),), ((x1, y1), (x2, y1), (x2, y2), (x1, y2)), confidence)

    @property
    def text(self) -> str:
        return "\n".join(" ".join(words) for words in self.paragraphs)


def vertices(corners: tuple[tuple[int, int], ...]) -> dict[str, Any]:
    return {"vertices": [{name: value for name, value in (("x", x), ("y", y)) if value != 0} for x, y in corners]}


def _word(text: str, corners: tuple[tuple[int, int], ...], confidence: float | None) -> dict[str, Any]:
    word: dict[str, Any] = {"boundingBox": vertices(corners),
                            "symbols": [{"boundingBox": vertices(corners), "text": char} for char in text]}
    if confidence is not None:
        word["confidence"] = confidence
    return word


def annotate_response(blocks: list[TextBlock], locale: str = "en", width: int = 640,
                      height: int = 480) -> dict[str, Any]:
    """The answer to one image's request whose text is ``blocks`` (none: the API's ``{}`` for an image without
    text)."""
    if not blocks:
        return {"responses": [{}]}
    text = "".join(f"{block.text}\n" for block in blocks)
    everything = [corner for block in blocks for corner in block.corners]
    xs, ys = [x for x, _ in everything], [y for _, y in everything]
    whole = ((min(xs), min(ys)), (max(xs), min(ys)), (max(xs), max(ys)), (min(xs), max(ys)))
    annotations = [{"locale": locale, "description": text, "boundingPoly": vertices(whole)}]
    page_blocks = []
    for block in blocks:
        paragraphs = []
        for words in block.paragraphs:
            annotations.extend({"description": word, "boundingPoly": vertices(block.corners)} for word in words)
            paragraph: dict[str, Any] = {"boundingBox": vertices(block.corners),
                                         "words": [_word(word, block.corners, block.confidence) for word in words]}
            if block.confidence is not None:
                paragraph["confidence"] = block.confidence
            paragraphs.append(paragraph)
        page_block: dict[str, Any] = {"boundingBox": vertices(block.corners), "paragraphs": paragraphs,
                                      "blockType": "TEXT"}
        if block.confidence is not None:
            page_block["confidence"] = block.confidence
        page_blocks.append(page_block)
    page = {"property": {"detectedLanguages": [{"languageCode": locale}]}, "width": width, "height": height,
            "blocks": page_blocks}
    return {"responses": [{"textAnnotations": annotations, "fullTextAnnotation": {"pages": [page], "text": text}}]}
