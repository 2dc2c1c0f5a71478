"""A mini VoxCeleb in both roots' layouts with trimmed published lists,
shared by the VoxCeleb recipe tests."""

from data_prep.mini_corpus import write_mini_voxceleb_setting

# Speakers of each published list, as trimmed for the tests.
GROUPS = {
    "vox1-dev": [f"id{10001 + k}" for k in range(6)],
    "vox1-test": ["id10270", "id10271", "id10272"],
    "vox2-dev": ["id00012", "id00015", "id00016"],
    "vox2-test": ["id00017", "id00061", "id00081"],
}
AUDIO = {"duration_range": (1.0, 2.0), "videos_per_speaker": 2}
TRIALS_PER_CLASS = 20


def write_corpus_and_lists(root, groups=None):
    """Writes the mini VoxCeleb roots and lists of the tests.

    Arguments
    ---------
    root : pathlib.Path
        An empty folder.
    groups : dict, optional
        Speakers of each list (default :data:`GROUPS`).

    Returns
    -------
    data_folders : str
        The two roots, comma-separated, as the recipes take them.
    lists : pathlib.Path
        The folder of the lists (``speakers/``, ``trials/``).
    """
    return write_mini_voxceleb_setting(
        root,
        GROUPS if groups is None else groups,
        n_trials_per_class=TRIALS_PER_CLASS,
        seed=3,
        **AUDIO,
    )
