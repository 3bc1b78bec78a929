"""Form handling: the API's input models' errors become translated messages per field; a
form calling several of the API's functions commits once or not at all."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from server.api import registry
from server.db import make_engine, make_sessionmaker, upgrade
from server.errors import ApiError, conflict
from server.models import Artisan, Site
from server.web.forms import FORM, Invalid, api_error, clean, one_transaction, validate


def test_clean_strips_and_drops_empty_fields():
    assert clean({"a": "  x ", "b": "", "c": "   ", "d": None}, ("a", "b", "c", "d", "e")) == {"a": "x"}


@pytest.mark.parametrize("lang, uid_msg, name_msg", [
    ("fr", "8, 14 ou 20 chiffres hexadécimaux", "Ce champ est obligatoire"),
    ("en", "8, 14 or 20 hexadecimal digits", "This field is required"),
])
def test_validation_errors_are_per_field_and_translated(lang, uid_msg, name_msg):
    with pytest.raises(Invalid) as e:
        validate(registry.BadgeIn, {"uid": "nothex", "artisan_id": 1}, lang, {"uid": "web.error.uid"})
    assert uid_msg in e.value.errors["uid"]
    with pytest.raises(Invalid) as e:
        validate(registry.ArtisanIn, {"site": "DKR", "phone": "abc"}, lang)
    assert e.value.errors["name"] == name_msg
    assert set(e.value.errors) == {"name", "phone"}


def test_api_errors_go_next_to_their_field_else_on_the_form():
    e = api_error(conflict("badge", "04A1B2C3"), "en", {"server.error.exists": "uid"})
    assert e.errors == {"uid": "Badge 04A1B2C3 already exists"}
    e = api_error(ApiError(422, "billing.error.negative_price", field="price_per_hour_member", value=-1), "fr",
                  {"x": "price_per_hour_member"})
    assert list(e.errors) == ["price_per_hour_member"]
    assert list(api_error(ApiError(409, "error.conflict"), "fr").errors) == [FORM]


def test_one_transaction_saves_all_or_nothing(tmp_path):
    url = f"sqlite:///{tmp_path / 'forms.db'}"
    upgrade(url)
    engine = make_engine(url)
    db = make_sessionmaker(engine)()
    db.add(Site(code="DKR", name="CRP Dakar", tz="Africa/Dakar", currency="XOF", locale="fr"))
    db.commit()
    body = registry.ArtisanIn(site="DKR", name="Awa Diop")
    # The API's create_artisan commits; inside one_transaction that is only a flush, so the
    # refusal that follows takes the artisan back too.
    with pytest.raises(Invalid) as e:
        with one_transaction(db, "fr", {"server.error.exists": "uid"}) as tx:
            registry.create_artisan(body, tx)
            raise conflict("badge", "04A1B2C3")
    assert e.value.errors == {"uid": "Badge 04A1B2C3 existe déjà"}
    assert db.scalars(select(Artisan)).all() == []
    with one_transaction(db, "fr") as tx:
        registry.create_artisan(body, tx)
    db.close()
    other = make_sessionmaker(engine)()
    assert [a.name for a in other.scalars(select(Artisan))] == ["Awa Diop"]
    other.close()
    engine.dispose()
