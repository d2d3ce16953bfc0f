"""What the CLI's tests expect on stderr, shared by the CLI test files."""


def only_the_mixed_gallery_warning(err):
    """Whether stderr is one line: the warning that the languages cover different images.

    The CLI tests' data (``dataset()`` in test_cli.py, and the bundled example, where cs
    covers 270 of 300 images) leave images without texts in some language and rank every
    language among all images on purpose; the command says so (tests/test_galleries.py).
    """
    lines = err.splitlines()
    return (
        len(lines) == 1
        and lines[0].startswith("ccr-metrics: warning: the texts of the languages cover")
        and "--galleries" in lines[0]
    )
