"""A mini VoxCeleb in both roots' layouts with trimmed published lists,
shared by the VoxCeleb recipe tests."""

import pathlib

from data_prep.mini_corpus import write_mini_voxceleb

# Speakers of each published list, as trimmed for the tests.
GROUPS = {
    "vox1-dev": [f"id{10001 + k}" for k in range(6)],
    "vox1-test": ["id10270", "id10271", "id10272"],
    "vox2-dev": ["id00012", "id00015", "id00016"],
    "vox2-test": ["id00017", "id00061", "id00081"],
}
AUDIO = {"duration_range": (1.0, 2.0), "videos_per_speaker": 2}
TRIALS_PER_CLASS = 20


def write_corpus_and_lists(root):
    """Writes a VoxCeleb1 root, a VoxCeleb2 root in the authors' layout and
    the published lists' form (speaker lists and ``trials-vox1.csv``).

    Arguments
    ---------
    root : pathlib.Path
        An empty folder.

    Returns
    -------
    data_folders : str
        The two roots, comma-separated, as the recipes take them.
    lists : pathlib.Path
        The folder of the lists (``speakers/``, ``trials/``).
    """
    vox1 = write_mini_voxceleb(
        root / "vox1",
        speakers=GROUPS["vox1-dev"] + GROUPS["vox1-test"],
        test_speakers=GROUPS["vox1-test"],
        n_trials_per_class=TRIALS_PER_CLASS,
        seed=3,
        **AUDIO,
    )
    for subset in ("dev", "test"):
        write_mini_voxceleb(
            root / "vox2",
            speakers=GROUPS[f"vox2-{subset}"],
            test_speakers=(),
            audio_folder=f"vox2_{subset}_wav",
            seed=4,
            **AUDIO,
        )
    lists = root / "lists"
    (lists / "speakers").mkdir(parents=True)
    for name, speakers in GROUPS.items():
        (lists / "speakers" / f"speaker-{name}.csv").write_text(
            "ID\n" + "\n".join(speakers) + "\n"
        )
    # The published Vox1-O list's form, from the corpus's official list.
    rows = ["LABEL,SAMPLE1,SAMPLE2"]
    for line in (pathlib.Path(vox1) / "veri_test2.txt").read_text().split("\n"):
        if line:
            label, enrol, test = line.split()
            rows.append(f"{label},vox1_test_wav/{enrol},vox1_test_wav/{test}")
    (lists / "trials").mkdir()
    (lists / "trials/trials-vox1.csv").write_text("\n".join(rows) + "\n")
    return f"{vox1},{root / 'vox2'}", lists
