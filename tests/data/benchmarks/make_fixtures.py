"""Write the small benchmark fixtures of tests/data/benchmarks, one folder per format.

Each is laid out as its authors distribute the real files (see ../shared/benchmarks and
the Notes of ``ccr_metrics.load_benchmark``), with the quirks of the real ones: mixed
string and integer ids and an empty caption (xFlickr&CO), an ``image_idx`` shared by two
different images (WIT), CRLF line ends without a final one and an empty MIC ``en`` file
(XTD10), gzipped caption files (Multi30K). Run it from anywhere; it rewrites the folders.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

HERE = Path(__file__).resolve().parent


def write(path: Path, data: str | bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    raw = data.encode("utf-8") if isinstance(data, str) else data
    if path.suffix == ".gz":
        raw = gzip.compress(raw, mtime=0)
    path.write_bytes(raw)


def jsonl(rows: list[dict]) -> str:
    return "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)


def xflickrco() -> None:
    images = [
        ("1000092795", "1000092795.jpg"),
        ("10002456", "10002456.jpg"),
        (391895, "COCO_val2014_000000391895.jpg"),
        (522418, "COCO_val2014_000000522418.jpg"),
    ]
    captions = {
        "en": [
            ["Two young men are outside near bushes."],
            ["Workers look down from high above on a piece of equipment."],
            ["A man rides a motorcycle on a dirt road.", "A biker on a mountain path."],
            ["A woman cuts a large white cake."],
        ],
        "de": [
            ["Zwei junge Männer sind draußen bei Büschen."],
            [""],
            ["Ein Mann fährt Motorrad auf einem Feldweg."],
            ["Eine Frau schneidet einen großen weißen Kuchen."],
        ],
        "ja": [
            ["二人の若い男性が茂みの近くにいる。"],
            ["作業員が高い所から機械を見下ろしている。"],
            ["男性が未舗装の道でバイクに乗っている。"],
            ["女性が大きな白いケーキを切っている。"],
        ],
    }
    for lang, sentences in captions.items():
        rows = [
            {"sentences": s, "id": image_id, "img_path": path}
            for s, (image_id, path) in zip(sentences, images, strict=True)
        ]
        write(HERE / "xflickrco" / "annotations" / lang / "test.jsonl", jsonl(rows))


def wit() -> None:
    commons = "https://upload.wikimedia.org/wikipedia/commons"
    url = {
        name: f"{commons}/{name}"
        for name in (
            "a/a1/Tower.jpg",
            "b/b2/Map.svg",
            "c/c3/Bridge.jpg",
            "d/d4/Temple.jpg",
            "e/e5/Harbour.png",
        )
    }
    a, b, c, d, e = url.values()
    files = {  # (image_idx, image_url, caption): image_idx 2 is two different images in en
        "en": [
            (1, a, "The tower at dusk"),
            (2, b, "Map of the county"),
            (1, a, "The tower in 1900"),
            (2, c, "The old bridge"),
        ],
        "ja": [(1, a, "夕暮れの塔"), (5, d, "寺の本堂")],
        "ko": [(1, a, "해 질 녘의 탑"), (2, b, "군 지도"), (7, e, "항구 풍경")],
    }
    for lang, rows in files.items():
        records = [
            {
                "image_idx": idx,
                "image_url": image_url,
                "meta_url": image_url.replace("upload.wikimedia.org/wikipedia/commons", "commons"),
                "caption_reference_description": caption,
                "language": lang,
                "page_url": f"https://{lang}.wikipedia.org/wiki/Page_{i}",
                "wit_ix": f"wit-test_{i}",
            }
            for i, (idx, image_url, caption) in enumerate(rows)
        ]
        write(HERE / "wit" / "annotations" / f"test_{lang}.jsonl", jsonl(records))


def xtd10() -> None:
    root = HERE / "xtd10"
    names = [f"COCO_train2014_{n:012d}.jpg" for n in (9, 25, 30)]
    write(root / "XTD10" / "test_image_names.txt", "".join(n + "\n" for n in names))
    write(
        root / "XTD10" / "test_1kcaptions_en.txt",
        "A plate of food.\nA giraffe eating leaves.\nFlowers in a white vase.\n",
    )
    # As distributed: CRLF line ends and no end after the last line.
    write(
        root / "XTD10" / "test_1kcaptions_es.txt",
        "Un plato de comida.\r\nUna jirafa comiendo hojas.\r\nFlores en un jarrón blanco.",
    )
    write(
        root / "MIC" / "test_1kcaptions_de.txt",
        "Ein Teller mit Essen.\nEine Giraffe frisst Blätter.\nBlumen in einer weißen Vase.\n",
    )
    write(root / "MIC" / "test_1kcaptions_en.txt", "")  # empty, as distributed
    write(
        root / "STAIR" / "test_1kcaptions_jp.txt",
        "皿に盛られた料理\n葉を食べるキリン\n白い花瓶の花\n",
    )


MULTI30K = {
    "en": ["A man in an orange hat.", "A Boston terrier runs.", "A girl in karate uniform."],
    "de": ["Ein Mann mit orangem Hut.", "Ein Boston Terrier rennt.", "Ein Mädchen im Karateanzug."],
    "fr": ["Un homme au chapeau orange.", "Un terrier court.", "Une fille en kimono."],
    "cs": ["Muž v oranžovém klobouku.", "Teriér běží.", "Dívka v kimonu."],
}


def multi30k() -> None:
    root = HERE / "multi30k" / "data"
    names = ["1007129816.jpg", "1009434119.jpg", "101362133.jpg"]
    listing = "".join(n + "\n" for n in names)
    write(root / "task1" / "image_splits" / "test_2016_flickr.txt", listing)
    for lang, lines in MULTI30K.items():
        write(root / "task1" / "raw" / f"test_2016_flickr.{lang}.gz", "\n".join(lines) + "\n")
    write(root / "task2" / "image_splits" / "test_2016_images.txt", listing)
    for lang in ("en", "de"):
        for i in range(1, 6):
            lines = [f"{lang} caption {i} of image {j}" for j in range(len(names))]
            write(root / "task2" / "raw" / f"test_2016.{i}.{lang}.gz", "\n".join(lines) + "\n")


def xm3600() -> None:
    rows = []
    captions = {
        "0a1b2c3d4e5f6a7b": {
            "en": ["A red tram on a street.", "A tram in the city."],
            "de": ["Eine rote Straßenbahn."],
            "sw": ["Tramu nyekundu."],
        },
        "1b2c3d4e5f6a7b8c": {
            "en": ["A dog asleep on a sofa."],
            "de": ["Ein Hund schläft.", "Hund auf dem Sofa."],
            "sw": ["Mbwa amelala."],
        },
        "2c3d4e5f6a7b8c9d": {
            "en": ["Market stalls with fruit."],
            "de": ["Marktstände mit Obst."],
            "sw": ["Soko la matunda.", "Matunda sokoni."],
        },
    }
    for key, per_language in captions.items():
        row: dict = {"image/key": key, "image/locale": "en"}
        for lang, texts in per_language.items():
            row[lang] = {"caption": texts, "caption/tokenized": [t.lower() for t in texts]}
        rows.append(row)
    write(HERE / "xm3600" / "captions.jsonl", jsonl(rows))


def karpathy() -> None:
    images = []
    splits = ["test", "val", "test", "train", "restval", "restval"]
    for i, split in enumerate(splits):
        cocoid = 100 + i
        folder = "val2014" if split != "train" else "train2014"
        sentences = [
            {
                "tokens": ["image", str(i)],
                "raw": f"Image {i}, caption {s}.",
                "imgid": i,
                "sentid": 10 * i + s,
            }
            for s in range(2 + i % 2)
        ]
        images.append(
            {
                "filepath": folder,
                "sentids": [s["sentid"] for s in sentences],
                "filename": f"COCO_{folder}_{cocoid:012d}.jpg",
                "imgid": i,
                "split": split,
                "sentences": sentences,
                "cocoid": cocoid,
            }
        )
    document = {"images": images, "dataset": "coco"}
    write(HERE / "karpathy" / "dataset_coco.json", json.dumps(document, indent=1) + "\n")


if __name__ == "__main__":
    for make in (xflickrco, wit, xtd10, multi30k, xm3600, karpathy):
        make()
