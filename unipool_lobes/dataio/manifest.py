"""Reading SpeechBrain manifest CSVs, whatever their paths hold; plain CSVs.

``speechbrain.dataio.dataio.load_data_csv`` treats every ``$word`` of every
value as a variable to replace, so a manifest whose audio lives under a
folder named with a ``$`` (``/data/run$1/wav/a.wav``) fails with a
``KeyError``; and a file saved with a UTF-8 byte-order mark (as some
editors and spreadsheet programs do) loses its ``ID`` column. This reader
gives the same rows, replaces only the variables it is given
(``$data_root``...), reads a byte-order mark as the encoding's, and names
the file and line of a bad row.

Authors
 * unipool-sv developers 2026
"""

import csv
import pathlib
import re


def read_csv(path):
    """Reads a CSV file with a header into a list of dicts (str values).

    For CSVs without an ``ID`` column (the authors' trial lists) that
    :func:`read_manifest` and SpeechBrain's ``load_data_csv`` refuse. A
    UTF-8 byte-order mark is accepted.

    Arguments
    ---------
    path : str or path
        The CSV file.

    Returns
    -------
    list of dict
        One dict a row, keyed by the header.

    Example
    -------
    >>> path = getfixture("tmp_path") / "m.csv"
    >>> text = "\\ufeffLABEL,SAMPLE1\\n1,a.wav\\n"
    >>> _ = path.write_text(text, encoding="utf-8")
    >>> read_csv(path)
    [{'LABEL': '1', 'SAMPLE1': 'a.wav'}]
    """
    # utf-8-sig: a byte-order mark (spreadsheet programs write one) would
    # otherwise become part of the first column's name.
    with open(path, newline="", encoding="utf-8-sig") as source:
        return list(csv.DictReader(source))


def read_manifest(path, replacements=None):
    """Reads a manifest CSV into ``{ID: {column: value}}``.

    As ``load_data_csv``: the ``ID`` column becomes the key, ``duration``
    becomes a float, and ``$name`` is replaced by ``replacements[name]`` in
    every value, for the names given only: any other ``$`` is kept as is.

    Arguments
    ---------
    path : str or os.PathLike
        The CSV file (UTF-8, with or without a byte-order mark).
    replacements : dict, optional
        E.g. ``{"data_root": "/corpus"}``.

    Returns
    -------
    dict
        Rows by ID, in file order.

    Raises
    ------
    FileNotFoundError
        If the file is missing.
    ValueError
        On a missing ``ID`` column, a repeated ID or a bad duration (the
        message names the file and line).

    Example
    -------
    >>> path = getfixture("tmp_path") / "m.csv"
    >>> _ = path.write_text(
    ...     "\\ufeffID,duration,wav\\n"
    ...     "a,1.5,$data_root/a.wav\\n"
    ...     "b,2,/data/run$1/b.wav\\n",
    ...     encoding="utf-8",
    ... )
    >>> rows = read_manifest(path, {"data_root": "/corpus"})
    >>> rows["a"]["wav"], rows["a"]["duration"], rows["b"]["wav"]
    ('/corpus/a.wav', 1.5, '/data/run$1/b.wav')
    """
    path = pathlib.Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"manifest not found: {path}")
    replacements = {
        key: str(value) for key, value in (replacements or {}).items()
    }
    pattern = None
    if replacements:
        names = "|".join(
            re.escape(name) for name in sorted(replacements, key=len)[::-1]
        )
        pattern = re.compile(rf"\$({names})(?![\w.])")
    rows = {}
    with open(path, newline="", encoding="utf-8-sig") as source:
        reader = csv.DictReader(source, skipinitialspace=True)
        if reader.fieldnames is None or "ID" not in reader.fieldnames:
            raise ValueError(
                f"{path}: no 'ID' column (header: {reader.fieldnames})"
            )
        for row in reader:
            where = f"{path}:{reader.line_num}"
            utterance = row.pop("ID")
            if utterance in rows:
                raise ValueError(f"{where}: ID {utterance!r} repeated")
            if None in row:
                raise ValueError(f"{where}: more fields than the header has")
            if pattern is not None:
                for key, value in row.items():
                    if value:
                        row[key] = pattern.sub(
                            lambda match: replacements[match[1]], value
                        )
            if "duration" in row:
                try:
                    row["duration"] = float(row["duration"])
                except (TypeError, ValueError):
                    raise ValueError(
                        f"{where}: duration {row['duration']!r} is not a number"
                    ) from None
            rows[utterance] = row
    return rows
