"""Option bounds: one table (options.LIMITS) checked by ValidateOptions, reported by the CLI as usage errors."""

from __future__ import annotations

from dataclasses import fields

import pytest

from internvl_data import validate
from internvl_data.validator.options import LIMITS, OptionError, ValidateOptions
from tests.helpers.records import clean


def test_every_numeric_option_has_a_bound() -> None:
    numeric = {f.name for f in fields(ValidateOptions) if f.type in ("int", "int | None", "float")}
    assert numeric == set(LIMITS)


@pytest.mark.parametrize("name", sorted(LIMITS))
def test_the_cli_names_the_flag_and_the_bound(make_meta, run_cli, name: str) -> None:
    meta = make_meta(d=[clean(1)])
    flag = "--" + name.replace("_", "-")
    bound = LIMITS[name]
    code, out, err = run_cli("validate", meta, "--media", "off", "--no-manifest", flag, bound - 1)
    assert (code, out, err) == (2, "", f"ivl-data validate: {flag} must be >= {bound}, not {bound - 1}\n")
    assert run_cli("validate", meta, "--media", "off", "--no-manifest", flag, bound)[0] == 0


@pytest.mark.parametrize("name", sorted(LIMITS))
def test_the_api_checks_the_same_bounds(make_meta, name: str) -> None:
    meta = make_meta(d=[clean(1)])
    bound = LIMITS[name]
    assert getattr(ValidateOptions(**{name: bound}), name) == bound
    with pytest.raises(OptionError, match=f"^{name} must be >= {bound}, not {bound - 1}$") as caught:
        ValidateOptions(**{name: bound - 1})
    assert (caught.value.name, caught.value.bound, caught.value.value) == (name, bound, bound - 1)
    for how in ({}, {"options": ValidateOptions(media="off")}):
        with pytest.raises(ValueError, match=f"^{name} must be >= {bound}"):
            validate(meta, **how, **{name: bound - 1})


def test_keyword_options_on_top_of_an_options_object(make_meta) -> None:
    meta = make_meta(d=[{"id": 1}])
    base = ValidateOptions(media="off", write_manifest=False)
    with pytest.raises(ValueError, match="unknown option.*medium.*valid: "):  # a TypeError before
        validate(meta, base, medium="off")
    assert validate(meta, base, select="IVL2,IVL1").findings[0].code == "IVL201"
    assert validate(meta, base, select="IVL1").findings == []  # a string splits as in the constructor
    assert base.updated(jobs=3) == ValidateOptions(media="off", write_manifest=False, jobs=3)
