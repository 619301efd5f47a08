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


def test_every_offset_store_has_its_own_section():
    from typing import get_args

    from bridge.config import OffsetsConfig

    text = reference()
    members = get_args(get_args(OffsetsConfig)[0])  # Annotated[Model, Tag(type)] each
    stores = [member.__metadata__[0].tag for member in members]
    assert len(stores) >= 3
    for store in stores:
        assert f"#### `offsets` with `type: {store}`" in text
