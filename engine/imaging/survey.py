"""What the pipeline does with every DICOM test file pydicom and pydicom-data ship.

``python -m engine.imaging.survey`` prints the Markdown table kept in docs/imaging.md
(a test regenerates it and fails if the document drifts). "embeds" means the file passed
every check and its chosen frames decoded to encoder input; the ResNet50 step cannot
refuse a valid 224 x 224 image, so it is not run here (the ingest tests run it).
Files are read from the installed packages only; nothing is downloaded.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

from engine.imaging.exceptions import ImagingError
from engine.imaging.pixels import letterbox
from engine.imaging.reader import decode_frame, decodable_transfer_syntaxes, open_dicom, undecodable_transfer_syntaxes
from engine.imaging.slices import CENTRAL_SLICES, center_out

BEGIN = "<!-- outcomes:begin (python -m engine.imaging.survey) -->"
END = "<!-- outcomes:end -->"


@dataclass(frozen=True)
class Outcome:
    name: str
    source: str
    status: str       # "embeds" or "refused"
    code: str         # "" or the ImagingError code
    detail: str       # what was embedded, or why it was refused (without the path)


def pydicom_test_files() -> list[tuple[str, Path]]:
    """(source, path) of the top-level files of pydicom's test data and of pydicom-data."""
    import pydicom.data
    from pydicom.data.data_manager import external_data_sources

    dirs = [("pydicom", Path(pydicom.data.__file__).parent / "test_files")]
    external = external_data_sources().get("pydicom-data")
    if external is not None:
        dirs.append(("pydicom-data", Path(external.data_path)))
    files = [(src, p) for src, d in dirs for p in d.iterdir() if p.is_file()]
    return sorted(files, key=lambda sp: (sp[1].name.lower(), sp[0]))


def survey_file(path: Path, source: str = "", slices: int = CENTRAL_SLICES) -> Outcome:
    try:
        src = open_dicom(path)
        frames = sorted(center_out(src.n_frames)[:slices])
        for i in frames:
            letterbox(decode_frame(src, i))
    except ImagingError as err:
        return Outcome(path.name, source, "refused", err.code, err.detail)
    size = f"{src.rows}x{src.cols}" + (f", {src.n_frames} frames" if src.n_frames > 1 else "")
    return Outcome(
        path.name, source, "embeds", "",
        f"{src.modality} {src.photometric}, {src.transfer_syntax}, {size}; {len(frames)} image(s)",
    )


def survey(files: list[tuple[str, Path]] | None = None) -> list[Outcome]:
    return [survey_file(p, src) for src, p in (files if files is not None else pydicom_test_files())]


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def markdown(outcomes: list[Outcome]) -> str:
    """The outcome table (between the BEGIN/END markers in docs/imaging.md)."""
    n_ok = sum(o.status == "embeds" for o in outcomes)
    lines = [
        BEGIN,
        f"{len(outcomes)} files: {n_ok} embed, {len(outcomes) - n_ok} are refused.",
        "",
        "| file | from | outcome | code | detail |",
        "| --- | --- | --- | --- | --- |",
    ]
    for o in outcomes:
        lines.append(f"| `{o.name}` | {o.source} | {o.status} | {o.code} | {_cell(o.detail)} |")
    lines.append(END)
    return "\n".join(lines) + "\n"


def syntax_tables() -> str:
    """Markdown lists of the transfer syntaxes decoded and refused with what is installed."""
    out = ["| transfer syntax | UID | decoded by |", "| --- | --- | --- |"]
    out += [f"| {n} | `{u}` | {how} |" for n, u, how in decodable_transfer_syntaxes()]
    refused = undecodable_transfer_syntaxes()
    out += ["", "| refused transfer syntax | UID | would need |", "| --- | --- | --- |"]
    out += [f"| {n} | `{u}` | {_cell(how)} |" for n, u, how in refused if how != "no pydicom decoder"]
    nodec = [u for _, u, how in refused if how == "no pydicom decoder"]
    if nodec:
        out.append(
            f"| {len(nodec)} more (JPEG 2000 Part 2, MPEG-2, H.264, H.265, JPIP, SMPTE 2110) | "
            f"`{nodec[0]}` ... `{nodec[-1]}` | no pydicom decoder exists |"
        )
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--syntaxes", action="store_true", help="print the transfer syntax tables instead")
    args = parser.parse_args(argv)
    print(syntax_tables() if args.syntaxes else markdown(survey()), end="")


if __name__ == "__main__":
    main()
