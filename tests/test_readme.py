"""The README stays true to the code: every setting documented, the two commands first."""

from pathlib import Path

from shared.settings import Settings

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()


def test_every_setting_is_documented() -> None:
    missing = [f"CARDIOMESH_{name.upper()}" for name in Settings.model_fields
               if f"`CARDIOMESH_{name.upper()}`" not in README]
    assert not missing, f"README lacks {missing}"


def test_the_two_commands_come_first() -> None:
    first_block = README.split("```")[1]
    assert "make demo" in first_block and "make test" in first_block
