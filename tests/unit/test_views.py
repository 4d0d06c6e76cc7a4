"""A customer kept by the worker comes back with everything the domain reads."""

from schemas import Customer
from streams.views import customer_of_json


def test_a_stored_customer_reads_back_as_it_went_in():
    customer = Customer.model_validate({
        "customer_id": "c-1", "name": "株式会社サンプル", "locale": "ja", "timezone": "Asia/Tokyo", "tier": "gold",
        "contacts": [{"email": "a@example.jp", "name": "鈴木"}, {"email": "b@example.jp"}],
        "services": [{"component": "api", "region": "ap-northeast-1"}, {"component": "db", "region": "eu-west-1"}]})
    back = customer_of_json(customer.model_dump_json())
    assert (back.customer_id, back.name, back.locale, back.timezone, back.tier) == \
        ("c-1", "株式会社サンプル", "ja", "Asia/Tokyo", "gold")
    assert [(c.email, c.name) for c in back.contacts] == [("a@example.jp", "鈴木"), ("b@example.jp", None)]
    assert [(s.component, s.region) for s in back.services] == [("api", "ap-northeast-1"), ("db", "eu-west-1")]
