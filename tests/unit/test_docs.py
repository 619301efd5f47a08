from pathlib import Path

from bridge.config.docs import END, START, reference

README = Path(__file__).parents[2] / "README.md"


def test_readme_config_reference_is_generated_from_the_models():
    text = README.read_text(encoding="utf-8")
    generated = text[text.index(START) + len(START) : text.index(END)].strip()
    assert generated == reference().strip(), "run: python -m bridge.config.docs --write"


def test_every_config_field_is_documented():
    for line in reference().splitlines():
        if line.startswith("| `"):
            assert not line.rstrip().endswith("|  |"), line
