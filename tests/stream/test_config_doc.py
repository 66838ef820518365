"""The README's configuration table lists every setting, as the code defines it."""

from stream.config_doc import README, updated_readme


def test_readme_configuration_table_is_current():
    text = README.read_text()
    assert updated_readme(text) == text, "run: python -m stream.config_doc"
