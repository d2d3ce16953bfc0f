"""File loaders: the three formats, their key layouts, and refusal of anything pickled."""

from __future__ import annotations

import pickle
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from ccr_metrics.io import (
    load_arrays,
    load_embeddings,
    load_rank_matrix,
    load_ranks,
    load_released_ranks,
    load_scores,
)

FORMATS = ["npz", "safetensors", "pt"]


def save(path: Path, arrays: dict[str, np.ndarray]) -> Path:
    """Write ``arrays`` in the format named by the suffix of ``path``."""
    if path.suffix == ".npz":
        np.savez(path, **arrays)
    elif path.suffix == ".safetensors":
        save_file({k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in arrays.items()}, path)
    else:
        torch.save({k: torch.from_numpy(v) for k, v in arrays.items()}, path)
    return path


def embeddings() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {
        "image": rng.standard_normal((4, 3)).astype(np.float32),
        "text.en": rng.standard_normal((6, 3)).astype(np.float32),
        "text_to_image.en": np.array([0, 0, 1, 2, 3, 3]),
        "text.de": rng.standard_normal((4, 3)).astype(np.float32),
    }


class Hostile:
    """Unpickling this writes ``marker``: what a malicious file would do."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (exec, (f"open({str(self.marker)!r}, 'w').write('ran')",))


def as_array(x) -> np.ndarray:
    return x.numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


# ------------------------------------------------------------------- round trips


@pytest.mark.parametrize("fmt", FORMATS)
def test_load_embeddings_round_trip(tmp_path, fmt):
    arrays = embeddings()
    image, texts, text_to_image = load_embeddings(save(tmp_path / f"e.{fmt}", arrays))
    np.testing.assert_array_equal(as_array(image), arrays["image"])
    assert sorted(texts) == ["de", "en"]
    for lang, t in texts.items():
        np.testing.assert_array_equal(as_array(t), arrays[f"text.{lang}"])
    assert list(text_to_image) == ["en"]
    np.testing.assert_array_equal(as_array(text_to_image["en"]), arrays["text_to_image.en"])


def test_languages_keep_file_order(tmp_path):
    arrays = {"image": np.eye(2), "text.zh": np.eye(2), "text.en": np.eye(2), "text.de": np.eye(2)}
    _, texts, _ = load_embeddings(save(tmp_path / "e.npz", arrays))
    assert list(texts) == ["zh", "en", "de"]


@pytest.mark.parametrize("fmt", FORMATS)
def test_load_scores_round_trip(tmp_path, fmt):
    s = np.arange(8, dtype=np.float64).reshape(2, 4)
    arrays = {
        "i2t.en": s,
        "t2i.en": np.ascontiguousarray(s.T),
        "text_to_image.en": np.array([0, 1, 1, 0]),
        "t2i.de": np.ones((2, 2)),
    }
    i2t, t2i, text_to_image = load_scores(save(tmp_path / f"s.{fmt}", arrays))
    assert list(i2t) == ["en"]
    assert sorted(t2i) == ["de", "en"]
    np.testing.assert_array_equal(as_array(i2t["en"]), s)
    np.testing.assert_array_equal(as_array(text_to_image["en"]), [0, 1, 1, 0])


def test_safetensors_bfloat16_is_read(tmp_path):
    path = tmp_path / "e.safetensors"
    save_file({"image": torch.ones(2, 2, dtype=torch.bfloat16)}, path)
    assert load_arrays(path)["image"].dtype == torch.bfloat16


def test_suffix_is_case_insensitive(tmp_path):
    path = save(tmp_path / "e.npz", embeddings()).rename(tmp_path / "E.NPZ")
    assert "image" in load_arrays(path)


# ------------------------------------------------------------------- bad files


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nope.npz: no such file"):
        load_embeddings(tmp_path / "nope.npz")


def test_empty_directory(tmp_path):
    (tmp_path / "d.npz").mkdir()  # a folder is read as a folder of .npy files
    with pytest.raises(ValueError, match=r"d.npz: holds no arrays"):
        load_arrays(tmp_path / "d.npz")


@pytest.mark.parametrize("name", ["e.h5", "e.pkl", "e"])
def test_unknown_extension(tmp_path, name):
    (tmp_path / name).write_bytes(b"x")
    with pytest.raises(ValueError, match=r"unknown file type .*\.npz, \.safetensors, \.pt"):
        load_arrays(tmp_path / name)


@pytest.mark.parametrize(
    ("fmt", "message"),
    [
        ("npz", "not a .npz archive; it could only be read as a pickle"),
        ("safetensors", "not a readable safetensors file"),
        ("pt", "refused"),
    ],
)
@pytest.mark.parametrize("content", [b"", b"garbage" * 10])
def test_corrupt_file(tmp_path, fmt, message, content):
    path = tmp_path / f"bad.{fmt}"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=re.escape(f"bad.{fmt}")) as info:
        load_arrays(path)
    if content:
        assert message in str(info.value)


@pytest.mark.parametrize("fmt", FORMATS)
def test_truncated_file(tmp_path, fmt):
    path = save(tmp_path / f"e.{fmt}", embeddings())
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=re.escape(f"e.{fmt}")):
        load_embeddings(path)


def test_npz_with_a_corrupt_member(tmp_path):
    path = save(tmp_path / "e.npz", {"image": np.zeros((50, 50))})
    data = bytearray(path.read_bytes())
    data[200:260] = b"x" * 60
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="key 'image' is unreadable"):
        load_arrays(path)


def test_empty_npz(tmp_path):
    np.savez(tmp_path / "e.npz")
    with pytest.raises(ValueError, match="holds no arrays"):
        load_arrays(tmp_path / "e.npz")


def test_npy_named_npz(tmp_path):
    with open(tmp_path / "e.npz", "wb") as handle:
        np.save(handle, np.ones((2, 3)))
    with pytest.raises(ValueError, match=r"single array \[2, 3\], not named arrays"):
        load_arrays(tmp_path / "e.npz")


def test_pt_not_a_dict(tmp_path):
    torch.save([torch.ones(2)], tmp_path / "e.pt")
    with pytest.raises(ValueError, match="holds a list, not a dict of tensors"):
        load_arrays(tmp_path / "e.pt")


def test_pt_values_not_tensors(tmp_path):
    torch.save({"image": torch.ones(2, 2), "epoch": 3, "note": "x"}, tmp_path / "e.pt")
    with pytest.raises(ValueError, match=r"keys \['epoch', 'note'\] are not tensors"):
        load_arrays(tmp_path / "e.pt")


def test_pt_keys_not_strings(tmp_path):
    torch.save({"image": torch.ones(2, 2), 7: torch.ones(2)}, tmp_path / "e.pt")
    with pytest.raises(ValueError, match=r"keys \[7\] are not strings"):
        load_arrays(tmp_path / "e.pt")


# --------------------------------------------------------------------- key layout


@pytest.mark.parametrize("fmt", FORMATS)
def test_missing_image_key(tmp_path, fmt):
    arrays = embeddings()
    del arrays["image"]
    with pytest.raises(ValueError, match=rf"e\.{fmt}: no 'image' key"):
        load_embeddings(save(tmp_path / f"e.{fmt}", arrays))


def test_no_text_keys(tmp_path):
    with pytest.raises(ValueError, match=r"no 'text.<lang>' key .*keys: \['image'\]"):
        load_embeddings(save(tmp_path / "e.npz", {"image": np.eye(2)}))


@pytest.mark.parametrize("key", ["texts", "text.", "caption.en", "image.en"])
def test_unexpected_embedding_key(tmp_path, key):
    arrays = {**embeddings(), key: np.eye(2)}
    with pytest.raises(ValueError, match=rf"unexpected key\(s\) \[{re.escape(repr(key))}\]"):
        load_embeddings(save(tmp_path / "e.npz", arrays))


def test_mapping_without_texts(tmp_path):
    arrays = {**embeddings(), "text_to_image.fr": np.array([0])}
    with pytest.raises(ValueError, match=r"\['text_to_image.fr'\] .*without a 'text.<lang>' key"):
        load_embeddings(save(tmp_path / "e.npz", arrays))


def test_scores_need_a_matrix(tmp_path):
    with pytest.raises(ValueError, match=r"no 'i2t.<lang>' or 't2i.<lang>' key"):
        load_scores(save(tmp_path / "s.npz", {"text_to_image.en": np.array([0])}))


def test_scores_mapping_without_scores(tmp_path):
    arrays = {"i2t.en": np.eye(2), "text_to_image.de": np.array([0, 1])}
    with pytest.raises(ValueError, match=r"\['text_to_image.de'\] .*without scores"):
        load_scores(save(tmp_path / "s.npz", arrays))


def test_swapped_file_kinds_are_named(tmp_path):
    path = save(tmp_path / "e.npz", embeddings())
    with pytest.raises(ValueError, match="embeddings: read them with load_embeddings"):
        load_scores(path)
    scores = save(tmp_path / "s.npz", {"i2t.en": np.eye(2)})
    with pytest.raises(ValueError, match="scores: read them with load_scores"):
        load_embeddings(scores)


# ------------------------------------------------------------------- no unpickling


def test_hostile_fixture_would_run(tmp_path):
    # The control: unpickled without protection, the payload does write its marker.
    marker = tmp_path / "marker"
    pickle.loads(pickle.dumps(Hostile(marker)))
    assert marker.exists()


def test_pt_with_code_is_refused_unrun(tmp_path):
    marker = tmp_path / "marker"
    torch.save({"image": Hostile(marker)}, tmp_path / "e.pt")
    with pytest.raises(ValueError, match=r"refused.*exec.*never unpickles"):
        load_embeddings(tmp_path / "e.pt")
    assert not marker.exists()


def test_raw_pickle_named_pt_is_refused_unrun(tmp_path):
    marker = tmp_path / "marker"
    (tmp_path / "e.pt").write_bytes(pickle.dumps({"image": Hostile(marker)}))
    with pytest.raises(ValueError, match="refused"):
        load_embeddings(tmp_path / "e.pt")
    assert not marker.exists()


def test_npz_object_array_is_refused_unrun(tmp_path):
    marker = tmp_path / "marker"
    arrays = {**embeddings(), "text.en": np.array([Hostile(marker)], dtype=object)}
    np.savez(tmp_path / "e.npz", **arrays)
    with pytest.raises(ValueError, match=r"key 'text.en' is an object array .*never unpickles"):
        load_embeddings(tmp_path / "e.npz")
    assert not marker.exists()


@pytest.mark.parametrize("suffix", [".npz", ".npy"])
def test_raw_pickle_named_numpy_is_refused_unrun(tmp_path, suffix):
    marker = tmp_path / "marker"
    path = tmp_path / f"e{suffix}"
    path.write_bytes(pickle.dumps({"image": Hostile(marker)}))
    load = load_arrays if suffix == ".npz" else load_ranks
    with pytest.raises(ValueError, match=r"could only be read as a pickle .*never unpickles"):
        load(path)
    assert not marker.exists()


def test_npy_object_array_is_refused_unrun(tmp_path):
    marker = tmp_path / "marker"
    np.save(tmp_path / "r.npy", np.array([Hostile(marker)], dtype=object))
    with pytest.raises(ValueError, match="object array of pickled Python objects"):
        load_ranks(tmp_path / "r.npy")
    assert not marker.exists()


# --------------------------------------------------------------------------- ranks


def test_load_ranks_npy(tmp_path):
    np.save(tmp_path / "r.npy", np.array([3, 0, 1], dtype=np.int32))
    ranks = load_ranks(tmp_path / "r.npy")
    assert ranks.dtype == np.float64
    np.testing.assert_array_equal(ranks, [3, 0, 1])


@pytest.mark.parametrize("suffix", [".txt", ".csv"])
def test_load_ranks_text(tmp_path, suffix):
    path = tmp_path / f"r{suffix}"
    path.write_text("# ranks, 0-based\n3\n\n 0 \n1.5\n")
    np.testing.assert_array_equal(load_ranks(path), [3, 0, 1.5])


def test_load_ranks_bad_line(tmp_path):
    (tmp_path / "r.csv").write_text("1\n2,3\n")
    with pytest.raises(ValueError, match=r"r.csv: line 2 is '2,3', not one number"):
        load_ranks(tmp_path / "r.csv")


@pytest.mark.parametrize(
    ("array", "message"),
    [
        (np.zeros((2, 3)), r"1-D array \[N\], got shape \[2, 3\]"),
        (np.zeros(0), r"got shape \[0\]"),
        (np.array([1.0, np.nan]), "rank 1 is nan; ranks must be finite"),
        (np.array([np.inf]), "rank 0 is inf"),
        (np.array(["a", "b"]), "ranks must be numbers, got dtype <U1"),
        (np.array([True]), "ranks must be numbers, got dtype bool"),
    ],
)
def test_load_ranks_bad_array(tmp_path, array, message):
    np.save(tmp_path / "r.npy", array)
    with pytest.raises(ValueError, match=message):
        load_ranks(tmp_path / "r.npy")


def test_load_ranks_unknown_extension(tmp_path):
    (tmp_path / "r.npz").write_bytes(b"")
    with pytest.raises(ValueError, match=r"expected one of \.npy, \.txt, \.csv"):
        load_ranks(tmp_path / "r.npz")


def test_load_ranks_npz_named_npy(tmp_path):
    with open(tmp_path / "r.npy", "wb") as handle:
        np.savez(handle, a=np.ones(2))
    with pytest.raises(ValueError, match=r"is an .npz archive, not one .npy array"):
        load_ranks(tmp_path / "r.npy")


def test_load_rank_matrix(tmp_path):
    np.save(tmp_path / "en.npy", np.array([0, 1, 2]))
    (tmp_path / "de.txt").write_text("2\n1\n0\n")
    ranks = load_rank_matrix({"en": tmp_path / "en.npy", "de": tmp_path / "de.txt"})
    np.testing.assert_array_equal(ranks, [[0, 2], [1, 1], [2, 0]])


def test_load_rank_matrix_lengths_differ(tmp_path):
    np.save(tmp_path / "en.npy", np.array([0, 1, 2]))
    np.save(tmp_path / "de.npy", np.array([0, 1]))
    with pytest.raises(ValueError, match=r"de.npy \(de\) has 2 ranks but .*en.npy \(en\) has 3"):
        load_rank_matrix({"en": tmp_path / "en.npy", "de": tmp_path / "de.npy"})


def test_load_rank_matrix_empty():
    with pytest.raises(ValueError, match="at least one language"):
        load_rank_matrix({})


# ------------------------------------------------------------- released ranks/ folder


def save_released(folder: Path, model: str, tag: str, ranks: dict[str, list[float]]) -> None:
    """Write ``ranks`` as the released code does: ``<lang>_<model>_<tag>.npy``, floats."""
    for lang, values in ranks.items():
        np.save(folder / f"{lang}_{model}_{tag}.npy", np.asarray(values, dtype=np.float64))


def test_load_released_ranks_layout_and_order(tmp_path):
    languages = ["fr", "zh", "en", "es", "ja", "de"]
    tr = {lang: [i, 2 * i, 0.5] for i, lang in enumerate(languages)}
    ir = {lang: [0, i] for i, lang in enumerate(languages)}  # ir may have its own N
    save_released(tmp_path, "m", "tr", tr)
    save_released(tmp_path, "m", "ir", ir)
    ranks = load_released_ranks(tmp_path, "m")
    assert list(ranks) == ["i2t", "t2i"]  # tr -> i2t, ir -> t2i
    order = ["en", "de", "ja", "zh", "es", "fr"]  # the released order, then alphabetical
    for direction, saved in (("i2t", tr), ("t2i", ir)):
        assert list(ranks[direction]) == order
        for lang in order:
            assert ranks[direction][lang].dtype == np.float64
            np.testing.assert_array_equal(ranks[direction][lang], saved[lang])


def test_load_released_ranks_model_names_with_underscores(tmp_path):
    # en_ft_x_tr.npy ends with _x_tr.npy but is model ft_x's: the language is the text
    # before the first underscore, so it is no language 'en_ft' of model x.
    save_released(tmp_path, "x", "tr", {"en": [0, 1], "de": [1, 0]})
    save_released(tmp_path, "ft_x", "tr", {"en": [5, 5], "ja": [6, 6]})
    assert list(load_released_ranks(tmp_path, "x")["i2t"]) == ["en", "de"]
    ft = load_released_ranks(tmp_path, "ft_x")["i2t"]
    assert list(ft) == ["en", "ja"]
    np.testing.assert_array_equal(ft["en"], [5, 5])


def test_load_released_ranks_ignores_other_files(tmp_path):
    save_released(tmp_path, "m", "tr", {"en": [0, 1], "de": [1, 0]})
    (tmp_path / "case_en.json").write_text("[]")
    (tmp_path / "en_m_tr.txt").write_text("7\n7\n")
    np.savez(tmp_path / "ja_m_tr.npz", a=np.zeros(2))
    (tmp_path / "zh_m_tr.npy").mkdir()  # a folder with a rank file's name
    ranks = load_released_ranks(tmp_path, "m")
    assert list(ranks) == ["i2t"]  # no _ir file: the direction is left out
    assert list(ranks["i2t"]) == ["en", "de"]


def test_load_released_ranks_languages_select_and_order(tmp_path):
    save_released(tmp_path, "m", "tr", {"en": [0], "de": [1], "ja": [2]})
    save_released(tmp_path, "m", "ir", {"en": [0], "ja": [2]})  # no de in ir
    ranks = load_released_ranks(tmp_path, "m", languages=["ja", "de"])
    assert list(ranks["i2t"]) == ["ja", "de"]
    assert list(ranks["t2i"]) == ["ja"]  # each direction has the languages it has


def test_load_released_ranks_missing_directory(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nope: no such directory"):
        load_released_ranks(tmp_path / "nope", "m")


def test_load_released_ranks_not_a_directory(tmp_path):
    (tmp_path / "ranks").write_text("")
    with pytest.raises(ValueError, match=r"ranks: not a directory"):
        load_released_ranks(tmp_path / "ranks", "m")


def test_load_released_ranks_unknown_model_lists_the_models(tmp_path):
    save_released(tmp_path, "ours3m", "tr", {"en": [0], "de": [1]})
    save_released(tmp_path, "xvlm_base", "ir", {"en": [0]})
    with pytest.raises(
        ValueError, match=r"no rank file of model 'xvlm'.*present: ours3m, xvlm_base"
    ):
        load_released_ranks(tmp_path, "xvlm")


def test_load_released_ranks_empty_directory(tmp_path):
    with pytest.raises(ValueError, match=r"models present: none"):
        load_released_ranks(tmp_path, "m")


def test_load_released_ranks_unknown_language(tmp_path):
    save_released(tmp_path, "m", "tr", {"en": [0], "de": [1]})
    with pytest.raises(ValueError, match=r"language\(s\) \['fr'\]; languages present: de, en"):
        load_released_ranks(tmp_path, "m", languages=["en", "fr"])


def test_load_released_ranks_language_twice(tmp_path):
    save_released(tmp_path, "m", "tr", {"en": [0], "de": [1]})
    with pytest.raises(ValueError, match=r"\['en'\] are given more than once"):
        load_released_ranks(tmp_path, "m", languages=["en", "de", "en"])


def test_load_released_ranks_counts_differ(tmp_path):
    save_released(tmp_path, "m", "tr", {"en": [0, 1, 2], "de": [0, 1], "ja": [0, 1, 2]})
    with pytest.raises(ValueError, match=r"tr \(i2t\) files .*\(en 3, de 2, ja 3\)"):
        load_released_ranks(tmp_path, "m")


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ([0.0, -1.0], r"de_m_tr.npy: rank 1 is -1.0; .*never negative"),
        ([0.0, np.nan], r"de_m_tr.npy: rank 1 is nan; ranks must be finite"),
        ([np.inf, 0.0], r"de_m_tr.npy: rank 0 is inf"),
    ],
)
def test_load_released_ranks_bad_values(tmp_path, values, message):
    save_released(tmp_path, "m", "tr", {"en": [0, 1], "de": values})
    with pytest.raises(ValueError, match=message):
        load_released_ranks(tmp_path, "m")


def test_load_released_ranks_refuses_pickles_unrun(tmp_path):
    marker = tmp_path / "marker"
    save_released(tmp_path, "m", "tr", {"en": [0]})
    np.save(tmp_path / "de_m_tr.npy", np.array([Hostile(marker)], dtype=object))
    with pytest.raises(ValueError, match=r"de_m_tr.npy: holds an object array of pickled"):
        load_released_ranks(tmp_path, "m")
    assert not marker.exists()


# ------------------------------------------------------------------- memory-mapped reads


def test_uncompressed_npz_and_safetensors_are_memory_mapped(tmp_path):
    rng = np.random.default_rng(0)
    arrays = {
        "i2t.en": rng.standard_normal((7, 9)).astype(np.float32),
        "text_to_image.en": np.arange(9) % 7,
    }
    np.savez(tmp_path / "s.npz", **arrays)
    np.savez_compressed(tmp_path / "c.npz", **arrays)
    save_file(
        {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in arrays.items()},
        tmp_path / "s.safetensors",
    )
    stored, compressed = load_arrays(tmp_path / "s.npz"), load_arrays(tmp_path / "c.npz")
    mapped = load_arrays(tmp_path / "s.safetensors")
    assert isinstance(stored["i2t.en"], np.memmap)  # read when used, never whole
    assert not isinstance(compressed["i2t.en"], np.memmap)  # a compressed member cannot be
    assert isinstance(mapped["i2t.en"], np.memmap)
    for loaded in (stored, compressed, mapped):
        for key, value in arrays.items():
            np.testing.assert_array_equal(np.asarray(loaded[key]), value)


def save_folder(folder: Path, arrays: dict[str, np.ndarray]) -> Path:
    folder.mkdir()
    for key, value in arrays.items():
        np.save(folder / f"{key}.npy", value)
    return folder


def test_a_folder_of_npy_files_is_memory_mapped_and_read_like_a_file(tmp_path):
    arrays = embeddings()
    folder = save_folder(tmp_path / "emb", arrays)
    loaded = load_arrays(folder)
    assert list(loaded) == sorted(arrays)  # a folder keeps no order: sorted by key
    for key, value in arrays.items():
        assert isinstance(loaded[key], np.memmap)
        np.testing.assert_array_equal(np.asarray(loaded[key]), value)
    image, texts, owners = load_embeddings(folder)
    np.testing.assert_array_equal(image, arrays["image"])
    assert sorted(texts) == ["de", "en"] and list(owners) == ["en"]


def test_a_folder_of_score_matrices(tmp_path):
    rng = np.random.default_rng(1)
    arrays = {"i2t.en": rng.standard_normal((3, 5)), "text_to_image.en": np.arange(5) % 3}
    i2t, t2i, owners = load_scores(save_folder(tmp_path / "scores", arrays))
    np.testing.assert_array_equal(i2t["en"], arrays["i2t.en"])
    assert t2i == {} and owners["en"].tolist() == [0, 1, 2, 0, 1]


@pytest.mark.parametrize("name", ["i2t.de.npz", "notes.txt"])
def test_a_folder_with_another_file_is_refused(tmp_path, name):
    folder = save_folder(tmp_path / "scores", {"i2t.en": np.eye(3)})
    (folder / name).write_bytes(b"x")
    found = rf"holds only <key>\.npy files, found '{re.escape(name)}'"
    with pytest.raises(ValueError, match=found):
        load_arrays(folder)


def test_a_folder_with_an_npz_named_npy_is_refused(tmp_path):
    folder = save_folder(tmp_path / "scores", {"i2t.en": np.eye(3)})
    np.savez(folder / "i2t.de.npz", x=np.eye(2))
    (folder / "i2t.de.npz").rename(folder / "i2t.de.npy")
    with pytest.raises(ValueError, match=r"i2t.de.npy: is an .npz archive, not one .npy array"):
        load_arrays(folder)


def test_a_folder_with_a_pickled_npy_is_refused_unrun(tmp_path):
    marker = tmp_path / "ran"
    folder = save_folder(tmp_path / "scores", {"i2t.en": np.eye(3)})
    np.save(folder / "i2t.de.npy", np.array([Hostile(marker)], dtype=object), allow_pickle=True)
    with pytest.raises(ValueError, match=r"i2t.de.npy: holds an object array of pickled"):
        load_arrays(folder)
    assert not marker.exists()


def test_bfloat16_safetensors_are_read_exactly(tmp_path):
    t = torch.randn(5, 6).bfloat16()
    save_file({"i2t.en": t}, tmp_path / "b.safetensors")
    got = load_arrays(tmp_path / "b.safetensors")["i2t.en"]
    assert got.dtype == torch.bfloat16 and torch.equal(got, t)


def test_safetensors_whose_header_claims_bytes_it_lacks(tmp_path):
    import json as json_

    header = json_.dumps({"x": {"dtype": "F32", "shape": [1000], "data_offsets": [0, 4000]}})
    raw = len(header).to_bytes(8, "little") + header.encode() + b"\0" * 16
    (tmp_path / "bad.safetensors").write_bytes(raw)
    with pytest.raises(ValueError, match=r"claims bytes 0\.\.4000"):
        load_arrays(tmp_path / "bad.safetensors")
